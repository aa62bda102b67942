"""Small reusable widgets: validated fields, a collapsible section, a message bar, a banner."""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame, QHBoxLayout, QLabel, QLineEdit, QPlainTextEdit, QSizePolicy, QToolButton, QVBoxLayout, QWidget,
)

from . import style


MAX_TEXT = 2_000_000   # characters; the model's context is checked in the worker


class ValidatedField(QWidget):
    """An input with a caption above and an error message below it."""

    def __init__(self, caption: str, editor: QWidget, hint: str = "", parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.editor = editor
        if isinstance(editor, QLineEdit):
            editor.setMaxLength(MAX_TEXT)   # Qt's default (32767) would cut long prompts silently
        self.caption = QLabel(caption)
        self.caption.setBuddy(editor)
        self.error = QLabel()
        self.error.setProperty("role", "error")
        self.error.setWordWrap(True)
        self.error.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(3)
        top = QHBoxLayout()
        top.setSpacing(6)
        top.addWidget(self.caption)
        if hint:
            hint_label = QLabel(hint)
            hint_label.setProperty("role", "hint")
            top.addWidget(hint_label)
        top.addStretch(1)
        layout.addLayout(top)
        layout.addWidget(editor)
        layout.addWidget(self.error)

    def text(self) -> str:
        if isinstance(self.editor, QPlainTextEdit):
            return self.editor.toPlainText()
        return self.editor.text()

    def lines(self) -> list[str]:
        return [line.strip() for line in self.text().splitlines() if line.strip()]

    def set_text(self, text: str) -> None:
        if isinstance(self.editor, QPlainTextEdit):
            self.editor.setPlainText(text)
        else:
            self.editor.setText(text)

    def set_error(self, message: str = "") -> None:
        self.error.setText(message)
        self.error.setVisible(bool(message))
        self.editor.setProperty("invalid", bool(message))
        style.repolish(self.editor)


class Collapsible(QWidget):
    """A header button that shows or hides its content."""

    toggled = Signal(bool)

    def __init__(self, title: str, content: QWidget, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.button = QToolButton(text=title, checkable=True)
        self.button.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
        self.button.setArrowType(Qt.RightArrow)
        self.button.setStyleSheet("QToolButton { border: none; font-weight: 600; padding: 2px 0; }")
        self.button.toggled.connect(self.set_expanded)
        self.content = content
        content.setVisible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.button)
        layout.addWidget(content)

    def set_expanded(self, expanded: bool) -> None:
        self.button.setChecked(expanded)
        self.button.setArrowType(Qt.DownArrow if expanded else Qt.RightArrow)
        self.content.setVisible(expanded)
        self.toggled.emit(expanded)


class Banner(QFrame):
    """A coloured box with a bold headline and a line of detail (verdicts, messages)."""

    KINDS = {
        "fired": (style.FIRED, style.FIRED_BG),
        "deferred": (style.DEFERRED, style.DEFERRED_BG),
        "error": (style.ERROR, style.ERROR_BG),
        "info": (style.ACCENT, style.ACCENT_LIGHT),
        "neutral": (style.TEXT_DIM, "#eef1f5"),
    }

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.headline = QLabel()
        self.headline.setTextFormat(Qt.PlainText)
        self.detail = QLabel()
        self.detail.setWordWrap(True)
        self.detail.setTextFormat(Qt.PlainText)
        self.detail.setTextInteractionFlags(Qt.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        layout.setSpacing(2)
        layout.addWidget(self.headline)
        layout.addWidget(self.detail)
        self.kind = "neutral"
        self.set("neutral", "", "")

    def set(self, kind: str, headline: str, detail: str = "") -> None:
        self.kind = kind
        fg, bg = self.KINDS[kind]
        self.setStyleSheet(f"Banner {{ background: {bg}; border: 1px solid {fg}; border-left: 4px solid {fg};"
                           f" border-radius: 4px; }} QLabel {{ background: transparent; }}")
        self.headline.setStyleSheet(f"color: {fg}; font-weight: 700; font-size: 10.5pt;")
        self.headline.setText(headline)
        self.detail.setText(detail)
        self.detail.setVisible(bool(detail))


class MessageBar(Banner):
    """Non-modal message at the top of the window with a close button (errors, notices)."""

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        close = QToolButton(text="✕")
        close.setAutoRaise(True)
        close.setToolTip("Dismiss")
        close.setSizePolicy(QSizePolicy.Fixed, QSizePolicy.Fixed)
        close.clicked.connect(self.hide)
        self.layout().setContentsMargins(12, 8, 8, 8)
        row = QHBoxLayout()
        row.addWidget(self.headline, 1)
        row.addWidget(close)
        self.layout().insertLayout(0, row)
        self.hide()

    def show_message(self, level: str, title: str, text: str) -> None:
        self.set({"error": "error", "warning": "deferred", "info": "info"}.get(level, "info"), title, text)
        self.show()
