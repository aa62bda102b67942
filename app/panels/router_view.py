"""Router view of one probe: per layer the softmax over the experts (top-k highlighted), and
the query's allocation code beside the nearest edit's code, differences outlined."""

from __future__ import annotations

from typing import Optional

from matplotlib.gridspec import GridSpec

from .. import style
from ..plots import PlotWidget
from ..router_plots import CodeGrid, RouterBars


class RouterView(PlotWidget):
    def __init__(self, parent=None) -> None:
        super().__init__("Router decision", parent, height=3.1, width=8.0)
        grid = GridSpec(1, 3, figure=self.figure, width_ratios=[5.2, 1.25, 1.25], wspace=0.3,
                        left=0.07, right=0.985, top=0.84, bottom=0.11)
        self.bars = RouterBars(self.figure.add_subplot(grid[0, 0]))
        self.query_code = CodeGrid(self.figure.add_subplot(grid[0, 1]), "this query", style.ACCENT)
        self.edit_code = CodeGrid(self.figure.add_subplot(grid[0, 2]), "nearest edit", style.EDIT)
        self.caption = self.figure.text(0.07, 0.975, "Probe a query to see how the routers treat it.",
                                        fontsize=9, color=style.TEXT, va="top", fontweight="bold")
        self.layer_labels: Optional[list[str]] = None
        self.view = None
        self.redraw()

    def set_layer_labels(self, labels: Optional[list[str]]) -> None:
        self.layer_labels = labels

    def show_probe(self, view) -> None:
        """`view` is a ProbeView (result + nearest edit's code)."""
        self.view = view
        r = view.result
        labels = self.layer_labels
        keyed = getattr(r, "routing", "router") == "keyed"
        layers = len(r.router_weights)
        experts = len(r.router_weights[0]) if layers and not keyed else 0
        if keyed or not experts:
            self.bars.update([], [], labels, empty_text="keyed routing: a query uses one edit's own experts, "
                             "or none" if keyed else "no routing information")
            for grid in (self.query_code, self.edit_code):
                grid.update(None, max(1, layers), 4, empty_text="no allocation\ncodes", labels=labels)
        else:
            self.bars.update(r.router_weights, r.top_k, labels)
            self.query_code.update(r.code, layers, experts, reference=view.nearest_code, labels=labels,
                                   title="this query's code")
            if view.nearest_code is not None:
                self.edit_code.update(view.nearest_code, layers, experts, reference=r.code,
                                      title="nearest edit's code", labels=labels)
            else:
                self.edit_code.update(None, layers, experts, empty_text="no edits yet", labels=labels)
        self.bars.ax.set_title("Router softmax over the experts, per MoLoRA layer", loc="left", fontsize=8.5,
                               fontweight="normal", color=style.TEXT_DIM)
        self.caption.set_text(self._caption(r))
        self.caption.set_color(style.FIRED if r.fired else style.DEFERRED)
        self.redraw()

    @staticmethod
    def _caption(r) -> str:
        if getattr(r, "routing", "router") == "keyed":
            if r.similarity is None:
                return "Deferred: there are no edits yet, so the original model answers."
            relation = "≥" if r.fired else "<"
            verdict = "fired: the edit's experts applied" if r.fired else "deferred to the original model"
            return (f"Key similarity to the nearest edit {r.similarity:.2f} {relation} threshold "
                    f"{r.scope_threshold:.2f}  →  {verdict}")
        if r.hamming is None:
            return "Deferred: there are no edits yet, so the original model answers."
        if not r.deferral_enabled:
            return f"Fired: deferral is off, so the experts are always applied (Hamming {r.hamming})."
        relation = "<" if r.fired else "≥"
        verdict = "fired: experts applied" if r.fired else "deferred to the original model"
        outline = "  (red: cells that differ)" if r.hamming else ""
        return f"Hamming distance to the nearest edit {r.hamming} {relation} ε = {r.epsilon}  →  {verdict}{outline}"
