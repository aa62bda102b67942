"""One worker thread that owns the model; jobs are queued to it (superqt-style).

A job is a function `fn(ctx)` run in the worker thread. It may return a generator: every
value it yields becomes a `progress` signal, and its `return` value is the job's result.
`ctx.emit(event)` sends progress from callbacks (e.g. a loader's message callback), and
`ctx.cancel` is the engine's CancelToken, honoured between steps.

Signals of the runner arrive at `Worker`, which lives in the GUI thread, so the job's
`on_*` callbacks always run in the GUI thread. Nothing here knows the engine.
"""

from __future__ import annotations

import logging
import traceback
from typing import Optional

from PySide6.QtCore import QObject, QThread, Signal, Slot

from .runtime import lower_thread_priority
from .session.jobs import Job, JobCancelled, JobContext  # noqa: F401  (the worker's job types)

log = logging.getLogger(__name__)
WORKER_NICE = 4   # below the GUI thread, above the plot renderer


class _Runner(QObject):
    """Lives in the worker thread; runs one job at a time, in submission order."""

    @Slot()
    def thread_started(self) -> None:
        lower_thread_priority(WORKER_NICE)

    started = Signal(int)
    progress = Signal(int, object)
    done = Signal(int, object)
    failed = Signal(int, object, str)
    cancelled = Signal(int, object)

    @Slot(object)
    def run(self, job: Job) -> None:
        if job.cancel.cancelled:
            self.cancelled.emit(job.id, None)
            return
        self.started.emit(job.id)
        ctx = JobContext(job.cancel, lambda event: self.progress.emit(job.id, event))
        try:
            result = job.fn(ctx)
            if hasattr(result, "__next__"):
                generator, result = result, None
                while True:
                    try:
                        event = next(generator)
                    except StopIteration as stop:
                        result = stop.value
                        break
                    self.progress.emit(job.id, event)
        except JobCancelled as stop:
            self.cancelled.emit(job.id, stop.args[0] if stop.args else None)
        except BaseException as error:  # noqa: BLE001 - every failure becomes a message
            self.failed.emit(job.id, error, traceback.format_exc())
        else:
            self.done.emit(job.id, result)


class Worker(QObject):
    """GUI-side handle of the worker thread. `submit` queues a job; callbacks run here."""

    busy_changed = Signal(bool)
    job_started = Signal(object)    # Job
    job_ended = Signal(object)      # Job
    _dispatch = Signal(object)

    def __init__(self, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self._thread = QThread()
        self._thread.setObjectName("elder-model-worker")
        self._runner = _Runner()
        self._runner.moveToThread(self._thread)
        self._dispatch.connect(self._runner.run)
        self._thread.started.connect(self._runner.thread_started)
        self._runner.started.connect(self._on_started)
        self._runner.progress.connect(self._on_progress)
        self._runner.done.connect(self._on_done)
        self._runner.failed.connect(self._on_failed)
        self._runner.cancelled.connect(self._on_cancelled)
        self._jobs: dict[int, Job] = {}
        self._busy = False
        self.current: Optional[Job] = None
        self._thread.start()

    # -- API -------------------------------------------------------------------------------
    def submit(self, job: Job) -> Job:
        self._jobs[job.id] = job
        self._set_busy(True)
        self._dispatch.emit(job)
        return job

    @property
    def busy(self) -> bool:
        return bool(self._jobs)

    def _set_busy(self, busy: bool) -> None:
        if busy != self._busy:
            self._busy = busy
            self.busy_changed.emit(busy)

    def pending(self, kind: Optional[str] = None) -> list[Job]:
        return [j for j in self._jobs.values() if kind is None or j.kind == kind]

    def cancel(self, job: Optional[Job] = None) -> None:
        """Cancel one job (default: the running one). It stops at its next step boundary."""
        job = job or self.current
        if job is not None:
            job.cancel.cancel()

    def cancel_all(self) -> None:
        for job in list(self._jobs.values()):
            job.cancel.cancel()

    def shutdown(self, wait_ms: int = 15000) -> bool:
        """Cancel everything and stop the thread; True when it stopped in time."""
        self.cancel_all()
        self._thread.quit()
        stopped = self._thread.wait(wait_ms)
        if not stopped:
            log.warning("worker thread did not stop within %d ms", wait_ms)
        return stopped

    # -- runner signals (GUI thread) ---------------------------------------------------------
    @Slot(int)
    def _on_started(self, job_id: int) -> None:
        self.current = self._jobs.get(job_id)
        if self.current is not None:
            self.job_started.emit(self.current)

    @Slot(int, object)
    def _on_progress(self, job_id: int, event: object) -> None:
        job = self._jobs.get(job_id)
        if job is not None and job.on_progress is not None:
            job.on_progress(event)

    def _complete(self, job_id: int, callback: str, *args) -> None:
        """Forget the job, run its callback (which may queue the next job), then announce."""
        job = self._jobs.pop(job_id, None)
        if job is self.current:
            self.current = None
        try:
            if job is not None:
                handler = getattr(job, callback)
                if handler is not None:
                    handler(*args)
        finally:
            if job is not None:
                self.job_ended.emit(job)
            if not self._jobs:
                self._set_busy(False)

    @Slot(int, object)
    def _on_done(self, job_id: int, result: object) -> None:
        self._complete(job_id, "on_done", result)

    @Slot(int, object, str)
    def _on_failed(self, job_id: int, error: BaseException, trace: str) -> None:
        job = self._jobs.get(job_id)
        log.error("job %s failed:\n%s", job.label if job else job_id, trace)
        self._complete(job_id, "on_error", error)

    @Slot(int, object)
    def _on_cancelled(self, job_id: int, info: object) -> None:
        self._complete(job_id, "on_cancelled", info)
