"""Lifelong evaluation jobs (worker thread), run on a copy of the model.

The copy is a fresh `load_model` of the same source (from the conversion cache, about half a
second for the default model) with its own ELDER engine, so the user's model and history are
not touched. It costs one more copy of the weights in memory while it runs (about 0.55 GB
for the float32 default model; about 4 bytes per parameter in general) and is freed after.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

from elder_engine import (
    METRIC_LABELS,
    EditCancelled,
    EditFinished,
    EditRequest,
    ElderEditor,
    LoadSettings,
    Progress,
    lifelong_eval,
    load_edits,
    load_model,
)

from .engine_session import EngineSession
from .jobs import JobCancelled, JobContext

METRICS = (*METRIC_LABELS.items(), ("seconds_per_edit", "Seconds per edit"))


@dataclass(frozen=True)
class EvalRun:
    data_path: str
    data_format: str
    data_sha256: str
    skipped: int
    settings: dict
    result: Any                               # engine EvalResult
    checkpoints: dict = field(default_factory=dict)   # n edits -> EvalResult
    records: tuple = ()                       # the EditRecords that were applied
    wall_seconds: float = 0.0

    def curve(self) -> dict[int, Any]:
        """Results after n edits, n ascending, the final one included."""
        points = dict(self.checkpoints)
        points[self.result.edits] = self.result
        return dict(sorted(points.items()))


def checkpoints_for(n: int, points: int = 4) -> tuple[int, ...]:
    """Evenly spaced edit counts at which the metrics are measured for the curve."""
    if n < 2:
        return ()
    return tuple(sorted({max(1, round(n * i / points)) for i in range(1, points)} - {n}))


def evaluate(ctx: JobContext, session: EngineSession, data_path: str, n_edits: int,
             settings: dict, curve_points: int = 4) -> Iterator:
    session._need_model()
    started = time.perf_counter()
    report = load_edits(data_path, limit=n_edits)
    records = report.records
    total = len(records)
    yield Progress(0, total, "Loading a copy of the model...")
    loaded = load_model(session.loaded.source, LoadSettings(
        threads=session.settings.threads, device=session.settings.device,
        cache_dir=os.environ.get("ELDER_CACHE_DIR")))
    config = session.editor.config.replace(**settings)
    try:
        editor = ElderEditor(loaded, config)
        final = None
        for event in lifelong_eval(editor, records, ctx.cancel, checkpoints_for(total, curve_points)):
            if ctx.cancel.cancelled:
                raise JobCancelled(event.done)
            final = event
            yield event
    finally:
        editor = loaded = None   # freed by reference counting; no full GC pass (it stalls every thread)
    return EvalRun(report.path, report.format, report.sha256, len(report.skipped), config.elder_fields(),
                   final.detail["result"], dict(final.detail.get("checkpoints") or {}), tuple(records),
                   time.perf_counter() - started)


def keep_edits(ctx: JobContext, session: EngineSession, records: tuple, settings: dict) -> Iterator:
    """Apply an evaluation's edits to the user's own model and history, one by one."""
    session._need_model()
    total = len(records)
    for n, record in enumerate(records, 1):
        request = EditRequest(record.prompt, record.target, tuple(record.train_paraphrases),
                              settings=settings or None, subject=record.subject)
        source = (session.history.edit(request, cancel=ctx.cancel) if session.history
                  else session.editor.edit(request, ctx.cancel))
        for event in source:
            if isinstance(event, EditCancelled):
                raise JobCancelled(n - 1)
            if isinstance(event, EditFinished):
                yield Progress(n, total, f"kept edit {n}/{total}")
    return session.history_state()
