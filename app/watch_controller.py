"""The watch list's side of the controller (GUI thread): queues the watch jobs on the one
worker, keeps the last view, and re-publishes it as signals the watch panel subscribes to.

`after_change` is called by the `Workbench` when an edit, rollback, revert, undo or redo has
changed the engine: the list is re-probed (or only re-read when re-probing is switched off).
"""

from __future__ import annotations

from functools import partial
from typing import Optional

from PySide6.QtCore import QObject, Signal

from .session import watch_session
from .session.messages import UserMessage
from .session.watch_session import WatchView


class WatchController(QObject):
    changed = Signal(object)            # WatchView
    row_probed = Signal(object)         # engine WatchItem, during a run
    progress = Signal(int, int)         # done, total
    running = Signal(bool)

    def __init__(self, bench) -> None:
        super().__init__(bench)
        self.bench = bench
        self.view = WatchView()
        self.auto = True                # re-probe after every change of the engine
        self.action = ""                # what the last probed state follows
        self._runs: list = []           # queued and running re-probe jobs, oldest first

    @property
    def is_running(self) -> bool:
        return bool(self._runs)

    def _show(self, view: WatchView) -> None:
        self.view = view
        self.changed.emit(view)

    def _submit(self, label: str, fn, **kwargs):
        return self.bench._submit(label, fn, kind="watch", **kwargs)

    # ------------------------------------------------------------------ list
    def refresh(self) -> None:
        self._submit("Reading the watch list", partial(watch_session.read, session=self.bench.session,
                                                       action=self.action), on_done=self._show)

    def opened(self) -> None:
        """Another history was opened: its own list, answers as last probed."""
        self.action = ""
        self.refresh()

    def add(self, items) -> None:
        pairs = tuple((i, "") if isinstance(i, str) else (i[0], i[1] or "") for i in items)
        self._submit("Adding to the watch list", partial(watch_session.add, session=self.bench.session,
                                                         items=pairs, action=self.action),
                     on_done=self._show, doing="adding to the watch list")

    def remove(self, ids) -> None:
        self._submit("Removing from the watch list", partial(watch_session.remove, session=self.bench.session,
                                                             ids=tuple(ids), action=self.action),
                     on_done=self._show)

    def import_file(self, path: str) -> None:
        self._submit("Importing the watch list", partial(watch_session.import_file, session=self.bench.session,
                                                         path=path, action=self.action),
                     on_done=self._show, doing=f"importing {path}")

    def export_file(self, path: str) -> None:
        self._submit("Exporting the watch list", partial(watch_session.export_file, session=self.bench.session,
                                                         path=path),
                     on_done=lambda note: self.bench.message.emit(UserMessage("Watch list exported", note, "info")),
                     doing=f"exporting to {path}")

    # ------------------------------------------------------------------ probing
    def after_change(self, action: str) -> None:
        self.action = action
        if self.auto:   # even an empty list: the edit may have added its locality prompts
            self.run(action)
        else:
            self.refresh()

    def run(self, action: Optional[str] = None) -> None:
        if action is not None:
            self.action = action

        def progress(event) -> None:
            if watch_session.is_row_event(event):
                self.row_probed.emit(event.detail["row"])
            self.progress.emit(event.done, event.total)
            self.bench.activity_progress.emit(event.done, event.total, event.message)

        def ended(view: Optional[WatchView]) -> None:
            if job in self._runs:
                self._runs.remove(job)
            if not self._runs:
                self.running.emit(False)
            if view is not None:
                self._show(view)

        def failed(_error) -> bool:
            ended(None)
            return False

        job = self._submit("Re-probing the watch list",
                           partial(watch_session.run, session=self.bench.session, action=self.action),
                           cancellable=True, on_progress=progress, on_done=ended, on_cancelled=ended,
                           on_error=failed, doing="re-probing the watch list")
        self._runs.append(job)
        if len(self._runs) == 1:
            self.running.emit(True)

    def cancel(self) -> None:
        for job in list(self._runs):
            self.bench.worker.cancel(job)
