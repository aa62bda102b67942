"""A card over the window's content while a model loads: title, step message, busy bar."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QFrame, QLabel, QProgressBar, QVBoxLayout, QWidget

from . import style


class LoadingOverlay(QWidget):
    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setAttribute(Qt.WA_StyledBackground, True)
        self.setStyleSheet("LoadingOverlay { background: rgba(244, 246, 249, 215); }")
        card = QFrame(self)
        card.setObjectName("card")
        card.setStyleSheet(f"#card {{ background: white; border: 1px solid {style.BORDER}; border-radius: 8px; }}")
        card.setFixedWidth(440)
        self.title = QLabel("Loading model")
        self.title.setStyleSheet("font-size: 12pt; font-weight: 600;")
        self.title.setWordWrap(True)
        self.message = QLabel("Starting…")
        self.message.setProperty("role", "hint")
        self.message.setWordWrap(True)
        self.bar = QProgressBar()
        self.bar.setRange(0, 0)
        self.bar.setTextVisible(False)
        self.bar.setMaximumHeight(8)
        inner = QVBoxLayout(card)
        inner.setContentsMargins(24, 20, 24, 22)
        inner.setSpacing(10)
        inner.addWidget(self.title)
        inner.addWidget(self.message)
        inner.addWidget(self.bar)
        outer = QVBoxLayout(self)
        outer.addStretch(1)
        outer.addWidget(card, 0, Qt.AlignHCenter)
        outer.addStretch(2)
        parent.installEventFilter(self)
        self.hide()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        if watched is self.parent() and event.type() == QEvent.Resize:
            self.setGeometry(self.parent().rect())
        return False

    def start(self, title: str, message: str = "Starting…") -> None:
        self.title.setText(title)
        self.message.setText(message)
        self.setGeometry(self.parent().rect())
        self.raise_()
        self.show()

    def set_message(self, message: str) -> None:
        self.message.setText(message)
