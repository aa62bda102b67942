"""Lifelong evaluation: T edits in sequence, then every metric over all of them.

`lifelong_eval` is a generator of `Progress` events; its last event carries the result.
Metrics are measured after all T edits (not right after each), on held-out paraphrases for
generalization, and against the unedited model for locality.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterator, Optional, Sequence

from ..editing.events import CancelToken, EditFinished, Progress
from ..editing.request import EditRequest
from ..errors import EditRequestError
from .data import EditRecord
from .metrics import METRICS, exact_match, locality, mean, token_accuracy


@dataclass
class EvalResult:
    edits: int
    reliability: float
    generalization: float
    locality: float
    reliability_em: float
    generalization_em: float
    locality_em: float
    seconds_per_edit: float
    edit_seconds: list[float] = field(default_factory=list)
    edit_steps: list[int] = field(default_factory=list)  # iterations per edit: a load-free speed figure
    items: list[dict] = field(default_factory=list)   # raw outputs per record
    cancelled: bool = False
    # Records the method refused as bad input (e.g. a target over its token limit): (index, reason).
    # They are neither applied nor measured; a run does not stop for them.
    skipped: list[tuple[int, str]] = field(default_factory=list)

    def summary(self) -> dict:
        keys = ("edits", *METRICS, "seconds_per_edit")
        out = {k: getattr(self, k) for k in keys}
        if self.skipped:
            out["skipped"] = len(self.skipped)
        return out


def measure(method, records: Sequence[EditRecord]) -> EvalResult:
    """The six metrics over `records`, in the method's current (edited) state."""
    rel_pairs = [(r.prompt, r.target) for r in records]
    gen_pairs, gen_owner = [], []
    loc_pairs, loc_owner = [], []
    for i, r in enumerate(records):
        for p in r.paraphrases:
            gen_pairs.append((p, r.target)); gen_owner.append(i)
        for p, a in r.locality[:1]:  # one unrelated prompt per edit, as EasyEdit does
            loc_pairs.append((p, a)); loc_owner.append(i)
    rel, rel_pred = token_accuracy(method, rel_pairs)
    rel_em, rel_txt = exact_match(method, rel_pairs)
    gen, _ = token_accuracy(method, gen_pairs) if gen_pairs else ([], [])
    gen_em, gen_txt = exact_match(method, gen_pairs) if gen_pairs else ([], [])
    loc, loc_em, loc_txt = locality(method, loc_pairs) if loc_pairs else ([], [], [])
    items = []
    for i, r in enumerate(records):
        items.append({
            "index": r.source_index, "prompt": r.prompt, "target": r.target,
            "reliability": rel[i], "reliability_em": rel_em[i], "output": rel_txt[i],
            "paraphrases": [
                {"prompt": gen_pairs[j][0], "accuracy": gen[j], "em": gen_em[j], "output": gen_txt[j]}
                for j, o in enumerate(gen_owner) if o == i
            ],
            "locality": [
                {"prompt": loc_pairs[j][0], "accuracy": loc[j], "em": loc_em[j], "output": loc_txt[j]}
                for j, o in enumerate(loc_owner) if o == i
            ],
        })
    return EvalResult(
        edits=len(records), reliability=mean(rel), generalization=mean(gen), locality=mean(loc),
        reliability_em=mean(rel_em), generalization_em=mean(gen_em), locality_em=mean(loc_em),
        seconds_per_edit=float("nan"), items=items,
    )


def lifelong_eval(
    method, records: Sequence[EditRecord], cancel: Optional[CancelToken] = None,
    checkpoints: Sequence[int] = (),
) -> Iterator[Progress]:
    """Apply the edits one by one, then measure. Yields Progress; the last one has
    detail={"result": EvalResult, "checkpoints": {n: EvalResult}, "curve": {n: EvalResult}}:
    `checkpoints` are the measurements after n < T edits, `curve` adds the final one (n = T),
    so a lifelong curve always ends at the run's result."""
    total = len(records)
    seconds: list[float] = []
    steps: list[int] = []
    applied: list[EditRecord] = []
    skipped: list[tuple[int, str]] = []
    at: dict[int, EvalResult] = {}
    wanted = sorted({c for c in checkpoints if 0 < c < total})
    done = 0
    for n, record in enumerate(records, 1):
        if cancel is not None and cancel.cancelled:
            break
        t0 = time.perf_counter()
        request = EditRequest(record.prompt, record.target, record.train_paraphrases, subject=record.subject)
        try:
            for event in method.edit(request):
                if isinstance(event, EditFinished):
                    steps.append(event.edit.steps)
        except EditRequestError as error:  # one bad record must not end a long run
            skipped.append((record.source_index, str(error)))
            yield Progress(n, total, f"skipped record {record.source_index}: {error}", {"skipped": True})
        else:
            seconds.append(time.perf_counter() - t0)
            applied.append(record)
            yield Progress(n, total, f"edit {n}/{total}", {"seconds": seconds[-1]})
        done = n
        if n in wanted and applied:
            yield Progress(n, total, f"measuring after {n} edits")
            at[n] = measure(method, applied)
            at[n].seconds_per_edit = mean(seconds)
    cancelled = done < total
    yield Progress(done, total, "measuring")
    result = measure(method, applied) if applied else EvalResult(0, *([float("nan")] * 7))
    result.seconds_per_edit = mean(seconds)
    result.edit_seconds = seconds
    result.edit_steps = steps
    result.cancelled = cancelled
    result.skipped = skipped
    curve = {**at, done: result} if applied else dict(at)
    yield Progress(done, total, "done", {"result": result, "checkpoints": at, "curve": curve})
