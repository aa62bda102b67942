"""The model worker: jobs run in one thread, in order; yields become progress; callbacks run
in the GUI thread; cancel is honoured between steps; failures become on_error calls."""

import os
import threading
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QThread  # noqa: E402

from app.worker import Job, JobCancelled, Worker  # noqa: E402


def _run(qtbot, worker, job, timeout=5000):
    with qtbot.waitSignal(worker.job_ended, timeout=timeout):
        worker.submit(job)


def test_generator_job_progress_result_and_threads(qtbot):
    worker = Worker()
    seen, threads = [], {}
    gui = QThread.currentThread()

    def body(ctx):
        threads["job"] = threading.get_ident()
        ctx.emit("from-callback")
        for i in range(3):
            yield i
        return "result"

    def progress(event):
        threads["progress_gui"] = QThread.currentThread() is gui
        seen.append(event)

    results = []
    _run(qtbot, worker, Job("gen", body, on_progress=progress, on_done=results.append))
    assert seen == ["from-callback", 0, 1, 2]
    assert results == ["result"]
    assert threads["job"] != threading.get_ident() and threads["progress_gui"]
    assert not worker.busy
    worker.shutdown()


def test_jobs_run_in_submission_order_one_at_a_time(qtbot):
    worker = Worker()
    order, active = [], []

    def body(name):
        def fn(ctx):
            active.append(name)
            assert len(active) == 1
            time.sleep(0.02)
            order.append(name)
            active.remove(name)
        return fn

    for name in "abc":
        worker.submit(Job(name, body(name)))
    qtbot.waitUntil(lambda: not worker.busy, timeout=5000)
    assert order == ["a", "b", "c"]
    worker.shutdown()


def test_cancel_between_steps_and_before_start(qtbot):
    worker = Worker()
    steps, cancelled = [], []

    def body(ctx):
        for i in range(1000):
            if ctx.cancel.cancelled:
                raise JobCancelled(i)
            time.sleep(0.005)
            yield i

    first = Job("long", body, cancellable=True, on_progress=steps.append, on_cancelled=cancelled.append)
    second = Job("queued", body, cancellable=True, on_cancelled=cancelled.append)
    worker.submit(first)
    worker.submit(second)
    qtbot.waitUntil(lambda: len(steps) >= 3, timeout=5000)
    worker.cancel_all()
    qtbot.waitUntil(lambda: not worker.busy, timeout=5000)
    assert len(cancelled) == 2 and cancelled[0] >= 3 and cancelled[1] is None
    worker.shutdown()


def test_failure_calls_on_error_and_worker_stays_usable(qtbot):
    worker = Worker()
    errors, results = [], []

    def broken(ctx):
        yield 1
        raise ValueError("boom")

    _run(qtbot, worker, Job("broken", broken, on_error=errors.append))
    assert isinstance(errors[0], ValueError)
    _run(qtbot, worker, Job("fine", lambda ctx: 42, on_done=results.append))
    assert results == [42]
    worker.shutdown()


def test_callback_may_queue_the_next_job_without_going_idle(qtbot):
    worker = Worker()
    busy_changes, results = [], []
    worker.busy_changed.connect(busy_changes.append)
    worker.submit(Job("first", lambda ctx: 1, on_done=lambda r: worker.submit(
        Job("second", lambda ctx: 2, on_done=results.append))))
    qtbot.waitUntil(lambda: results == [2], timeout=5000)
    qtbot.waitUntil(lambda: not worker.busy, timeout=5000)
    assert busy_changes == [True, False]
    worker.shutdown()
