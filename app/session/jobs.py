"""What the worker thread runs, without Qt: a job, its context, and how it says it was cancelled.

A job is a function `fn(ctx)`; it may return a generator whose values are progress and whose
`return` value is the result. `ctx.cancel` is the engine's CancelToken, honoured between steps.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from elder_engine import CancelToken

_ids = itertools.count(1)


@dataclass
class Job:
    label: str                                  # "Applying edit", shown while it runs
    fn: Callable[["JobContext"], Any]           # runs in the worker thread
    kind: str = "job"
    cancellable: bool = False
    on_progress: Optional[Callable[[Any], None]] = None   # GUI thread
    on_done: Optional[Callable[[Any], None]] = None       # GUI thread
    on_error: Optional[Callable[[BaseException], None]] = None
    on_cancelled: Optional[Callable[[Any], None]] = None
    cancel: CancelToken = field(default_factory=CancelToken)
    id: int = field(default_factory=lambda: next(_ids))


class JobCancelled(Exception):
    """Raised by a job to say it stopped on request; its argument is passed to on_cancelled."""


@dataclass
class JobContext:
    cancel: CancelToken
    emit: Callable[[Any], None]
