"""History panel: the open history's edits in a table, with rollback / revert / undo / redo
and a text filter. Actions are requested by signal; the window confirms and runs them."""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QPushButton, QTableView, QVBoxLayout, QWidget,
)

from .history_model import HistoryFilter, HistoryTableModel


class HistoryPanel(QWidget):
    action_requested = Signal(str, int)      # "rollback_to" | "revert" | "undo" | "redo", seq (0 if none)
    probe_requested = Signal(str, str)       # prompt, target of the selected edit

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.model = HistoryTableModel(self)
        self.proxy = HistoryFilter(self)
        self.proxy.setSourceModel(self.model)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(26)
        header = self.table.horizontalHeader()
        header.setHighlightSections(False)
        header.setSectionResizeMode(QHeaderView.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.Stretch)
        header.setSectionResizeMode(3, QHeaderView.Stretch)
        self.table.selectionModel().selectionChanged.connect(self._update_buttons)
        self.table.selectionModel().selectionChanged.connect(self._show_details)
        self.table.doubleClicked.connect(lambda _index: self._probe())

        self.filter = QLineEdit(placeholderText="Filter by prompt, target or status…")
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self.proxy.set_text)
        self.details = QLabel("Select an edit to see its details.")
        self.details.setProperty("role", "hint")
        self.details.setWordWrap(True)
        self.details.setTextFormat(Qt.PlainText)
        self.details.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.details.setMinimumHeight(54)
        self.details.setAlignment(Qt.AlignTop | Qt.AlignLeft)
        self.summary = QLabel("No history open.")
        self.summary.setProperty("role", "hint")
        self.summary.setTextInteractionFlags(Qt.TextSelectableByMouse)

        self.rollback_button = QPushButton("Roll back to here")
        self.rollback_button.setToolTip("Undo every edit after the selected one (they can be redone)")
        self.revert_button = QPushButton("Revert this edit")
        self.revert_button.setToolTip("Remove only the selected edit; the later ones are kept")
        self.undo_button = QPushButton("Undo last")
        self.redo_button = QPushButton("Redo")
        self.probe_button = QPushButton("Probe this edit")
        self.rollback_button.clicked.connect(lambda: self._act("rollback_to"))
        self.revert_button.clicked.connect(lambda: self._act("revert"))
        self.undo_button.clicked.connect(lambda: self.action_requested.emit("undo", 0))
        self.redo_button.clicked.connect(lambda: self.action_requested.emit("redo", 0))
        self.probe_button.clicked.connect(self._probe)

        top = QHBoxLayout()
        top.addWidget(self.filter, 1)
        top.addWidget(self.undo_button)
        top.addWidget(self.redo_button)
        bottom = QHBoxLayout()
        bottom.addWidget(self.summary, 1)
        bottom.addWidget(self.probe_button)
        bottom.addWidget(self.rollback_button)
        bottom.addWidget(self.revert_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 12, 12, 12)
        layout.setSpacing(8)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.details)
        layout.addLayout(bottom)
        self.enabled = True
        self.available = True
        self._update_buttons()

    # ------------------------------------------------------------------ state
    def show_history(self, state) -> None:
        """`state` is a HistoryState (path, entries, head)."""
        selected = self.selected_seq()
        self.available = state.available
        self.model.set_entries(state.entries, state.head)
        applied = sum(1 for e in state.entries if getattr(e, "status", "applied") == "applied")
        if state.path:
            n = len(state.entries)
            self.summary.setText(f"{state.path}  ·  {n} edit{'s' if n != 1 else ''}, {applied} applied, head at "
                                 f"#{state.head}")
        elif not state.available:
            self.summary.setText("Edit history is not available in this installation; edits live in memory only.")
        else:
            self.summary.setText("No history open.")
        if selected is not None:
            self.select_seq(selected)
        self._update_buttons()
        self._show_details()

    def set_enabled(self, enabled: bool) -> None:
        self.enabled = enabled
        self._update_buttons()

    def selected_entry(self):
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        return self.model.entry(self.proxy.mapToSource(rows[0]).row())

    def selected_seq(self) -> Optional[int]:
        entry = self.selected_entry()
        return entry.seq if entry is not None else None

    def select_seq(self, seq: int) -> bool:
        for row, entry in enumerate(self.model.entries):
            if entry.seq == seq:
                index = self.proxy.mapFromSource(self.model.index(row, 0))
                if index.isValid():
                    self.table.selectRow(index.row())
                    return True
        return False

    def _update_buttons(self, *_args) -> None:
        entry = self.selected_entry()
        entries = self.model.entries
        active = self.enabled and self.available and bool(entries)
        applied = entry is not None and getattr(entry, "status", "applied") == "applied"
        self.rollback_button.setEnabled(active and entry is not None and (applied or entry.seq <= self.model.head))
        self.revert_button.setEnabled(active and applied)
        self.undo_button.setEnabled(active and any(getattr(e, "status", "") == "applied" for e in entries))
        self.redo_button.setEnabled(active and any(getattr(e, "status", "") == "rolled_back" for e in entries))
        self.probe_button.setEnabled(self.enabled and entry is not None)

    def _show_details(self, *_args) -> None:
        e = self.selected_entry()
        if e is None:
            self.details.setText("Select an edit to see its details.")
            return
        settings = getattr(e, "settings", {}) or {}
        parts = [f"Edit {e.seq}: “{e.prompt}” → “{e.target}”  ({getattr(e, 'status', '')}, profile "
                 f"{getattr(e, 'profile', '?')})"]
        curve = getattr(e, "loss_curve", ()) or ()
        if curve:
            parts.append(f"{len(curve)} training steps, target CE {curve[0]:.2f} → {curve[-1]:.3f}; "
                         + ", ".join(f"{k} {v}" for k, v in settings.items() if v is not None))
        extras = [f"paraphrases: {'; '.join(e.train_paraphrases)}"] if getattr(e, "train_paraphrases", ()) else []
        if getattr(e, "locality_prompts", ()):
            extras.append(f"locality prompts: {'; '.join(e.locality_prompts)}")
        parts += extras
        self.details.setText("\n".join(parts))

    def _act(self, action: str) -> None:
        seq = self.selected_seq()
        if seq is not None:
            self.action_requested.emit(action, seq)

    def _probe(self) -> None:
        entry = self.selected_entry()
        if entry is not None and self.enabled:
            self.probe_requested.emit(entry.prompt, entry.target)
