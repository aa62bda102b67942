"""Drawing helpers shared by the router figures: grouped softmax bars and code grids.

Artists are created once per (L, N) shape and updated in place afterwards, so a redraw
during training or after a probe stays cheap for the GUI thread.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from matplotlib.colors import ListedColormap
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

    def _build(self, layers: int, experts: int, labels: Optional[Sequence[str]] = None,
               columns: Optional[Sequence[str]] = None) -> None:
        ax = self.ax
        ax.clear()
        ax.grid(False)
        for side in ("top", "right", "left", "bottom"):
            ax.spines[side].set_visible(True)
            ax.spines[side].set_color(style.BORDER)
        self.image = ax.imshow(np.zeros((layers, experts)), cmap=self.cmap, vmin=0, vmax=1, aspect="auto",
                               interpolation="nearest")
        ax.set_xticks(range(experts))
        ax.set_xticklabels(list(columns) if columns else [f"E{j + 1}" for j in range(experts)],
                           fontsize=7 if experts > 6 else None)
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

    def placeholder(self, text: str) -> None:
        """Before any probe: a titled, empty frame with a hint instead of bare 0-1 axes."""
        ax = self.ax
        ax.clear()
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(True)
            spine.set_color(style.BORDER)
        ax.set_title(self.title, fontsize=8.5)
        ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color=style.MUTED, fontsize=8)
        self.shape = None

    def update(self, code: Optional[Sequence[int]], layers: int, experts: int,
               reference: Optional[Sequence[int]] = None, title: Optional[str] = None,
               empty_text: str = "no edit", labels: Optional[Sequence[str]] = None,
               columns: Optional[Sequence[str]] = None) -> None:
        key = (layers, experts, tuple(labels or ()), tuple(columns or ()))
        if key != self.shape:
            self._build(layers, experts, labels, columns)
            self.shape = key
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



def draw_similarity_gauge(ax, similarity: Optional[float], threshold: float, fired: bool,
                          xlabel: str = "key similarity to the nearest edit (TF-IDF cosine over token ids)") -> None:
    """Keyed and scoped routing's decision on one axes: the similarity to the nearest edit as a
    bar from 0 to 1, and the threshold it must reach."""
    ax.clear()
    ax.set_xlim(0, 1)
    ax.set_ylim(-1.6, 1.6)
    ax.set_yticks([])
    ax.grid(axis="y", visible=False)
    ax.spines["left"].set_visible(False)
    ax.set_xlabel(xlabel)
    color = style.FIRED if fired else style.DEFERRED
    ax.barh([0], [1.0], height=0.55, color="#eef1f5", zorder=1)
    ax.axvspan(threshold, 1.0, ymin=0.05, ymax=0.95, color=style.FIRED_BG, zorder=0)
    ax.axvspan(0.0, threshold, ymin=0.05, ymax=0.95, color=style.DEFERRED_BG, zorder=0)
    ax.text((1 + threshold) / 2, 1.25, "fires", ha="center", fontsize=8, color=style.FIRED)
    ax.text(threshold / 2, 1.25, "defers", ha="center", fontsize=8, color=style.DEFERRED)
    if similarity is not None:
        ax.barh([0], [similarity], height=0.55, color=color, zorder=2)
        ax.plot([similarity], [0], marker="o", ms=7, color="white", mec=color, mew=2, zorder=4, clip_on=False)
        ax.text(similarity, -0.55, f"{similarity:.2f}", ha="center", va="top", fontsize=9.5, fontweight="bold",
                color=color)
    else:
        ax.text(0.5, -0.6, "no edits yet", ha="center", va="top", color=style.MUTED)
    ax.axvline(threshold, color=style.TEXT, lw=1.2, ls=(0, (4, 3)), zorder=3)
    ax.text(threshold, -1.45, f"threshold {threshold:.2f}", fontsize=8, color=style.TEXT, ha="center")


def keyed_columns(n: int, focus: Optional[int], width: int = 12) -> list[int]:
    """Which of n per-edit expert sets to show: all if few, else `width` around `focus`."""
    if n <= width:
        return list(range(n))
    focus = n - 1 if focus is None else focus
    start = min(max(0, focus - width // 2), n - width)
    return list(range(start, start + width))


def scoped_rows(probs: Sequence[float], defer: float, prompts: Sequence[str], fired: Optional[int],
                top: int = 5, width: int = 30) -> list[tuple[str, float, str]]:
    """The scoped router's distribution as bar rows (label, probability, kind): the `top` most
    probable edits by their prompt, the rest grouped, and the defer mass. kind is 'fired',
    'edit', 'rest' or 'defer'."""
    order = sorted(range(len(probs)), key=lambda i: -probs[i])
    rows = []
    for i in order[:top]:
        text = prompts[i] if i < len(prompts) else f"edit {i + 1}"
        text = text if len(text) <= width else text[: width - 1] + "…"
        rows.append((f"#{i + 1} {text}", float(probs[i]), "fired" if i == fired else "edit"))
    rest = order[top:]
    if rest:
        rows.append((f"{len(rest)} other edits", float(sum(probs[i] for i in rest)), "rest"))
    rows.append(("defer (original model)", float(defer), "defer"))
    return rows


def draw_scoped_distribution(ax, rows: list[tuple[str, float, str]]) -> None:
    ax.clear()
    colors = {"fired": style.FIRED, "edit": style.ACCENT, "rest": BAR_OFF, "defer": style.DEFERRED}
    y = np.arange(len(rows))[::-1]
    ax.barh(y, [p for _, p, _ in rows], color=[colors[k] for _, _, k in rows], height=0.7)
    ax.set_yticks(y)
    ax.set_yticklabels([label for label, _, _ in rows], fontsize=7.5)
    ax.set_xlim(0, 1)
    ax.set_xlabel("router probability (shared by every MoLoRA layer)")
    ax.grid(axis="y", visible=False)
    for yy, (_, p, _) in zip(y, rows):
        ax.text(min(p + 0.01, 0.93), yy, f"{p:.2f}", va="center", fontsize=7.5, color=style.TEXT)
