"""Live view of an edit while it trains: the loss curve, and the router softmax of the edit's
query as an L x N heat map with the preset experts (the guided loss's target) outlined.

Painted with QPainter, not matplotlib: it is redrawn several times a second while the worker
trains, and a QPainter frame costs about a millisecond on the GUI thread.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QSizePolicy, QToolButton, QVBoxLayout, QWidget

from .. import style


def _nice_step(value: float) -> float:
    """The smallest of 1, 2, 5 x 10^n that is at least `value`."""
    if value <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * exp + 1e-12:
            return step * exp
    return 10 * exp


class TrainingCanvas(QWidget):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setMinimumHeight(190)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.total = 10
        self.losses: list[float] = []
        self.ces: list[float] = []
        self.weights: Optional[Sequence[Sequence[float]]] = None
        self.preset: Sequence[Sequence[int]] = ()
        self.layer_labels: Optional[list[str]] = None
        self.keyed = False

    # ------------------------------------------------------------------ paint
    def paintEvent(self, event) -> None:  # noqa: N802 - Qt API
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        p.fillRect(self.rect(), QColor(style.PANEL_BG))
        w, h = self.width(), self.height()
        split = int(w * 0.58)
        self._paint_loss(p, QRectF(0, 0, split, h))
        self._paint_heat(p, QRectF(split + 8, 0, w - split - 8, h))
        p.end()

    def _text(self, p: QPainter, rect: QRectF, text: str, align, color: str = style.TEXT_DIM,
              size: float = 7.5, bold: bool = False) -> None:
        font = QFont(self.font())
        font.setPointSizeF(size)
        font.setBold(bold)
        p.setFont(font)
        p.setPen(QColor(color))
        p.drawText(rect, align, text)

    def _paint_loss(self, p: QPainter, area: QRectF) -> None:
        self._text(p, QRectF(area.left() + 4, 2, area.width(), 16), "Loss", Qt.AlignLeft, style.TEXT, 8.5, True)
        plot = QRectF(area.left() + 34, 24, area.width() - 44, area.height() - 50)
        peak = max(self.losses + self.ces, default=1.0)
        ystep = _nice_step(peak / 4)
        top = ystep * max(1, math.ceil(peak / ystep - 1e-9))
        grid = QPen(QColor(style.GRID))
        for i in range(int(round(top / ystep)) + 1):
            y = plot.bottom() - plot.height() * i * ystep / top
            p.setPen(grid)
            p.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
            self._text(p, QRectF(area.left(), y - 7, 30, 14), f"{i * ystep:g}", Qt.AlignRight | Qt.AlignVCenter)
        total = max(2, self.total)
        xstep = max(1, int(_nice_step(total / 5)))
        for step in [1] + list(range(xstep, total + 1, xstep)):
            x = plot.left() + plot.width() * (step - 1) / (total - 1)
            self._text(p, QRectF(x - 20, plot.bottom() + 3, 40, 12), str(step), Qt.AlignHCenter | Qt.AlignTop)
        self._text(p, QRectF(plot.left(), plot.bottom() + 14, plot.width(), 12), "step", Qt.AlignHCenter)
        p.setPen(QPen(QColor(style.BORDER), 1))
        p.drawLine(plot.bottomLeft(), plot.bottomRight())
        p.drawLine(plot.bottomLeft(), plot.topLeft())

        def curve(values: list[float], color: str, dashed: bool) -> None:
            if not values:
                return
            path = QPainterPath()
            for i, v in enumerate(values):
                pt = QPointF(plot.left() + plot.width() * i / (total - 1),
                             plot.bottom() - plot.height() * min(v, top) / top)
                path.lineTo(pt) if i else path.moveTo(pt)
            pen = QPen(QColor(color), 1.2 if dashed else 1.8)
            if dashed:
                pen.setStyle(Qt.DashLine)
            p.setPen(pen)
            p.drawPath(path)
        curve(self.ces, style.DEFERRED, True)
        curve(self.losses, style.ACCENT, False)
        legend = QRectF(plot.right() - 96, plot.top() + 2, 96, 30)
        for i, (label, color, dashed) in enumerate((("total", style.ACCENT, False), ("target CE", style.DEFERRED, True))):
            y = legend.top() + 6 + 13 * i
            pen = QPen(QColor(color), 1.8)
            if dashed:
                pen.setStyle(Qt.DashLine)
            p.setPen(pen)
            p.drawLine(QPointF(legend.left(), y), QPointF(legend.left() + 18, y))
            self._text(p, QRectF(legend.left() + 23, y - 7, 80, 14), label, Qt.AlignLeft | Qt.AlignVCenter,
                       style.TEXT)

    def _paint_heat(self, p: QPainter, area: QRectF) -> None:
        title = "Gates (own experts)" if self.keyed else "Router softmax"
        self._text(p, QRectF(area.left(), 2, area.width(), 16), title, Qt.AlignLeft, style.TEXT, 8.5, True)
        if not self.weights:
            self._text(p, area, "starts with the edit", Qt.AlignCenter, style.MUTED)
            return
        layers, experts = len(self.weights), len(self.weights[0])
        grid = QRectF(area.left() + 30, 24, area.width() - 34, area.height() - 50)
        cw, ch = grid.width() / experts, grid.height() / layers
        vmax = max(0.5, max(max(row) for row in self.weights))
        base, full = QColor("#ffffff"), QColor("#7fa6d3")
        chosen = {(i, j) for i, row in enumerate(self.preset) for j in row}
        for i, row in enumerate(self.weights):
            label = self.layer_labels[i] if self.layer_labels and i < len(self.layer_labels) else f"L{i + 1}"
            self._text(p, QRectF(area.left(), grid.top() + i * ch, 27, ch), label, Qt.AlignRight | Qt.AlignVCenter)
            for j, value in enumerate(row):
                t = min(1.0, value / vmax)
                color = QColor(int(base.red() + (full.red() - base.red()) * t),
                               int(base.green() + (full.green() - base.green()) * t),
                               int(base.blue() + (full.blue() - base.blue()) * t))
                cell = QRectF(grid.left() + j * cw + 1, grid.top() + i * ch + 1, cw - 2, ch - 2)
                p.fillRect(cell, color)
                if (i, j) in chosen:
                    p.setPen(QPen(QColor(style.EDIT), 2))
                    p.drawRect(cell.adjusted(1, 1, -1, -1))
                self._text(p, cell, f"{value:.2f}", Qt.AlignCenter, style.TEXT, 7)
        for j in range(experts):
            self._text(p, QRectF(grid.left() + j * cw, grid.bottom() + 2, cw, 12), f"E{j + 1}", Qt.AlignHCenter)
        note = "the new edit's experts" if self.keyed else "□ = preset experts"
        self._text(p, QRectF(grid.left(), grid.bottom() + 14, grid.width(), 12), note, Qt.AlignHCenter, style.EDIT)


class TrainingPlot(QWidget):
    """Heading, export button and the live canvas."""

    exported = Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.canvas = TrainingCanvas()
        title = QLabel("Training")
        title.setProperty("role", "heading")
        export = QToolButton(text="Export PNG…")
        export.setProperty("flat", True)
        export.setCursor(Qt.PointingHandCursor)
        export.clicked.connect(self._ask_export)
        header = QHBoxLayout()
        header.addWidget(title)
        header.addStretch(1)
        header.addWidget(export)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addLayout(header)
        layout.addWidget(self.canvas, 1)

    @property
    def steps(self) -> list[float]:
        return self.canvas.losses

    def set_layer_labels(self, labels: Optional[list[str]]) -> None:
        self.canvas.layer_labels = labels

    def set_keyed(self, keyed: bool) -> None:
        self.canvas.keyed = keyed
        self.canvas.update()

    def start(self, preset, total_steps: int) -> None:
        c = self.canvas
        c.preset, c.total = preset, max(2, total_steps)
        c.losses, c.ces, c.weights = [], [], None
        c.update()

    def add_step(self, event) -> None:
        """Record one EditStep; painting is left to `refresh` (throttled by the panel)."""
        c = self.canvas
        c.losses.append(event.loss)
        c.ces.append(event.ce_loss)
        c.weights = event.router_weights

    def refresh(self) -> None:
        self.canvas.update()

    def export_png(self, path: str) -> str:
        self.canvas.grab().save(path)
        self.exported.emit(path)
        return path

    def _ask_export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export figure", "training.png", "PNG image (*.png)")
        if path:
            self.export_png(path)
