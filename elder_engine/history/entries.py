"""What the history hands out about its edits, and the conversions from database rows."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Optional

from ..editing.events import AppliedEdit
from ..editing.request import EditRequest
from .schema import EditRow


@dataclass(frozen=True)
class HistoryEntry:
    seq: int
    prompt: str
    target: str
    train_paraphrases: tuple[str, ...]
    locality_prompts: tuple[str, ...]
    status: str                      # 'applied' | 'rolled_back' | 'reverted'
    created_at: datetime
    duration_s: float
    loss_curve: tuple[float, ...]
    profile: str
    settings: dict
    preset: tuple[tuple[int, ...], ...]
    code: tuple[int, ...]
    old_answer: str                  # the original model's greedy answer at edit time
    steps: int = 0
    final_loss: Optional[float] = None
    status_changed_at: Optional[datetime] = None
    cost_s: float = 0.0              # CPU seconds of its training: what replaying it costs
    subject: str = ""                # the entity the edit is about ("" = none given)

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("created_at", "status_changed_at"):
            d[k] = d[k].isoformat() if d[k] else None
        return d


@dataclass(frozen=True)
class HistoryChanged:
    """The history's edit list after a committed change."""
    entries: list
    head: int


def entry_from_row(r: EditRow) -> HistoryEntry:
    return HistoryEntry(
        seq=r.seq, prompt=r.prompt, target=r.target, train_paraphrases=tuple(r.train_paraphrases),
        locality_prompts=tuple(r.locality_prompts), status=r.status, created_at=r.created_at,
        duration_s=r.duration_s, loss_curve=tuple(r.loss_curve), profile=r.profile, settings=dict(r.settings),
        preset=tuple(tuple(p) for p in r.preset), code=tuple(r.code), old_answer=r.old_answer, steps=r.steps,
        final_loss=r.final_loss, status_changed_at=r.status_changed_at, cost_s=r.cost_s, subject=r.subject or "")


def applied_from_row(r: EditRow) -> AppliedEdit:
    return AppliedEdit(
        prompt=r.prompt, target=r.target, train_paraphrases=tuple(r.train_paraphrases),
        preset=tuple(tuple(p) for p in r.preset), code=tuple(r.code), profile=r.profile, steps=r.steps,
        seconds=r.duration_s, final_loss=r.final_loss if r.final_loss is not None else float("nan"),
        loss_curve=tuple(r.loss_curve), settings=dict(r.settings), subject=r.subject or "",
        locality_prompts=tuple(r.locality_prompts))


def request_from_row(r: EditRow) -> EditRequest:
    settings = dict(r.settings)
    # rows record every training setting; one written before stop_at_min_steps existed was
    # trained with the check pass, and replays so (bit for bit); one written before
    # stop_at_min_steps_loss existed stopped at early_stop_loss (None)
    settings.setdefault("stop_at_min_steps", False)
    settings.setdefault("stop_at_min_steps_loss", None)
    return EditRequest(r.prompt, r.target, tuple(r.train_paraphrases),
                       preset=tuple(tuple(p) for p in r.preset), settings=settings,
                       subject=r.subject or "", locality_prompts=tuple(r.locality_prompts))


def training_record(applied: AppliedEdit, key: str, cost: float) -> dict:
    """The lineage-dependent columns of an edit row, from a training run. (The preset only
    changes for keyed profiles, where it names the edit's own slot in the expert pool.)"""
    return {"code": list(applied.code), "steps": applied.steps, "duration_s": applied.seconds, "cost_s": cost,
            "final_loss": applied.final_loss, "loss_curve": list(applied.loss_curve), "chain_key": key,
            "preset": [list(p) for p in applied.preset]}
