"""Embedded matplotlib figures with a title row and PNG export.

Figures are changed and drawn in the render thread (see `render.py`): subclasses put every
change of their figure in a closure passed to `self.call(...)`, and build their axes in
`build()`, which also runs there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from matplotlib.figure import Figure
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QSizePolicy, QToolButton, QVBoxLayout, QWidget

from .render import RenderTarget


class PlotWidget(QWidget):
    """A figure, a heading and an "Export PNG…" button."""

    exported = Signal(str)            # path, once the PNG is written
    export_failed = Signal(str, str)  # path, reason

    def __init__(self, title: str, parent: Optional[QWidget] = None, *, height: float = 3.0,
                 width: float = 5.0, show_header: bool = True) -> None:
        super().__init__(parent)
        self.figure = Figure(figsize=(width, height), dpi=100)
        self.target = RenderTarget(self.figure, self)
        self.canvas = self.target.canvas
        self.canvas.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.canvas.setMinimumHeight(int(height * 60))
        self.title = QLabel(title)
        self.title.setProperty("role", "heading")
        self.export_button = QToolButton(text="Export PNG…")
        self.export_button.setProperty("flat", True)
        self.export_button.setCursor(Qt.PointingHandCursor)
        self.export_button.setToolTip("Save this figure as a PNG image")
        self.export_button.clicked.connect(self._ask_export)
        self.export_failed.connect(self._report_export_failure)
        header = QHBoxLayout()
        header.setContentsMargins(0, 0, 0, 0)
        header.addWidget(self.title)
        header.addStretch(1)
        header.addWidget(self.export_button)
        header_widget = QWidget()
        header_widget.setLayout(header)
        header_widget.setVisible(show_header)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(header_widget)
        layout.addWidget(self.canvas, 1)
        self.call(self.build)

    def build(self) -> None:
        """Render thread: create the axes and artists."""

    def call(self, fn: Optional[Callable[[], None]] = None) -> None:
        """Run `fn` in the render thread, then redraw."""
        self.target.call(fn)

    def redraw(self) -> None:
        self.target.call(None)

    def export_png(self, path: str | Path) -> Path:
        """Write the figure to `path` (.png) in the render thread; `exported` says when."""
        path = Path(path)
        if path.suffix.lower() != ".png":
            path = path.with_suffix(".png")

        def save() -> None:
            try:
                self.figure.savefig(path, dpi=150, bbox_inches="tight")
            except OSError as error:
                self.export_failed.emit(str(path), error.strerror or str(error))
            else:
                self.exported.emit(str(path))
        self.call(save)
        return path

    def _ask_export(self) -> None:
        name = self.title.text().lower().replace(" ", "_").replace("/", "-") or "figure"
        path, _ = QFileDialog.getSaveFileName(self, "Export figure", f"{name}.png", "PNG image (*.png)")
        if path:
            self.export_png(path)

    def _report_export_failure(self, path: str, reason: str) -> None:
        window = self.window()
        if hasattr(window, "show_error"):
            window.show_error("The figure could not be saved", f"{path}: {reason}. Choose another folder.")
