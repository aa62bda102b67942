"""Process settings the GUI's responsiveness depends on."""

from __future__ import annotations

import sys

# The GUI thread shares the GIL with the model worker and the plot render thread. Every Qt
# call releases and re-takes the GIL, and re-taking it can wait for another thread's whole
# switch interval (Python's default is 5 ms): a paint with a hundred Qt calls could then
# stall for hundreds of milliseconds on a busy machine. 1 ms bounds that wait; the worker
# loses almost nothing, as PyTorch releases the GIL inside its operations anyway.
GIL_SWITCH_INTERVAL_S = 0.001


def configure() -> None:
    if sys.getswitchinterval() > GIL_SWITCH_INTERVAL_S:
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)


def lower_thread_priority(nice: int) -> None:
    """Give the calling (background) thread a lower CPU priority than the GUI thread.

    On a busy machine the GUI thread then wins the CPU, and the GIL hand-offs, against the
    model worker and the plot renderer. Linux keeps a nice value per thread (setpriority on
    the thread id); elsewhere QThread's priority does the same job.
    """
    import os
    import threading

    from PySide6.QtCore import QThread

    try:
        if sys.platform.startswith("linux"):
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, max(os.getpriority(os.PRIO_PROCESS, tid), nice))
        else:
            QThread.currentThread().setPriority(QThread.LowPriority)
    except (OSError, AttributeError, PermissionError):
        pass
