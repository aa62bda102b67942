"""Progress on stderr for the CLI (stdout stays machine-readable), drawn by tqdm.

The engine's generators report absolute progress (done of total, and a message); this adapts
that to a tqdm bar, whose total may change as a job learns how much work it has."""

from __future__ import annotations

import sys

from tqdm import tqdm


class ProgressBar:
    def __init__(self, label: str, stream=None) -> None:
        self._bar = tqdm(desc=label, file=stream or sys.stderr, total=None, dynamic_ncols=True,
                         leave=True, mininterval=0.5)

    def update(self, done: int, total: int, message: str = "") -> None:
        if total and self._bar.total != total:
            self._bar.total = total
        if message:
            self._bar.set_postfix_str(message[:40], refresh=False)
        self._bar.update(done - self._bar.n)  # tqdm redraws at most every `mininterval`

    def close(self) -> None:
        self._bar.close()
