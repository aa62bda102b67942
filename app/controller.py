"""The app-side model/controller (napari-style): the only GUI-thread object that knows the
engine. It queues jobs on the worker and re-publishes their outcome as Qt signals; widgets
subscribe to those signals and call its methods, never the engine.
"""

from __future__ import annotations

import logging
from collections import deque
from functools import partial
from pathlib import Path
from typing import Optional

from PySide6.QtCore import QObject, Signal

from elder_engine import EditRequest, EditStarted, EditStep, Progress

from .session import eval_session
from .session.engine_session import EngineSession, FieldError, HistoryState, LoadMessage, ModelInfo
from .session.messages import UserMessage, describe
from .watch_controller import WatchController
from .worker import Job, Worker

log = logging.getLogger(__name__)
MAX_RECENT_PROBES = 40


class Workbench(QObject):
    # activity
    busy_changed = Signal(bool)
    activity_started = Signal(str, bool)        # label, cancellable
    activity_progress = Signal(int, int, str)   # done, total (0 = unknown), message
    activity_ended = Signal()
    message = Signal(object)                    # UserMessage
    field_error = Signal(str, str, str)         # form ("edit" | "probe"), field, message
    # model
    model_loading = Signal(str)                 # source
    load_message = Signal(str)
    model_loaded = Signal(object)               # ModelInfo
    model_load_failed = Signal()
    info_changed = Signal(object)               # ModelInfo
    history_changed = Signal(object)            # HistoryState
    # edit / probe / map / eval
    edit_started = Signal(object)               # EditStarted
    edit_step = Signal(object)                  # EditStep
    edit_finished = Signal(object)              # EditOutcome
    edit_cancelled = Signal(int)                # steps done
    edit_failed = Signal()
    probe_started = Signal(str)
    probe_done = Signal(object)                 # ProbeView
    probe_failed = Signal()
    map_ready = Signal(object)                  # RouterMapData
    eval_progress = Signal(object)              # Progress
    eval_done = Signal(object)                  # EvalRun
    eval_ended = Signal(bool)                   # True when it produced a result

    def __init__(self, data_dir: Path, threads: int, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self.worker = Worker(self)
        self.worker.busy_changed.connect(self.busy_changed)
        self.worker.job_started.connect(lambda job: self.activity_started.emit(job.label, job.cancellable))
        self.worker.job_ended.connect(lambda job: self.activity_ended.emit())
        self.session = EngineSession(Path(data_dir))   # touched only by jobs, in the worker
        self.threads = threads
        self.info: Optional[ModelInfo] = None
        self.history = HistoryState(None)
        self.probe_queries: deque = deque(maxlen=MAX_RECENT_PROBES)   # for the router map
        self.map_stale = True
        self.watch = WatchController(self)

    # ------------------------------------------------------------------ helpers
    @property
    def busy(self) -> bool:
        return self.worker.busy

    @property
    def has_model(self) -> bool:
        return self.info is not None

    def _submit(self, label: str, fn, *, kind: str = "job", cancellable: bool = False, on_done=None,
                on_progress=None, on_cancelled=None, on_error=None, doing: str = "") -> Job:
        def failed(error: BaseException) -> None:
            if on_error is not None and on_error(error):
                return
            self.message.emit(describe(error, doing or label.lower()))
        return self.worker.submit(Job(label, fn, kind=kind, cancellable=cancellable, on_done=on_done,
                                      on_progress=on_progress, on_cancelled=on_cancelled, on_error=failed))

    def _generic_progress(self, event) -> None:
        if isinstance(event, Progress):
            self.activity_progress.emit(event.done, event.total, event.message)
        elif isinstance(event, LoadMessage):
            self.activity_progress.emit(0, 0, event.text)

    def cancel(self) -> None:
        self.worker.cancel()

    def shutdown(self) -> None:
        self.worker.shutdown()
        self.session.close()

    def _set_history(self, state: HistoryState, fresh: bool = False) -> None:
        """`fresh`: another history was opened, so the recent probes are its own."""
        if fresh:
            self.probe_queries = deque(state.probes, maxlen=MAX_RECENT_PROBES)
        self.history = state
        self.map_stale = True
        self.history_changed.emit(state)
        if fresh:
            self.watch.opened()

    def _changed(self, action: str, state: HistoryState) -> None:
        """The engine moved to another state: show the history, then re-probe the watch list."""
        self._set_history(state)
        if state.path:
            self.watch.after_change(action)

    # -------------------------------------------------------------------- model
    def load(self, source: str, history_path: Optional[str] = None, profile: Optional[str] = None,
             prompt_format: Optional[str] = None) -> Job:
        self.model_loading.emit(source)

        def progress(event) -> None:
            if isinstance(event, LoadMessage):
                self.load_message.emit(event.text)
            self._generic_progress(event)

        def done(result) -> None:
            info, history = result
            self.info = info
            self.model_loaded.emit(info)
            self._set_history(history, fresh=True)

        def error(exc) -> bool:
            self.model_load_failed.emit()
            return False

        return self._submit(f"Loading {source}", partial(self.session.load, source=source, threads=self.threads,
                                                          history_path=history_path, profile=profile,
                                                          prompt_format=prompt_format),
                            kind="load", on_done=done, on_progress=progress, on_error=error, doing="loading the model")

    def set_threads(self, threads: int) -> None:
        self.threads = threads
        self._submit("Setting threads", partial(self.session.set_threads, threads=threads),
                     on_done=lambda info: info and self._info(info))

    def set_inference(self, **changes) -> None:
        if self.has_model:
            self._submit("Changing deferral settings", partial(self.session.set_inference, changes=changes),
                         on_done=self._info)

    def _info(self, info: ModelInfo) -> None:
        self.info = info
        self.map_stale = True
        self.info_changed.emit(info)

    # ------------------------------------------------------------------ history
    def open_history(self, path: str, create: bool = False) -> Job:
        return self._submit("Creating history" if create else "Opening history",
                            partial(self.session.open_history, path=path, create=create),
                            on_progress=self._generic_progress, on_done=partial(self._set_history, fresh=True))

    def new_history(self, path: str, prompt_format: str) -> Job:
        """A new history in `prompt_format` (another format than the engine's reloads the model)."""
        def done(result) -> None:
            info, state = result
            self._info(info)
            self._set_history(state, fresh=True)
        return self._submit("Creating history", partial(self.session.new_history, path=path,
                                                        prompt_format=prompt_format),
                            on_progress=self._generic_progress, on_done=done, doing="creating the history")

    def history_action(self, action: str, seq: Optional[int] = None) -> Job:
        labels = {"rollback_to": f"Rolling back to edit {seq}", "revert": f"Reverting edit {seq}",
                  "undo": "Undoing the last edit", "redo": "Redoing"}
        names = {"rollback_to": f"rollback to #{seq}", "revert": f"revert of #{seq}"}
        return self._submit(labels.get(action, action), partial(self.session.history_action, action=action, seq=seq),
                            kind="history", cancellable=True, on_progress=self._generic_progress,
                            on_done=partial(self._changed, names.get(action, action)),
                            on_cancelled=lambda _info: self.refresh_history())

    def refresh_history(self) -> Job:
        return self._submit("Reading history", lambda ctx: self.session.history_state(), on_done=self._set_history)

    def export_bundle(self, path: str) -> Job:
        return self._submit("Exporting bundle", partial(self.session.export_bundle, path=path),
                            on_done=lambda p: self.message.emit(UserMessage("Bundle exported", f"Saved to {p}.", "info")))

    def import_bundle(self, bundle: str, db_path: str) -> Job:
        return self._submit("Importing bundle", partial(self.session.import_bundle, bundle=bundle, db_path=db_path),
                            on_progress=self._generic_progress, on_done=partial(self._set_history, fresh=True))

    # ----------------------------------------------------------- edit and probe
    def edit(self, prompt: str, target: str, paraphrases=(), locality=(), settings: Optional[dict] = None,
             probe_tokens: int = 12, subject: str = "") -> Job:
        request = EditRequest(prompt, target, tuple(paraphrases), settings=settings or None, subject=subject,
                              locality_prompts=tuple(locality))

        def progress(event) -> None:
            if isinstance(event, EditStarted):
                self.edit_started.emit(event)
            elif isinstance(event, EditStep):
                self.edit_step.emit(event)
                self.activity_progress.emit(event.step, event.total_steps, f"step {event.step}/{event.total_steps}")

        def done(outcome) -> None:
            self.map_stale = True
            self.edit_finished.emit(outcome)
            self._changed(f"edit #{outcome.history.head}", outcome.history)

        def error(exc) -> bool:
            self.edit_failed.emit()
            if isinstance(exc, FieldError):
                self.field_error.emit("edit", exc.field, exc.message)
                return True
            return False

        return self._submit("Applying edit", partial(self.session.edit, request=request, locality=tuple(locality),
                                                     probe_tokens=probe_tokens),
                            kind="edit", cancellable=True, on_progress=progress, on_done=done, on_error=error,
                            on_cancelled=lambda steps: self.edit_cancelled.emit(int(steps or 0)),
                            doing="applying the edit")

    def probe(self, query: str, target: Optional[str] = None, tokens: int = 16) -> Job:
        self.probe_started.emit(query)

        def done(view) -> None:
            if view.result.query in self.probe_queries:
                self.probe_queries.remove(view.result.query)
            self.probe_queries.append(view.result.query)
            self.map_stale = True
            self.probe_done.emit(view)

        def error(exc) -> bool:
            self.probe_failed.emit()
            if isinstance(exc, FieldError):
                self.field_error.emit("probe", exc.field, exc.message)
                return True
            return False

        return self._submit("Probing", partial(self.session.probe, query=query, target=target or None, tokens=tokens),
                            kind="probe", on_done=done, on_error=error, doing="probing")

    def refresh_map(self, method: str = "t-SNE") -> Optional[Job]:
        if not self.has_model:
            return None
        prompts = tuple(self.probe_queries)

        def done(data) -> None:
            self.map_stale = False
            self.map_ready.emit(data)
        return self._submit("Computing router map", partial(self.session.router_map, probe_prompts=prompts,
                                                                   method=method),
                            kind="map", on_done=done)

    # --------------------------------------------------------------- evaluation
    def evaluate(self, data_path: str, n_edits: int, settings: Optional[dict] = None) -> Job:
        def progress(event) -> None:
            self._generic_progress(event)
            self.eval_progress.emit(event)

        def done(run) -> None:
            self.eval_done.emit(run)
            self.eval_ended.emit(True)

        def error(exc) -> bool:
            self.eval_ended.emit(False)
            return False

        return self._submit("Evaluating", partial(eval_session.evaluate, session=self.session, data_path=data_path,
                                                  n_edits=n_edits, settings=dict(settings or {})),
                            kind="eval", cancellable=True, on_progress=progress, on_done=done, on_error=error,
                            on_cancelled=lambda _n: self.eval_ended.emit(False), doing="evaluating")

    def keep_eval_edits(self, run, settings: Optional[dict] = None) -> Job:
        def done(state) -> None:
            self._changed("the kept evaluation edits", state)
            self.message.emit(UserMessage("Edits kept", f"{len(run.records)} edits were applied to your model "
                                          "and recorded in the history.", "info"))
        return self._submit("Keeping evaluation edits", partial(eval_session.keep_edits, session=self.session,
                                                                records=run.records, settings=dict(settings or {})),
                            kind="history", cancellable=True, on_progress=self._generic_progress, on_done=done,
                            on_cancelled=lambda _n: self.refresh_history())
