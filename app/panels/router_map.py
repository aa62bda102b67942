"""Router map: every edit and the recent probes in one 2-D projection of their router
weights, coloured by fired / deferred; hovering a point shows its prompt."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from .. import style
from ..plots import PlotWidget
from ..session.projection import METHODS

MAX_EDIT_LABELS = 15


class RouterMapPlot(PlotWidget):
    hovered = Signal(str)      # text of the point under the mouse ("" when none), for the tooltip

    def __init__(self, parent=None) -> None:
        self.points: list[tuple[object, list[str]]] = []   # (scatter artist, labels)
        self.labels: list = []                               # text beside each edit
        self.data = None
        super().__init__("Router map", parent, height=4.6, width=7.5)
        self.target.hover = self._on_move
        self.hovered.connect(self.canvas.setToolTip)

    def build(self) -> None:
        self.ax = self.figure.add_subplot(111)
        self.figure.subplots_adjust(left=0.06, right=0.98, top=0.92, bottom=0.08)
        self.hover = self.ax.annotate("", xy=(0, 0), xytext=(10, 10), textcoords="offset points", fontsize=8.5,
                                      bbox=dict(boxstyle="round,pad=0.35", fc="white", ec=style.BORDER, alpha=0.95),
                                      zorder=10)
        self.hover.set_visible(False)
        self.note = self.ax.text(0.5, 0.5, "Probe a few queries, then open this map.", transform=self.ax.transAxes,
                                 ha="center", va="center", color=style.MUTED, wrap=True)
        self._empty()

    def _empty(self) -> None:
        ax = self.ax
        for artist, _labels in self.points:
            artist.remove()
        for label in self.labels:
            label.remove()
        self.points, self.labels = [], []
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("")
        ax.set_ylabel("")
        if ax.get_legend():
            ax.get_legend().remove()

    def show_map(self, data) -> None:
        self.data = data
        self.call(lambda: self._draw_map(data))

    def _draw_map(self, data) -> None:
        """Render thread."""
        self._empty()
        ax = self.ax
        self.note.set_text(data.note or ("" if data.coords else "No edits or probes yet."))
        coords = np.asarray(data.coords, dtype=float).reshape(-1, 2)
        n_edits = len(data.edit_prompts)
        edits, probes = coords[:n_edits], coords[n_edits:]
        fired = np.asarray(data.probe_fired, dtype=bool)
        groups = [
            (probes[fired], [self._label(data, i, "probe, fired") for i, f in enumerate(fired) if f],
             dict(marker="o", s=36, c=style.FIRED, label="probe: fired", zorder=3)),
            (probes[~fired], [self._label(data, i, "probe, deferred") for i, f in enumerate(fired) if not f],
             dict(marker="o", s=36, facecolors="white", edgecolors=style.DEFERRED, linewidths=1.6,
                  label="probe: deferred", zorder=3)),
            (edits, [f"edit: {p}" for p in data.edit_prompts],
             dict(marker="D", s=120, facecolors="#e9e1f7", edgecolors=style.EDIT, linewidths=1.6, label="edit",
                  zorder=2)),
        ]
        for xy, labels, kwargs in groups:
            if len(xy):
                self.points.append((ax.scatter(xy[:, 0], xy[:, 1], **kwargs), labels))
        if 0 < n_edits <= MAX_EDIT_LABELS:
            for (x, y), prompt in zip(edits, data.edit_prompts):
                self.labels.append(ax.annotate(prompt if len(prompt) <= 28 else prompt[:27] + "…", (x, y),
                                               xytext=(7, -11), textcoords="offset points", fontsize=7.5,
                                               color=style.EDIT))
        if len(coords):
            pad = (coords.max(0) - coords.min(0)) * 0.12 + 1e-6
            ax.set_xlim(coords[:, 0].min() - pad[0], coords[:, 0].max() + pad[0])
            ax.set_ylim(coords[:, 1].min() - pad[1], coords[:, 1].max() + pad[1])
            ax.legend(loc="upper left", bbox_to_anchor=(0, 1.09), ncol=3)
        ax.set_xlabel(f"{data.method} 1")
        ax.set_ylabel(f"{data.method} 2")

    @staticmethod
    def _label(data, i: int, kind: str) -> str:
        prompt, hamming = data.probe_prompts[i], data.probe_hamming[i]
        route = data.probe_routes[i] if i < len(data.probe_routes) else -1
        if route >= 0 and route < len(data.edit_prompts):
            kind += f" (experts of “{data.edit_prompts[route][:40]}”)"
        distance = f", Hamming {hamming}" if hamming is not None else ""
        return f"{kind}{distance}: {prompt}"

    def _on_move(self, event) -> None:
        """Render thread (mouse moves are forwarded there): show the prompt under the mouse."""
        if event is None or not self.points or not self.ax.bbox.contains(event.x, event.y):
            if self.hover.get_visible():
                self.hover.set_visible(False)
                self.hovered.emit("")
            return
        for artist, labels in self.points:
            hit, info = artist.contains(event)
            if hit and len(info.get("ind", ())):
                i = int(info["ind"][0])
                text = labels[i] if i < len(labels) else ""
                self.hover.xy = artist.get_offsets()[i]
                self.hover.set_text(text if len(text) < 90 else text[:89] + "…")
                self.hover.set_visible(True)
                self.hovered.emit(text)
                return
        if self.hover.get_visible():
            self.hover.set_visible(False)
            self.hovered.emit("")


class RouterMapPanel(QWidget):
    refresh_requested = Signal(str)      # projection method

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.method = QComboBox()
        self.method.addItems(list(METHODS))
        self.method.setToolTip("t-SNE (as in the paper's figure) or PCA (linear, stable between refreshes)")
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(lambda: self.refresh_requested.emit(self.method.currentText()))
        self.method.currentTextChanged.connect(self.refresh_requested)
        self.info = QLabel("Edits (◆) and recent probes (●) placed by their routing under the current model: "
                           "the scoped router's own key space, router weights for router profiles, the expert set "
                           "used for keyed ones. Points close "
                           "together share experts. Hover a point to see its prompt.")
        self.info.setProperty("role", "hint")
        self.info.setWordWrap(True)
        self.counts = QLabel("")
        self.counts.setProperty("role", "hint")
        self.plot = RouterMapPlot()
        top = QHBoxLayout()
        top.addWidget(self.info, 1)
        top.addWidget(QLabel("Projection"))
        top.addWidget(self.method)
        top.addWidget(self.refresh_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 12, 12, 12)
        layout.setSpacing(8)
        layout.addLayout(top)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.counts)

    def show_map(self, data) -> None:
        self.plot.show_map(data)
        if data.note:
            self.counts.setText(data.note)
            return
        fired = sum(data.probe_fired)
        deferral = ("keyed routing" if data.keyed else f"ε = {data.epsilon}") if data.deferral else "deferral off"
        if getattr(data, "space", ""):
            deferral = data.space if data.deferral else "deferral off"
        self.counts.setText(f"{len(data.edit_prompts)} edit(s) · {len(data.probe_prompts)} probe(s) "
                            f"({fired} fired, {len(data.probe_prompts) - fired} deferred) · {deferral}")

    def set_enabled(self, enabled: bool) -> None:
        self.refresh_button.setEnabled(enabled)
