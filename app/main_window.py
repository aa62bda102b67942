"""The main window: menus, the edit panel beside the probe / map / history / evaluate tabs,
a status bar, a loading overlay and a message bar. It wires widgets to the controller."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from . import __version__, format_choice, runtime
from .controller import Workbench
from .file_dialogs import FileDialogs
from .menus import build_menus
from .overlay import LoadingOverlay
from .panels.edit_panel import EditPanel
from .panels.eval_panel import EvalPanel
from .panels.history_panel import HistoryPanel
from .panels.probe_panel import ProbePanel
from .panels.router_map import RouterMapPanel
from .panels.watch_panel import WatchPanel
from .session.messages import UserMessage
from .settings import AppSettings
from .status_bar import WorkbenchStatusBar
from .widgets import MessageBar

TAB_PROBE, TAB_MAP, TAB_HISTORY, TAB_EVAL, TAB_WATCH = range(5)


class MainWindow(FileDialogs, QMainWindow):
    def __init__(self, settings: AppSettings, data_dir: Path, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        runtime.configure()
        self.settings = settings
        self.setWindowTitle("ELDER Workbench")
        self.bench = Workbench(data_dir, settings.threads(), self)
        self.edit_panel = EditPanel()
        self.probe_panel = ProbePanel()
        self.map_panel = RouterMapPanel()
        self.history_panel = HistoryPanel()
        self.eval_panel = EvalPanel()
        self.watch_panel = WatchPanel()
        self._build_layout()
        self.actions_ = build_menus(self)
        self.status = WorkbenchStatusBar()
        self.setStatusBar(self.status)
        self.status.set_threads(settings.threads())
        self._connect()
        self._restore()
        self._refresh_recent()
        self._update_enabled()

    # ------------------------------------------------------------------ layout
    def _build_layout(self) -> None:
        left = QScrollArea()
        left.setWidgetResizable(True)
        left.setWidget(self.edit_panel)
        left.setMinimumWidth(390)
        left.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(False)
        self.tabs.addTab(self.probe_panel, "Probe")
        self.tabs.addTab(self.map_panel, "Router map")
        self.tabs.addTab(self.history_panel, "History")
        self.tabs.addTab(self.eval_panel, "Evaluate")
        self.tabs.addTab(self.watch_panel, "Watch list")
        self.splitter = QSplitter(Qt.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(self.tabs)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([470, 1000])
        self.splitter.setChildrenCollapsible(False)
        self.message_bar = MessageBar()
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(8, 8, 8, 4)
        layout.setSpacing(6)
        layout.addWidget(self.message_bar)
        layout.addWidget(self.splitter, 1)
        self.setCentralWidget(central)
        self.overlay = LoadingOverlay(central)
        # First run: the designed size, shrunk to fit a smaller screen (a saved geometry wins later).
        screen = self.screen().availableGeometry() if self.screen() else None
        width, height = 1480, 940
        if screen is not None:
            width, height = min(width, int(screen.width() * 0.95)), min(height, int(screen.height() * 0.95))
        self.resize(width, height)

    def _connect(self) -> None:
        b = self.bench
        b.busy_changed.connect(lambda _busy: self._update_enabled())
        b.activity_started.connect(self.status.job_started)
        b.activity_progress.connect(self.status.job_progress_changed)
        b.activity_ended.connect(self._on_job_ended)
        b.message.connect(self.show_message)
        b.field_error.connect(self._on_field_error)
        b.model_loading.connect(self._on_model_loading)
        b.load_message.connect(self.overlay.set_message)
        b.model_loaded.connect(self._on_model_loaded)
        b.model_load_failed.connect(self._on_model_load_failed)
        b.info_changed.connect(self._on_info)
        b.history_changed.connect(self._on_history)
        b.edit_started.connect(self.edit_panel.on_started)
        b.edit_step.connect(self.edit_panel.on_step)
        b.edit_finished.connect(self._on_edit_finished)
        b.edit_cancelled.connect(self.edit_panel.on_cancelled)
        b.edit_failed.connect(self.edit_panel.on_failed)
        b.probe_done.connect(self.probe_panel.show_probe)
        b.probe_failed.connect(lambda: self.probe_panel.set_running(False))
        b.map_ready.connect(self.map_panel.show_map)
        b.eval_progress.connect(self.eval_panel.on_progress)
        b.eval_done.connect(self.eval_panel.show_run)
        b.eval_ended.connect(self.eval_panel.on_ended)

        self.edit_panel.apply_requested.connect(self._apply_edit)
        self.edit_panel.format_change_requested.connect(self.ask_new_history)
        self.edit_panel.cancel_button.clicked.connect(self.cancel_job)
        self.edit_panel.advanced.inference_changed.connect(lambda changes: b.set_inference(**changes))
        self.edit_panel.advanced.training_changed.connect(self.settings.set_training_settings)
        self.edit_panel.advanced.profile_requested.connect(self._switch_profile)
        self.probe_panel.probe_requested.connect(self._probe)
        self.probe_panel.tokens.valueChanged.connect(self.settings.set_probe_tokens)
        self.map_panel.refresh_requested.connect(self._refresh_map)
        self.history_panel.action_requested.connect(self.history_action)
        self.history_panel.probe_requested.connect(self._probe_entry)
        self.eval_panel.run_requested.connect(self._evaluate)
        self.eval_panel.cancel_button.clicked.connect(self.cancel_job)
        self.eval_panel.keep_requested.connect(self._keep_eval)
        self.watch_panel.bind(b.watch)
        self.watch_panel.title_changed.connect(lambda title: self.tabs.setTabText(TAB_WATCH, title))
        self.status.threads_requested.connect(self._set_threads)
        self.status.cancel_requested.connect(self.cancel_job)
        self.tabs.currentChanged.connect(self._on_tab)

    def _restore(self) -> None:
        geometry = self.settings.geometry("geometry")
        self.restored_geometry = geometry is not None and self.restoreGeometry(geometry)
        splitter = self.settings.geometry("splitter")
        if splitter is not None:
            self.splitter.restoreState(splitter)
        self.tabs.setCurrentIndex(int(self.settings.get("window/tab", 0) or 0) % self.tabs.count())
        training = self.settings.training_settings()
        if training:
            self.edit_panel.advanced.set_training(training)
        self.probe_panel.tokens.setValue(self.settings.probe_tokens())
        data = self.settings.get("eval/data", "")
        if data:
            self.eval_panel.set_data_path(str(data))
        self.eval_panel.edits.setValue(int(self.settings.get("eval/edits", 10) or 10))

    def save_state(self) -> None:
        self.settings.set_geometry("geometry", self.saveGeometry())
        self.settings.set_geometry("splitter", self.splitter.saveState())
        self.settings.set("window/tab", self.tabs.currentIndex())
        self.settings.set("eval/edits", self.eval_panel.edits.value())
        self.settings.sync()

    # ------------------------------------------------------------------ state
    def _update_enabled(self) -> None:
        ready = self.bench.has_model and not self.bench.busy
        self.edit_panel.set_enabled(ready)
        self.probe_panel.set_enabled(ready)
        self.history_panel.set_enabled(ready)
        self.map_panel.set_enabled(ready)
        self.eval_panel.set_enabled(ready)
        self.watch_panel.set_enabled(ready)
        a = self.actions_
        for action in (a.open_history, a.new_history, a.export_bundle, a.import_bundle, a.undo, a.redo):
            action.setEnabled(ready)
        for action in (a.open_folder, a.open_gguf, a.open_default, a.recent.menuAction()):
            action.setEnabled(not self.bench.busy)
        a.cancel.setEnabled(self.bench.busy)

    def _on_job_ended(self) -> None:
        self.status.job_ended()
        if self.tabs.currentIndex() == TAB_MAP and self.bench.map_stale and not self.bench.busy:
            self._refresh_map(self.map_panel.method.currentText())

    def show_message(self, message: UserMessage) -> None:
        self.message_bar.show_message(message.level, message.title, message.text)
        if message.level != "info":
            self.status.activity.setText(message.title)

    def show_error(self, title: str, text: str) -> None:
        self.show_message(UserMessage(title, text))

    def confirm(self, title: str, text: str) -> bool:
        """Ask before discarding work (tests replace this)."""
        answer = QMessageBox.question(self, title, text, QMessageBox.Yes | QMessageBox.Cancel, QMessageBox.Cancel)
        return answer == QMessageBox.Yes

    # ------------------------------------------------------------------ model
    def load_model(self, source: str, history_path: Optional[str] = None, profile: Optional[str] = None,
                   prompt_format: Optional[str] = None) -> None:  # the format of a new history (None: by the model)
        if self.bench.busy:
            self.show_message(UserMessage("Busy", "Wait for the running job to finish, or cancel it.", "warning"))
            return
        self.message_bar.hide()
        self.bench.load(source, history_path, profile or self.settings.profile(), prompt_format)

    def _switch_profile(self, name: str) -> None:
        info = self.bench.info
        if info is None or name == info.profile:
            return
        if self.bench.busy or not self.confirm(
                "Switch profile", f"Reload the model with the '{name}' profile?\n\nEach profile keeps its own "
                f"edit history; the edits made with '{info.profile}' stay in theirs."):
            self.edit_panel.advanced.set_profile(info.profile)
            return
        self.settings.set_profile(name)
        self.edit_panel.advanced.set_profile(name, fill=True)
        self.load_model(info.source, profile=name)

    def _on_model_loading(self, source: str) -> None:
        name = "the default model (SmolLM2-135M-Instruct)" if source == "default" else Path(source).name
        self.overlay.start(f"Loading {name}", "Starting…")

    def _on_model_loaded(self, info) -> None:
        self.overlay.hide()
        self.settings.set_last_model(info.source)
        self.settings.add_recent_model(info.source)
        self._refresh_recent()
        self.setWindowTitle(f"ELDER Workbench — {info.display_name}")
        self._on_info(info)
        blocks = list(info.blocks)
        labels = [f"B{b}" for b in blocks] if blocks else None
        self.edit_panel.plot.set_layer_labels(labels)
        self.edit_panel.plot.set_keyed(info.keyed)
        self.probe_panel.router.set_layer_labels(labels)
        self.status.activity.setText(f"Loaded {info.display_name}")
        self._update_enabled()

    def _on_info(self, info) -> None:
        self.status.set_model(info.display_name, info.device)
        self.status.set_threads(info.threads)
        self.edit_panel.advanced.show_engine(info.config, list(info.blocks))

    def _on_model_load_failed(self) -> None:
        self.overlay.hide()
        self._update_enabled()
        if not self.bench.has_model:
            self.status.set_model("none loaded", "—")

    def _refresh_recent(self) -> None:
        menu = self.actions_.recent
        menu.clear()
        recent = self.settings.recent_models()
        for source in recent:
            label = "Default model (SmolLM2-135M-Instruct)" if source == "default" else source
            menu.addAction(label, lambda s=source: self.load_model(s))
        if not recent:
            menu.addAction("(none yet)").setEnabled(False)

    def _set_threads(self, n: int) -> None:
        self.settings.set_threads(n)
        self.status.set_threads(n)
        self.bench.set_threads(n)

    # ------------------------------------------------------------------ edit / probe
    def _apply_edit(self, request: dict) -> None:
        self.bench.edit(request["prompt"], request["target"], request["paraphrases"], request["locality"],
                        request["settings"], probe_tokens=self.probe_panel.tokens.value(),
                        subject=request.get("subject", ""))

    def _on_edit_finished(self, outcome) -> None:
        self.edit_panel.on_finished(outcome)
        edit = outcome.edit
        self.probe_panel.set_query(edit.prompt, edit.target)
        self.tabs.setCurrentIndex(TAB_PROBE)
        self._probe(edit.prompt, edit.target, self.probe_panel.tokens.value())

    def _probe(self, query: str, target: str, tokens: int) -> None:
        self.probe_panel.clear_errors()
        self.probe_panel.set_running(True)
        self.bench.probe(query, target or None, tokens)

    def _probe_entry(self, prompt: str, target: str) -> None:
        self.probe_panel.set_query(prompt, target)
        self.tabs.setCurrentIndex(TAB_PROBE)
        self._probe(prompt, target, self.probe_panel.tokens.value())

    def _on_field_error(self, form: str, field: str, message: str) -> None:
        if form == "edit":
            self.edit_panel.show_field_error(field, message)
        else:
            self.probe_panel.set_running(False)
            self.tabs.setCurrentIndex(TAB_PROBE)
            self.probe_panel.show_field_error(field, message)

    def focus_probe(self) -> None:
        self.tabs.setCurrentIndex(TAB_PROBE)
        self.probe_panel.query.editor.setFocus()
        self.probe_panel.query.editor.selectAll()

    def cancel_job(self) -> None:
        job = self.bench.worker.current
        if job is not None and job.cancellable:
            if job.kind == "edit":
                self.edit_panel.set_cancelling()
            self.status.cancel.setEnabled(False)
            self.bench.cancel()

    def _on_tab(self, index: int) -> None:
        if index == TAB_MAP and self.bench.map_stale and self.bench.has_model and not self.bench.busy:
            self._refresh_map(self.map_panel.method.currentText())

    def _refresh_map(self, method: str) -> None:
        if self.bench.has_model and not self.bench.busy:
            self.bench.refresh_map(method)

    # ------------------------------------------------------------------ history
    def _on_history(self, state) -> None:
        self.history_panel.show_history(state)
        self.status.show_history(state)
        self.edit_panel.set_format(state.prompt_format, bool(self.bench.info and self.bench.info.chat_template))
        # a query in the form the history's format expects: a question in chat, a sentence in plain
        example = format_choice.EXAMPLES.get(state.prompt_format, format_choice.EXAMPLES["plain"])[0]
        self.probe_panel.query.editor.setPlaceholderText(example)

    def history_action(self, action: str, seq: int) -> None:
        if not self.bench.has_model or self.bench.busy:
            return
        entries = self.bench.history.entries
        if action == "rollback_to":
            later = [e for e in entries if e.seq > seq and getattr(e, "status", "") == "applied"]
            if not later:
                self.show_message(UserMessage("Nothing to roll back", f"Edit #{seq} is already the last applied "
                                              "edit.", "info"))
                return
            if not self.confirm("Roll back", f"Roll back to edit #{seq}?\n\nThe {len(later)} later edit(s) will be "
                                "undone. You can redo them until you apply a new edit."):
                return
        elif action == "revert":
            entry = next((e for e in entries if e.seq == seq), None)
            what = f"#{seq} (“{entry.prompt}” → “{entry.target}”)" if entry else f"#{seq}"
            if not self.confirm("Revert edit", f"Revert edit {what}?\n\nIt is removed from the model and the "
                                "later edits are replayed without it."):
                return
        self.bench.history_action(action, seq or None)

    # ------------------------------------------------------------------ evaluation
    def _evaluate(self, path: str, n_edits: int) -> None:
        self.settings.set("eval/data", path)
        self.settings.set("eval/edits", n_edits)
        self.eval_panel.on_started()
        self.bench.evaluate(path, n_edits, self.edit_panel.advanced.training())

    def _keep_eval(self, run) -> None:
        if self.confirm("Keep the evaluated edits", f"Apply the {len(run.records)} evaluated edits to your model "
                        "and record them in the history? They are trained again on your model."):
            self.bench.keep_eval_edits(run, self.edit_panel.advanced.training())

    # ------------------------------------------------------------------ misc
    def show_about(self) -> None:
        QMessageBox.about(self, "About ELDER Workbench", (
            f"<h3>ELDER Workbench {__version__}</h3>"
            "<p>Lifelong knowledge editing of local language models with ELDER: a mixture of LoRA experts "
            "per edit layer, a router per layer, and deferral to the original model when no edit is near "
            "(Li et al., AAAI 2025).</p><p>Apply an edit on the left, probe any query on the right, and walk "
            "the history back and forth. The original weights are never changed.</p>"))

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt API
        job = self.bench.worker.current
        if job is not None and job.kind in ("edit", "eval", "history") and not getattr(self, "_force_close", False):
            if not self.confirm("Quit", f"“{job.label}” is still running. Stop it and quit?"):
                event.ignore()
                return
        self.save_state()
        self.bench.shutdown()
        event.accept()
