"""Embedded matplotlib figures (FigureCanvasQTAgg) with a title row and PNG export."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QSizePolicy, QToolButton, QVBoxLayout, QWidget


class PlotWidget(QWidget):
    """A figure, a heading and an "Export PNG" button. Subclasses draw into `self.figure`."""

    def __init__(self, title: str, parent: Optional[QWidget] = None, *, height: float = 3.0,
                 width: float = 5.0, show_header: bool = True) -> None:
        super().__init__(parent)
        self.figure = Figure(figsize=(width, height), dpi=100)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.canvas.setMinimumHeight(int(height * 60))
        self.title = QLabel(title)
        self.title.setProperty("role", "heading")
        self.export_button = QToolButton(text="Export PNG…")
        self.export_button.setProperty("flat", True)
        self.export_button.setCursor(Qt.PointingHandCursor)
        self.export_button.setToolTip("Save this figure as a PNG image")
        self.export_button.clicked.connect(self._ask_export)
        header = QHBoxLayout()
        header.setContentsMargins(0, 0, 0, 0)
        header.addWidget(self.title)
        header.addStretch(1)
        header.addWidget(self.export_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        header_widget = QWidget()
        header_widget.setLayout(header)
        header_widget.setVisible(show_header)
        layout.addWidget(header_widget)
        layout.addWidget(self.canvas, 1)

    def redraw(self) -> None:
        """Schedule a repaint; several calls in one event-loop turn draw once."""
        self.canvas.draw_idle()

    def export_png(self, path: str | Path) -> Path:
        path = Path(path)
        if path.suffix.lower() != ".png":
            path = path.with_suffix(".png")
        self.figure.savefig(path, dpi=150, bbox_inches="tight")
        return path

    def _ask_export(self) -> None:
        name = self.title.text().lower().replace(" ", "_").replace("/", "-") or "figure"
        path, _ = QFileDialog.getSaveFileName(self, "Export figure", f"{name}.png", "PNG image (*.png)")
        if path:
            try:
                self.export_png(path)
            except OSError as error:
                window = self.window()
                if hasattr(window, "show_error"):
                    window.show_error("The figure could not be saved", f"{path}: {error.strerror or error}. "
                                      "Choose another folder.")
