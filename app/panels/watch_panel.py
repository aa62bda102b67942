"""Watch-list panel: the prompts kept with the history and re-probed after every change, as a
table of the original model's answer, the answer before the last action and after it. Rows are
added one at a time, pasted many at once, imported and exported; the panel subscribes to the
watch controller's signals and calls its methods, never the engine."""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView, QCheckBox, QDialog, QDialogButtonBox, QFileDialog, QHBoxLayout, QHeaderView, QLabel,
    QLineEdit, QPlainTextEdit, QProgressBar, QPushButton, QTableView, QVBoxLayout, QWidget,
)

from elder_engine import ElderError
from elder_engine.history import WATCH_ARROW, parse_watch_text

from .. import style
from .watch_model import C_AFTER, C_BEFORE, C_EXPECTED, C_ORIGINAL, C_PROMPT, C_ROUTING, C_STATUS, WatchTableModel

FILE_FILTER = "Text files (*.txt);;CSV files (*.csv);;All files (*)"
FORMAT_HINT = (f"One prompt per line. An expected answer may follow after a tab or after “{WATCH_ARROW.strip()}”, "
               f"e.g. “The capital of Germany is{WATCH_ARROW}Berlin”. Blank lines are skipped.")


class PasteDialog(QDialog):
    """Many prompts at once. The text is checked when OK is pressed; a bad line keeps the
    dialog open with the text as typed and says which line."""

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Add prompts to the watch list")
        self.resize(640, 420)
        self.items: list = []
        hint = QLabel(FORMAT_HINT)
        hint.setWordWrap(True)
        hint.setProperty("role", "hint")
        self.text = QPlainTextEdit()
        self.text.setPlaceholderText(f"The capital of Germany is{WATCH_ARROW}Berlin\nWho wrote the play Hamlet?")
        self.error = QLabel("")
        self.error.setProperty("role", "error")
        self.error.setWordWrap(True)
        self.error.hide()
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.button(QDialogButtonBox.Ok).setText("Add")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(hint)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.error)
        layout.addWidget(buttons)

    def accept(self) -> None:
        try:
            items = parse_watch_text(self.text.toPlainText())
        except ElderError as error:
            self.show_error(str(error))
            return
        if not items:
            self.show_error("There is nothing to add; type or paste one prompt per line.")
            return
        self.items = items
        super().accept()

    def show_error(self, message: str) -> None:
        self.error.setText(message)
        self.error.show()


class WatchTable(QTableView):
    """Paints while holding the GIL once: left to Qt, each cell's data() call takes the GIL on
    its own and waits for the worker thread to hand it over (about 1 ms each), which stalled
    the window for 100-200 ms per repaint of a 50-row list during a re-probe (measured)."""

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().paintEvent(event)


class WatchPanel(QWidget):
    title_changed = Signal(str)     # the tab's title, with the count of changed answers

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.controller = None
        self.enabled = True
        self.running = False
        self.has_history = False
        self.model = WatchTableModel(self)
        self.table = WatchTable()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.ElideRight)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(26)
        header = self.table.horizontalHeader()
        header.setHighlightSections(False)
        header.setMinimumSectionSize(40)
        # Fixed widths where a column's content is short: measuring every row on each update
        # would cost time with long lists.
        header.setSectionResizeMode(QHeaderView.Interactive)
        for col in (C_PROMPT, C_ORIGINAL, C_BEFORE, C_AFTER):
            header.setSectionResizeMode(col, QHeaderView.Stretch)
        for col, width in ((0, 40), (C_EXPECTED, 110), (C_ROUTING, 104), (C_STATUS, 170)):
            self.table.setColumnWidth(col, width)
        self.table.selectionModel().selectionChanged.connect(lambda *_a: self._update_buttons())

        self.prompt = QLineEdit(placeholderText="A prompt to watch, e.g. The capital of Germany is")
        self.expected = QLineEdit(placeholderText="Expected (optional)")
        self.expected.setFixedWidth(180)
        self.prompt.returnPressed.connect(self.add_typed)
        self.expected.returnPressed.connect(self.add_typed)
        self.prompt.textEdited.connect(lambda _t: self._field_error(""))
        self.add_button = QPushButton("Add")
        self.add_button.clicked.connect(self.add_typed)
        self.paste_button = QPushButton("Paste many…")
        self.paste_button.setToolTip(FORMAT_HINT)
        self.paste_button.clicked.connect(self.ask_paste)
        self.import_button = QPushButton("Import…")
        self.import_button.setToolTip("Add the prompts of a .txt (one per line) or .csv (prompt,expected) file")
        self.import_button.clicked.connect(self.ask_import)
        self.export_button = QPushButton("Export…")
        self.export_button.clicked.connect(self.ask_export)
        self.remove_button = QPushButton("Remove selected")
        self.remove_button.clicked.connect(self.remove_selected)
        QShortcut(QKeySequence.Delete, self.table, self.remove_selected)
        self.run_button = QPushButton("Re-probe now")
        self.run_button.setProperty("primary", True)
        self.run_button.clicked.connect(lambda: self.controller and self.controller.run())
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(lambda: self.controller and self.controller.cancel())
        self.auto = QCheckBox("Re-probe after every change")
        self.auto.setToolTip("Re-probe the list after every edit, rollback, revert, undo and redo")
        self.auto.setChecked(True)
        self.auto.toggled.connect(self._set_auto)
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(220)
        self.progress.setFormat("%v / %m")
        self.progress.hide()
        self.error = QLabel("")
        self.error.setProperty("role", "error")
        self.error.hide()
        self.summary = QLabel("No history open.")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.legend = QLabel(
            f"<span style='background:#fde3a7'>&nbsp;changed by the last action&nbsp;</span>&nbsp;&nbsp;"
            f"<span style='background:#ece3f8'>&nbsp;differs from the original model&nbsp;</span>&nbsp;&nbsp;"
            f"<span style='color:{style.MUTED}'>grey: answer from an earlier state</span>")
        self.legend.setProperty("role", "hint")

        add_row = QHBoxLayout()
        add_row.addWidget(self.prompt, 1)
        add_row.addWidget(self.expected)
        add_row.addWidget(self.add_button)
        tools = QHBoxLayout()
        for button in (self.paste_button, self.import_button, self.export_button, self.remove_button):
            tools.addWidget(button)
        tools.addStretch(1)
        tools.addWidget(self.auto)
        run_row = QHBoxLayout()
        run_row.addWidget(self.summary, 1)
        run_row.addWidget(self.progress)
        run_row.addWidget(self.cancel_button)
        run_row.addWidget(self.run_button)
        self.legend.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 12, 12, 12)
        layout.setSpacing(8)
        layout.addLayout(add_row)
        layout.addWidget(self.error)
        layout.addLayout(tools)
        layout.addLayout(run_row)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.legend)
        self._update_buttons()

    # ------------------------------------------------------------------ wiring
    def bind(self, controller) -> None:
        self.controller = controller
        controller.changed.connect(self.show_view)
        controller.row_probed.connect(self.show_row)
        controller.progress.connect(self._on_progress)
        controller.running.connect(self._on_running)
        self.auto.setChecked(controller.auto)

    def set_enabled(self, enabled: bool) -> None:
        self.enabled = enabled
        self._update_buttons()

    def _set_auto(self, on: bool) -> None:
        if self.controller is not None:
            self.controller.auto = on

    # ------------------------------------------------------------------ view
    def show_view(self, view) -> None:
        self.has_history = view.report is not None
        self.model.set_report(view.report)
        self._summarise(view.report, view.action, view.note)
        self._update_buttons()

    def show_row(self, item) -> None:
        self.model.update_item(item)

    def _summarise(self, report, action: str, note: str = "") -> None:
        if report is None:
            self.summary.setText("No history open: the watch list is kept in the edit history.")
            self.title_changed.emit("Watch list")
            return
        c = report.counts
        if not c["prompts"]:
            self.summary.setText("No prompts watched yet. Add the prompts an edit must leave alone (or the "
                                 "edit form's locality prompts), and they are re-probed after every change.")
            self.title_changed.emit("Watch list")
            return
        parts = [f"<b>{c['prompts']}</b> prompt{'s' if c['prompts'] != 1 else ''}",
                 f"<b>{c['changed']}</b> changed since the original"]
        if action:
            parts.append(f"<b>{c['moved']}</b> changed by the last action ({action})")
        parts.append(f"{c['fired']} fired, {c['deferred']} deferred")
        if c["with_expected"]:
            parts.append(f"expected answers met: {c['meets_expected']} of {c['with_expected']}")
        if c["stale"]:
            parts.append(f"<span style='color:{style.DEFERRED}'>{c['stale']} not probed in this state</span>")
        if note:
            parts.append(f"<i>{note}</i>")
        self.summary.setText(" · ".join(parts))
        self.title_changed.emit(f"Watch list ({c['changed']} changed)" if c["changed"] else "Watch list")

    def _on_progress(self, done: int, total: int) -> None:
        self.progress.setMaximum(max(total, 1))
        self.progress.setValue(done)

    def _on_running(self, running: bool) -> None:
        self.running = running
        self.progress.setVisible(running)
        if running:
            self.progress.setValue(0)
        self._update_buttons()

    def _update_buttons(self) -> None:
        ready = self.enabled and self.has_history and self.controller is not None
        for w in (self.prompt, self.expected, self.add_button, self.paste_button, self.import_button):
            w.setEnabled(ready)
        self.export_button.setEnabled(ready and bool(self.model.items))
        self.run_button.setEnabled(ready and bool(self.model.items))
        self.remove_button.setEnabled(ready and bool(self.selected_ids()))
        self.cancel_button.setVisible(self.running)
        self.cancel_button.setEnabled(self.running)

    # ------------------------------------------------------------------ actions
    def selected_ids(self) -> list[int]:
        rows = sorted({i.row() for i in self.table.selectionModel().selectedRows()})
        return [self.model.items[r].id for r in rows if r < len(self.model.items)]

    def _field_error(self, message: str) -> None:
        self.prompt.setProperty("invalid", bool(message))
        style.repolish(self.prompt)
        self.error.setText(message)
        self.error.setVisible(bool(message))

    def add_typed(self) -> None:
        if not self.add_button.isEnabled():
            return
        prompt = self.prompt.text().strip()
        if not prompt:
            self._field_error("Type a prompt to watch (the expected answer is optional).")
            return
        self._field_error("")
        self.controller.add([(prompt, self.expected.text().strip())])
        self.prompt.clear()
        self.expected.clear()

    def ask_paste(self) -> PasteDialog:
        dialog = PasteDialog(self)
        dialog.accepted.connect(lambda: self.controller.add(dialog.items))
        dialog.open()
        return dialog

    def remove_selected(self) -> None:
        ids = self.selected_ids()
        if ids and self.remove_button.isEnabled():
            self.controller.remove(ids)

    def ask_import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import prompts to watch", "", FILE_FILTER)
        if path:
            self.controller.import_file(path)

    def ask_export(self) -> None:
        path, chosen = QFileDialog.getSaveFileName(self, "Export the watch list", "watch.txt", FILE_FILTER)
        if path:
            if "." not in path.rsplit("/", 1)[-1]:
                path += ".csv" if chosen.startswith("CSV") else ".txt"
            self.controller.export_file(path)
