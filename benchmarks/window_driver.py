"""Driving the real window from a script (the stall benchmark, the screenshot scripts): wait for
a controller signal, wait until the worker is idle, let the event loop run a while.

Each waits in an event loop, never a processEvents() busy loop: the loop keeps the GUI thread
as a user would see it, and (PySide6 6.12 on Python 3.11) a busy loop of void Qt calls once
drained None's reference count to a fatal error.
"""

from __future__ import annotations


def wait_for(signal, trigger=None, timeout_s: float = 600):
    """Run `trigger` and return the arguments of `signal`'s next emission; exit on timeout."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop, got = QEventLoop(), []
    slot = lambda *a: (got.append(a), loop.quit())  # noqa: E731 - GUI-thread signal, GUI-thread slot
    signal.connect(slot)
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    if trigger:
        trigger()
    if not got:
        loop.exec()
    signal.disconnect(slot)
    if not got:
        raise SystemExit(f"timed out waiting for {signal}")
    return got[0]


def wait_idle(window) -> None:
    """Until the window's worker has no job running."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop, timer = QEventLoop(), QTimer(interval=20)
    timer.timeout.connect(lambda: window.bench.busy or loop.quit())
    timer.start()
    if window.bench.busy:
        loop.exec()
    timer.stop()


def pump(seconds: float = 0.3) -> None:
    """Let the event loop run (render-thread frames get painted)."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()
