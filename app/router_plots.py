"""Drawing helpers shared by the router figures: grouped softmax bars and code grids.

Artists are created once per (L, N) shape and updated in place afterwards, so a redraw
during training or after a probe stays cheap for the GUI thread.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from matplotlib.colors import LinearSegmentedColormap, ListedColormap
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from . import style

BAR_OFF = "#c9d1dc"


class RouterBars:
    """Per layer, the router's softmax over the experts as a cluster of bars; highlighted
    experts (the top-k, or an edit's preset) in colour."""

    def __init__(self, ax, highlight_color: str = style.ACCENT, highlight_label: str = "top-k (applied)") -> None:
        self.ax = ax
        self.color = highlight_color
        self.label = highlight_label
        self.shape: Optional[tuple[int, int]] = None
        self.bars = []
        self._build(0, 0)

    def _build(self, layers: int, experts: int, empty_text: str = "no routing yet") -> None:
        ax = self.ax
        ax.clear()
        ax.set_ylabel("router softmax")
        ax.set_ylim(0, 1)
        ax.grid(axis="x", visible=False)
        self.shape = (layers, experts)
        if not layers:
            ax.set_xticks([])
            ax.text(0.5, 0.5, empty_text, transform=ax.transAxes, ha="center", va="center",
                    color=style.MUTED)
            return
        x = np.array([i * (experts + 1) + j for i in range(layers) for j in range(experts)], dtype=float)
        self.bars = ax.bar(x, np.zeros(len(x)), width=0.85, color=BAR_OFF, linewidth=0)
        ax.axhline(1.0 / experts, color=style.MUTED, lw=0.8, ls=(0, (3, 3)), zorder=0.5)
        centers = [i * (experts + 1) + (experts - 1) / 2 for i in range(layers)]
        ax.set_xticks(centers)
        ax.set_xlim(-1, layers * (experts + 1) - 1)
        self.x = x
        ax.legend(handles=[Patch(color=self.color, label=self.label), Patch(color=BAR_OFF, label="other experts"),
                           Line2D([], [], color=style.MUTED, lw=0.8, ls=(0, (3, 3)), label=f"uniform 1/{experts}")],
                  loc="upper right", ncol=3, handlelength=1.2, columnspacing=1.0)

    def update(self, weights: Sequence[Sequence[float]], highlight: Sequence[Sequence[int]],
               layer_labels: Optional[Sequence[str]] = None, empty_text: str = "no routing yet") -> None:
        w = np.asarray(weights, dtype=float)
        if w.ndim != 2 or w.size == 0:
            self._build(0, 0, empty_text)
            return
        layers, experts = w.shape
        if self.shape != (layers, experts):
            self._build(layers, experts)
        chosen = {(i, int(j)) for i, row in enumerate(highlight) for j in row}
        for index, bar in enumerate(self.bars):
            i, j = divmod(index, experts)
            bar.set_height(w[i, j])
            bar.set_color(self.color if (i, j) in chosen else BAR_OFF)
        self.ax.set_ylim(0, min(1.0, max(0.45, float(w.max()) * 1.3)))
        labels = layer_labels or [f"L{i + 1}" for i in range(layers)]
        self.ax.set_xticklabels(labels)


class CodeGrid:
    """An allocation code (L*N bits) as an L x N grid; cells that differ from a reference
    code are marked with a red outline."""

    def __init__(self, ax, title: str, on_color: str) -> None:
        self.ax = ax
        self.title = title
        self.cmap = ListedColormap(["#ffffff", on_color])
        self.image = None
        self.marks = None
        self.shape: Optional[tuple[int, int]] = None

    def _build(self, layers: int, experts: int, labels: Optional[Sequence[str]] = None) -> None:
        ax = self.ax
        ax.clear()
        ax.grid(False)
        for side in ("top", "right", "left", "bottom"):
            ax.spines[side].set_visible(True)
            ax.spines[side].set_color(style.BORDER)
        self.image = ax.imshow(np.zeros((layers, experts)), cmap=self.cmap, vmin=0, vmax=1, aspect="auto",
                               interpolation="nearest")
        ax.set_xticks(range(experts))
        ax.set_xticklabels([f"E{j + 1}" for j in range(experts)])
        ax.set_yticks(range(layers))
        ax.set_yticklabels(list(labels) if labels else [f"L{i + 1}" for i in range(layers)])
        ax.set_xticks(np.arange(-0.5, experts), minor=True)
        ax.set_yticks(np.arange(-0.5, layers), minor=True)
        ax.grid(which="minor", color=style.BORDER, linewidth=0.8)
        ax.tick_params(which="minor", length=0)
        ax.tick_params(length=0)
        self.marks = ax.scatter([], [], s=150, marker="s", facecolors="none", edgecolors=style.ERROR, linewidths=1.6)
        self.empty = ax.text(0.5, 0.5, "", transform=ax.transAxes, ha="center", va="center", color=style.MUTED,
                             fontsize=8, wrap=True)
        self.shape = (layers, experts)

    def update(self, code: Optional[Sequence[int]], layers: int, experts: int,
               reference: Optional[Sequence[int]] = None, title: Optional[str] = None,
               empty_text: str = "no edit", labels: Optional[Sequence[str]] = None) -> None:
        if self.shape != (layers, experts) or labels != getattr(self, "labels", None):
            self._build(layers, experts, labels)
            self.labels = labels
        self.ax.set_title(title or self.title, fontsize=8.5)
        if code is None:
            self.image.set_data(np.zeros((layers, experts)))
            self.image.set_alpha(0.0)
            self.marks.set_offsets(np.empty((0, 2)))
            self.empty.set_text(empty_text)
            return
        grid = np.asarray(code, dtype=float).reshape(layers, experts)
        self.image.set_data(grid)
        self.image.set_alpha(1.0)
        self.empty.set_text("")
        if reference is not None:
            ref = np.asarray(reference, dtype=float).reshape(layers, experts)
            rows, cols = np.nonzero(grid != ref)
            self.marks.set_offsets(np.column_stack([cols, rows]) if len(rows) else np.empty((0, 2)))
        else:
            self.marks.set_offsets(np.empty((0, 2)))


class RouterHeatmap:
    """The router softmax as an L x N heat map (compact), highlighted cells outlined."""

    def __init__(self, ax, outline_color: str = style.EDIT, cmap=None) -> None:
        self.ax = ax
        self.outline = outline_color
        self.cmap = cmap or LinearSegmentedColormap.from_list("router", ["#ffffff", style.ACCENT_LIGHT, "#7fa6d3"])
        self.shape: Optional[tuple[int, int]] = None
        self.image = None
        self.texts = []

    def _build(self, layers: int, experts: int, labels: Optional[Sequence[str]]) -> None:
        ax = self.ax
        ax.clear()
        ax.grid(False)
        for side in ax.spines.values():
            side.set_visible(False)
        self.image = ax.imshow(np.zeros((layers, experts)), cmap=self.cmap, vmin=0, vmax=0.6, aspect="auto",
                               interpolation="nearest")
        ax.set_xticks(range(experts))
        ax.set_xticklabels([f"E{j + 1}" for j in range(experts)])
        ax.set_yticks(range(layers))
        ax.set_yticklabels(list(labels) if labels else [f"L{i + 1}" for i in range(layers)])
        ax.tick_params(length=0)
        ax.set_xticks(np.arange(-0.5, experts), minor=True)
        ax.set_yticks(np.arange(-0.5, layers), minor=True)
        ax.grid(which="minor", color="white", linewidth=1.5)
        ax.tick_params(which="minor", length=0)
        self.marks = ax.scatter([], [], s=250, marker="s", facecolors="none", edgecolors=self.outline,
                                linewidths=1.8)
        self.texts = [[ax.text(j, i, "", ha="center", va="center", fontsize=7) for j in range(experts)]
                      for i in range(layers)]
        self.shape = (layers, experts)

    def update(self, weights, highlight, labels: Optional[Sequence[str]] = None) -> None:
        w = np.asarray(weights, dtype=float)
        if w.ndim != 2 or w.size == 0:
            return
        layers, experts = w.shape
        if self.shape != (layers, experts):
            self._build(layers, experts, labels)
        self.image.set_data(w)
        vmax = max(0.5, float(w.max()))
        self.image.set_clim(0, vmax)
        for i in range(layers):
            for j in range(experts):
                self.texts[i][j].set_text(f"{w[i, j]:.2f}")
                self.texts[i][j].set_color(style.TEXT)
        cells = [(int(j), i) for i, row in enumerate(highlight) for j in row]
        self.marks.set_offsets(np.asarray(cells, dtype=float) if cells else np.empty((0, 2)))
