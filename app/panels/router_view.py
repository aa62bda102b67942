"""Router view of one probe: per layer the softmax over the experts (top-k highlighted), and
the query's allocation code beside the nearest edit's code, differences outlined."""

from __future__ import annotations

from typing import Optional

from matplotlib.gridspec import GridSpec

from .. import style
from ..plots import PlotWidget
from ..router_plots import (
    CodeGrid, RouterBars, draw_scoped_distribution, draw_similarity_gauge, keyed_columns, scoped_rows,
)


class RouterView(PlotWidget):
    def __init__(self, parent=None) -> None:
        self.layer_labels: Optional[list[str]] = None
        self.edit_prompts: list[str] = []
        self.view = None
        super().__init__("Router decision", parent, height=3.1, width=8.0)

    def build(self) -> None:
        grid = GridSpec(1, 3, figure=self.figure, width_ratios=[5.2, 1.25, 1.25], wspace=0.3,
                        left=0.07, right=0.985, top=0.84, bottom=0.11)
        self.bars = RouterBars(self.figure.add_subplot(grid[0, 0]))
        self.query_code = CodeGrid(self.figure.add_subplot(grid[0, 1]), "this query", style.ACCENT)
        self.edit_code = CodeGrid(self.figure.add_subplot(grid[0, 2]), "nearest edit", style.EDIT)
        for grid_view in (self.query_code, self.edit_code):
            grid_view.placeholder("no probe yet")
        # the scoped view needs room for edit names on the left and spreads its gauge over both
        # code columns; the other views use the grid's own places
        self._grid_places = {ax: ax.get_position() for ax in (self.bars.ax, self.query_code.ax)}
        self.caption = self.figure.text(0.07, 0.975, "Probe a query to see how the routers treat it.",
                                        fontsize=9, color=style.TEXT, va="top", fontweight="bold")

    def set_layer_labels(self, labels: Optional[list[str]]) -> None:
        self.layer_labels = labels

    def set_edit_prompts(self, prompts: list[str]) -> None:
        """The engine's edits in order, so the scoped router's bars can name them."""
        self.edit_prompts = list(prompts)

    def show_probe(self, view) -> None:
        """`view` is a ProbeView (result + nearest edit's code)."""
        self.view = view
        labels = list(self.layer_labels) if self.layer_labels else None
        self.call(lambda: self._draw_probe(view, labels))

    def _draw_probe(self, view, labels) -> None:
        """Render thread."""
        r = view.result
        routing = getattr(r, "routing", "router")
        self.edit_code.ax.set_visible(routing != "scoped")
        for ax, place in self._grid_places.items():
            ax.set_position(place)
        if routing == "scoped":
            self._draw_scoped(r, list(getattr(view, "edit_prompts", ()) or self.edit_prompts))
        elif routing == "keyed":
            self._draw_keyed(r, labels)
        else:
            self._draw_router(view, labels)
        self.caption.set_text(self._caption(r))
        self.caption.set_color(style.FIRED if r.fired else style.DEFERRED)

    def _draw_router(self, view, labels) -> None:
        r = view.result
        layers = len(r.router_weights)
        experts = len(r.router_weights[0]) if layers else 0
        self.bars.update(r.router_weights, r.top_k, labels)
        self.bars.ax.set_title("Router softmax over the experts, per MoLoRA layer", loc="left", fontsize=8.5,
                               fontweight="normal", color=style.TEXT_DIM)
        if not experts:
            for grid in (self.query_code, self.edit_code):
                grid.update(None, 1, 1, empty_text="no codes", labels=None)
            return
        self.query_code.update(r.code, layers, experts, reference=view.nearest_code, labels=labels,
                               title="this query's code")
        if view.nearest_code is not None:
            self.edit_code.update(view.nearest_code, layers, experts, reference=r.code,
                                  title="nearest edit's code", labels=labels)
        else:
            self.edit_code.update(None, layers, experts, empty_text="no edits yet", labels=labels)

    def _draw_scoped(self, r, prompts: list[str]) -> None:
        """Scoped routing: one distribution over the edits plus defer, shared by all layers, and
        the nearest edit's subject match against its calibrated threshold."""
        self.bars.shape = None
        self.query_code.shape = None
        probs = r.router_weights[0] if r.router_weights else ()
        routed = r.top_k[0][0] if r.top_k and r.top_k[0] else None
        defer = r.defer_probability if r.defer_probability is not None else 1.0
        draw_scoped_distribution(self.bars.ax, scoped_rows(probs, defer, prompts, routed))
        self.bars.ax.set_title("P(edit) and P(defer)", loc="left",
                               fontsize=8.5, fontweight="normal", color=style.TEXT_DIM)
        bars, gauge = self.bars.ax, self.query_code.ax
        b, h = bars.get_position().y0, bars.get_position().height
        bars.set_position([0.31, b, 0.34, h])
        gauge.set_position([0.72, b, 0.265, h])
        draw_similarity_gauge(gauge, r.similarity, r.scope_threshold or 0.0, r.fired,
                              xlabel="subject match, nearest edit")
        gauge.set_title("calibrated threshold", fontsize=8.5, loc="right")

    def _draw_keyed(self, r, labels) -> None:
        """Keyed routing: one similarity decides for all layers; each edit has its own experts."""
        self.bars.shape = None          # the bar artists are rebuilt when a router profile returns
        draw_similarity_gauge(self.bars.ax, r.similarity, r.scope_threshold or 0.0, r.fired)
        self.bars.ax.set_title("Keyed routing: one decision for all MoLoRA layers", loc="left", fontsize=8.5,
                               fontweight="normal", color=style.TEXT_DIM)
        layers = len(r.router_weights)
        n = len(r.router_weights[0]) if layers else 0
        if not n:
            for grid in (self.query_code, self.edit_code):
                grid.update(None, max(1, layers), 1, empty_text="no edits yet", labels=labels, columns=[""])
            return
        cols = keyed_columns(n, r.nearest_edit)
        names = [f"#{c + 1}" for c in cols]
        used = [[r.router_weights[i][c] for c in cols] for i in range(layers)]
        near = [[1.0 if c == r.nearest_edit else 0.0 for c in cols] for _ in range(layers)]
        flat = [v for row in used for v in row]
        self.query_code.update(flat if any(flat) else None, layers, len(cols), labels=labels, columns=names,
                               title="experts used", empty_text="none:\ndeferred")
        self.edit_code.update([v for row in near for v in row], layers, len(cols), labels=labels, columns=names,
                              title="nearest edit")

    @staticmethod
    def _caption(r) -> str:
        if getattr(r, "routing", "router") == "scoped":
            if r.nearest_edit is None:
                return "Deferred: there are no edits yet, so the original model answers."
            token = f" (at “{r.matched_token.strip()}”)" if r.matched_token and r.matched_token.strip() else ""
            if not r.deferral_enabled:
                return f"Fired: deferral is off, so the nearest edit's experts apply{token}."
            relation = "≥" if r.fired else "<"
            verdict = "fired: that edit's experts applied" if r.fired else "deferred to the original model"
            verdict = "fired" if r.fired else "deferred"
            return (f"Subject match {r.similarity:.2f}{token} {relation} threshold {r.scope_threshold:.2f} "
                    f"of edit #{r.nearest_edit + 1}  →  {verdict}")
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
