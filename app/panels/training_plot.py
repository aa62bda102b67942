"""Live view of an edit while it trains: the loss curve, and the router softmax of the edit's
query as a heat map with the preset experts (the guided loss's target) outlined."""

from __future__ import annotations

from typing import Optional

from matplotlib.gridspec import GridSpec

from .. import style
from ..plots import PlotWidget
from ..router_plots import RouterHeatmap


class TrainingPlot(PlotWidget):
    def __init__(self, parent=None) -> None:
        super().__init__("Training", parent, height=2.5, width=4.6)
        grid = GridSpec(1, 2, figure=self.figure, width_ratios=[1.55, 1], wspace=0.38,
                        left=0.1, right=0.98, top=0.88, bottom=0.2)
        self.loss_ax = self.figure.add_subplot(grid[0])
        self.heat = RouterHeatmap(self.figure.add_subplot(grid[1]))
        self.heat.ax.set_title("Router softmax", loc="left")
        self.heat.ax.set_xticks([])
        self.heat.ax.set_yticks([])
        self.layer_labels: Optional[list[str]] = None
        self.preset = ()
        self._weights = None
        ax = self.loss_ax
        ax.set_title("Loss", loc="left")
        ax.set_xlabel("step")
        self.loss_line, = ax.plot([], [], color=style.ACCENT, lw=1.6, label="total")
        self.ce_line, = ax.plot([], [], color=style.DEFERRED, lw=1.1, ls="--", label="target CE")
        ax.legend(loc="upper right")
        ax.set_xlim(0.5, 10.5)
        ax.set_ylim(0, 1)
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.ces: list[float] = []
        self.redraw()

    def set_layer_labels(self, labels: Optional[list[str]]) -> None:
        self.layer_labels = labels
        self.heat.shape = None   # rebuild the tick labels at the next update

    def start(self, preset, total_steps: int) -> None:
        self.preset = preset
        self.steps, self.losses, self.ces = [], [], []
        self.loss_line.set_data([], [])
        self.ce_line.set_data([], [])
        self.loss_ax.set_xlim(0.5, max(2, total_steps) + 0.5)
        self.loss_ax.set_ylim(0, 1)
        self.redraw()

    def add_step(self, event) -> None:
        """Record one EditStep; drawing is left to `refresh` (throttled by the panel)."""
        self.steps.append(event.step)
        self.losses.append(event.loss)
        self.ces.append(event.ce_loss)
        self._weights = event.router_weights

    def refresh(self) -> None:
        if not self.steps:
            return
        self.loss_line.set_data(self.steps, self.losses)
        self.ce_line.set_data(self.steps, self.ces)
        top = max(max(self.losses), max(self.ces))
        self.loss_ax.set_ylim(0, top * 1.08 if top > 0 else 1)
        if self._weights is not None:
            self.heat.update(self._weights, self.preset, self.layer_labels)
            self.heat.ax.set_title("Router softmax", loc="left")
            self.heat.ax.set_xlabel("□ = preset experts", color=style.EDIT)
        self.redraw()
