"""Several editing methods through one lifelong evaluation: same model, data and edit order.

Each method gets its own fresh copy of the model (`open_loaded()`, e.g. `load_model` from the
conversion cache), because the baselines change the model in place. `compare` is a generator
of `Progress` events like every long engine operation; its last event carries the runs.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from statistics import median
from typing import Callable, Iterator, Optional, Sequence

from ..editing.events import CancelToken, Progress
from ..elder import ElderConfig
from .data import EditRecord
from .lifelong import EvalResult, lifelong_eval
from .methods import build_method, method_settings, state_bytes
from .metrics import METRICS

FIGURES = (*METRICS, "seconds_per_edit", "extra_parameters", "state_bytes")


@dataclass
class MethodRun:
    name: str
    result: EvalResult
    curve: dict[int, EvalResult]  # n -> the six metrics over the first n edits, after n edits
    extra_parameters: int
    state_bytes: int
    settings: dict = field(default_factory=dict)

    def figures(self) -> dict:
        """The comparison table's row; the same key names as a single-method eval summary."""
        out = {k: getattr(self.result, k) for k in (*METRICS, "seconds_per_edit")}
        out.update(extra_parameters=self.extra_parameters, state_bytes=self.state_bytes, edits=self.result.edits,
                   steps_per_edit_median=median(self.result.edit_steps) if self.result.edit_steps else None,
                   # the speed figure is a median; seconds_per_edit (the table's s/edit) is the mean
                   seconds_per_edit_median=median(self.result.edit_seconds) if self.result.edit_seconds else None,
                   skipped=len(self.result.skipped))
        return out

    def curve_rows(self) -> list[dict]:
        return [{"method": self.name, "edits": n, **{k: getattr(r, k) for k in METRICS},
                 "seconds_per_edit": r.seconds_per_edit} for n, r in sorted(self.curve.items())]


def run_method(name: str, loaded, records: Sequence[EditRecord], *, elder_config: Optional[ElderConfig] = None,
               settings: Optional[dict] = None, checkpoints: Sequence[int] = (),
               cancel: Optional[CancelToken] = None) -> Iterator[Progress]:
    """One method's lifelong run; the last event's detail has {"run": MethodRun}."""
    method = build_method(name, loaded, elder_config, settings)
    event = None
    for event in lifelong_eval(method, records, cancel, checkpoints):
        if event.message == "done":
            break
        yield Progress(event.done, event.total, f"{name}: {event.message}", {"method": name})
    detail = event.detail
    run = MethodRun(name, detail["result"], detail["curve"], int(method.extra_parameters()),
                    state_bytes(method), method_settings(method))
    yield Progress(event.done, event.total, f"{name}: done", {"method": name, "run": run})


def compare(names: Sequence[str], open_loaded: Callable[[], object], records: Sequence[EditRecord], *,
            elder_config: Optional[ElderConfig] = None, settings: Optional[dict] = None,
            checkpoints: Sequence[int] = (), cancel: Optional[CancelToken] = None) -> Iterator[Progress]:
    """Run each named method on a fresh model; the last event's detail has {"runs": {name: MethodRun}}."""
    settings = settings or {}
    runs: dict[str, MethodRun] = {}
    for name in names:
        if cancel is not None and cancel.cancelled:
            break
        yield Progress(0, len(records), f"{name}: loading", {"method": name})
        loaded = open_loaded()
        for event in run_method(name, loaded, records, elder_config=elder_config, settings=settings.get(name),
                                checkpoints=checkpoints, cancel=cancel):
            if "run" in event.detail:
                runs[name] = event.detail["run"]
            yield event
        del loaded
        gc.collect()  # one model copy at a time, also on a small machine
    yield Progress(len(runs), len(names), "done", {"runs": runs})
