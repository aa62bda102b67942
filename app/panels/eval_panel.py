"""Evaluate panel: pick a data file and a number of edits, run a lifelong evaluation on a copy
of the model (progress, cancel), see the metrics table and curve, export CSV / PNG."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Optional

from matplotlib.ticker import MaxNLocator
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from elder_engine import TOKEN_METRICS, ElderError, dev_split

from .. import style
from ..plots import PlotWidget
from ..session.eval_session import METRICS

SAMPLES = Path(__file__).resolve().parents[2] / "resources" / "samples"
ITEM_COLUMNS = (("#", 32), ("Prompt", 0), ("Target", 110), ("Output", 150), ("Rel.", 54),
                ("Gen.", 54), ("Loc.", 54))
CURVE_METRICS = tuple(zip(TOKEN_METRICS, (style.ACCENT, style.EDIT, style.FIRED)))


def known_data_files() -> list[tuple[str, str]]:
    """(label, path) of the bundled samples and the development splits that exist here."""
    files = [(f"Sample: {p.stem.replace('_sample', '')} ({p.name})", str(p))
             for p in sorted(SAMPLES.glob("*.json*")) if p.is_file()]
    for name in ("zsre", "counterfact", "hallucination"):
        try:
            files.append((f"Dev split: {name}", str(dev_split(name))))
        except ElderError:
            pass
    return files


def _fmt(value: float, key: str, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.2f} s" if key == "seconds_per_edit" else f"{100 * value:.{digits}f} %"


class EvalCurve(PlotWidget):
    def __init__(self, parent=None) -> None:
        super().__init__("Metrics after n edits", parent, height=3.2, width=5.5)

    def build(self) -> None:
        self.ax = self.figure.add_subplot(111)
        self.figure.subplots_adjust(left=0.11, right=0.97, top=0.86, bottom=0.15)
        self._clear()

    def clear(self) -> None:
        self.call(self._clear)

    def _clear(self) -> None:
        self.ax.clear()
        self.ax.set_xlabel("edits applied")
        self.ax.set_ylabel("score (%)")
        self.ax.set_ylim(0, 105)
        self.ax.set_xticks([])
        self.ax.text(0.5, 0.5, "Run an evaluation to see the curve", transform=self.ax.transAxes, ha="center",
                     va="center", color=style.MUTED)

    def show_run(self, run) -> None:
        points = run.curve()
        self.call(lambda: self._draw_run(points))

    def _draw_run(self, points: dict) -> None:
        """Render thread."""
        self.ax.clear()
        xs = list(points)
        for key, color in CURVE_METRICS:
            ys = [100 * getattr(points[n], key) for n in xs]
            self.ax.plot(xs, ys, marker="o", ms=4, lw=1.6, color=color, label=key.capitalize())
        self.ax.set_xlabel("edits applied (metrics measured after all of them)")
        self.ax.set_ylabel("score (%)")
        self.ax.set_ylim(0, 105)
        self.ax.set_xlim(0, max(xs) + 1 if xs else 1)
        self.ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        self.ax.legend(loc="lower left", ncol=3, bbox_to_anchor=(0, 1.0))


class EvalPanel(QWidget):
    run_requested = Signal(str, int)     # data path, number of edits
    keep_requested = Signal(object)      # EvalRun

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.data = QComboBox(editable=True)
        self.data.setInsertPolicy(QComboBox.NoInsert)
        for label, path in known_data_files():
            self.data.addItem(label, path)
        self.data.setToolTip("ZsRE, COUNTERFACT, hallucination or the workbench's plain format (.json/.jsonl/.csv)")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.edits = QSpinBox(minimum=1, maximum=100000, value=10)
        self.edits.setToolTip("How many records, from the start of the file, are edited in sequence")
        self.run_button = QPushButton("Run evaluation")
        self.run_button.setProperty("primary", True)
        self.run_button.clicked.connect(self._run)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("idle")
        self.status = QLabel("Runs on a separate copy of the model (one more copy of the weights in memory, "
                             "about 0.55 GB for the default model); your model and history are not touched.")
        self.status.setProperty("role", "hint")
        self.status.setWordWrap(True)

        self.items = QTableWidget(0, len(ITEM_COLUMNS))
        self.items.setHorizontalHeaderLabels([c for c, _w in ITEM_COLUMNS])
        self.items.verticalHeader().hide()
        self.items.setEditTriggers(QTableWidget.NoEditTriggers)
        self.items.setShowGrid(False)
        self.items.setAlternatingRowColors(True)
        self.items.setWordWrap(False)
        for col, (_name, width) in enumerate(ITEM_COLUMNS):
            if width:
                self.items.setColumnWidth(col, width)
        self.items.horizontalHeader().setSectionResizeMode(1, QHeaderView.Stretch)
        self.items.setToolTip("Raw outputs after all edits: the greedy continuation of each edit prompt, and "
                              "its reliability, generalization and locality")
        self.table = QTableWidget(len(METRICS), 2)
        self.table.setHorizontalHeaderLabels(["Metric", "Value"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.setShowGrid(False)
        self.table.setAlternatingRowColors(True)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.Stretch)
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeToContents)
        for row, (_key, label) in enumerate(METRICS):
            self.table.setItem(row, 0, QTableWidgetItem(label))
            item = QTableWidgetItem("—")
            item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
            self.table.setItem(row, 1, item)
        self.table.verticalHeader().setDefaultSectionSize(23)
        self.table.setVerticalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.table.setFixedHeight(23 * len(METRICS) + 36)
        self.curve = EvalCurve()
        self.export_button = QPushButton("Export CSV…")
        self.export_button.clicked.connect(self._ask_export_csv)
        self.keep_button = QPushButton("Keep these edits")
        self.keep_button.setToolTip("Apply the evaluated edits to your own model and record them in the history")
        self.keep_button.clicked.connect(lambda: self.run and self.keep_requested.emit(self.run))
        self.summary = QLabel("")
        self.summary.setProperty("role", "hint")
        self.summary.setWordWrap(True)

        form = QGridLayout()
        form.setHorizontalSpacing(10)
        form.addWidget(QLabel("Data file"), 0, 0)
        form.addWidget(self.data, 0, 1)
        form.addWidget(browse, 0, 2)
        form.addWidget(QLabel("Edits"), 1, 0)
        row = QHBoxLayout()
        row.addWidget(self.edits)
        row.addStretch(1)
        row.addWidget(self.run_button)
        row.addWidget(self.cancel_button)
        form.addLayout(row, 1, 1, 1, 2)
        form.setColumnStretch(1, 1)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.table)
        per_edit = QLabel("Per edit")
        per_edit.setProperty("role", "heading")
        left_layout.addWidget(per_edit)
        left_layout.addWidget(self.items, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.export_button)
        buttons.addWidget(self.keep_button)
        buttons.addStretch(1)
        left_layout.addLayout(buttons)
        results = QSplitter(Qt.Horizontal)
        results.addWidget(left)
        results.addWidget(self.curve)
        results.setStretchFactor(0, 3)
        results.setStretchFactor(1, 2)
        results.setSizes([640, 520])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 12, 12, 12)
        layout.setSpacing(8)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(results, 1)
        layout.addWidget(self.summary)
        self.run = None
        self.running = False
        self._update_buttons()

    # ------------------------------------------------------------------ input
    def data_path(self) -> str:
        index = self.data.currentIndex()
        text = self.data.currentText().strip()
        if index >= 0 and self.data.itemText(index) == text:
            return self.data.itemData(index) or text
        return text

    def set_data_path(self, path: str) -> None:
        for i in range(self.data.count()):
            if self.data.itemData(i) == path:
                self.data.setCurrentIndex(i)
                return
        self.data.addItem(Path(path).name, path)
        self.data.setCurrentIndex(self.data.count() - 1)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose an edit set", str(SAMPLES),
                                              "Edit sets (*.json *.jsonl *.ndjson *.csv);;All files (*)")
        if path:
            self.set_data_path(path)

    def _run(self) -> None:
        path = self.data_path()
        if not path:
            self.status.setText("Choose a data file first.")
            return
        self.run_requested.emit(path, self.edits.value())

    # ------------------------------------------------------------------ state
    def set_enabled(self, enabled: bool) -> None:
        self.enabled = enabled
        self._update_buttons()

    def _update_buttons(self) -> None:
        enabled = getattr(self, "enabled", True)
        self.run_button.setEnabled(enabled and not self.running)
        self.cancel_button.setEnabled(self.running)
        self.export_button.setEnabled(self.run is not None)
        self.keep_button.setEnabled(enabled and self.run is not None and not self.running and bool(self.run.records))

    def on_started(self) -> None:
        self.running = True
        self.progress.setRange(0, 0)
        self.progress.setFormat("starting…")
        self._update_buttons()

    def on_progress(self, event) -> None:
        self.progress.setRange(0, max(1, event.total))
        self.progress.setValue(event.done)
        self.progress.setFormat(f"{event.message}  (%v / %m)")

    def on_ended(self, ok: bool) -> None:
        self.running = False
        if not ok:
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
            self.progress.setFormat("stopped")
        self._update_buttons()

    def show_run(self, run) -> None:
        self.run = run
        r = run.result
        for row, (key, _label) in enumerate(METRICS):
            self.table.item(row, 1).setText(_fmt(getattr(r, key), key))
        self._show_items(r.items)
        self.curve.show_run(run)
        self.progress.setFormat("done")
        skipped = f", {run.skipped} malformed records skipped" if run.skipped else ""
        self.summary.setText(f"{r.edits} edits from {Path(run.data_path).name} ({run.data_format}{skipped}), "
                             f"profile {run.settings.get('profile', '?')}, {run.wall_seconds:.0f} s in all. "
                             "Metrics are measured after all edits, on a copy of the model.")
        self._update_buttons()

    def _show_items(self, items: list) -> None:
        self.items.setRowCount(len(items))
        for row, item in enumerate(items):
            gen = [p["accuracy"] for p in item.get("paraphrases", [])]
            loc = [p["accuracy"] for p in item.get("locality", [])]
            values = [str(item.get("index", row)), item.get("prompt", ""), item.get("target", ""),
                      " ".join(str(item.get("output", "")).split()),
                      _fmt(item.get("reliability"), "", 0), _fmt(sum(gen) / len(gen), "", 0) if gen else "—",
                      _fmt(sum(loc) / len(loc), "", 0) if loc else "—"]
            for col, value in enumerate(values):
                cell = QTableWidgetItem(value)
                cell.setToolTip(value)
                if col == 0 or col >= 4:
                    cell.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                self.items.setItem(row, col, cell)

    # ----------------------------------------------------------------- export
    def export_csv(self, path: str | Path) -> Path:
        path = Path(path)
        keys = [k for k, _ in METRICS]
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["edits"] + keys)
            for n, result in self.run.curve().items():
                writer.writerow([n] + [getattr(result, k) for k in keys])
        return path

    def _ask_export_csv(self) -> None:
        if self.run is None:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export metrics", "elder_eval.csv", "CSV (*.csv)")
        if path:
            try:
                self.export_csv(path)
            except OSError as error:
                window = self.window()
                if hasattr(window, "show_error"):
                    window.show_error("The CSV could not be saved", f"{path}: {error.strerror or error}.")
