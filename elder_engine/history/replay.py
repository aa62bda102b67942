"""Replaying stored edits for `EditHistory` navigation: re-training one edit as it was first
trained, and what a chain's replay costs since its last stored state (which decides where the
next keyframe goes)."""

from __future__ import annotations

from typing import Optional

from sqlalchemy import select

from ..editing.events import CancelToken, EditCancelled, EditFinished, EditStep, Progress
from . import snapshots as snap
from .entries import request_from_row
from .schema import EditRow, StateRow


class ReplayCancelled(Exception):
    """The user cancelled a navigation while it replayed edits."""


def replay_edit(editor, row: EditRow, cancel: Optional[CancelToken], action: str, n: int, total: int):
    """Re-train one edit as it was first trained; returns the engine's AppliedEdit and
    the replay's CPU seconds."""
    if cancel is not None and cancel.cancelled:
        raise ReplayCancelled
    applied, clock = None, snap.CpuClock()
    with snap.replay_conditions(editor, row.engine):
        events = clock.run(editor.edit(request_from_row(row), cancel))
        try:
            for event in events:
                if isinstance(event, EditStep):
                    yield Progress(n - 1, total, f"{action}: replaying edit {row.seq} ({n}/{total})",
                                   {"seq": row.seq, "step": event.step, "steps": event.total_steps})
                elif isinstance(event, EditCancelled):
                    raise ReplayCancelled
                elif isinstance(event, EditFinished):
                    applied = event.edit
        finally:
            events.close()
    return applied, clock.seconds


def since_keyframe(s, chain: list[int], keys: list[str], upto: Optional[int] = None,
                    durations: Optional[dict] = None) -> float:
    """Replay cost (CPU seconds) of `chain[:upto]` since its last base or keyframe state."""
    upto = len(chain) if upto is None else upto
    stored = set(s.scalars(select(StateRow.chain_key).where(
        StateRow.kind != "head", StateRow.chain_key.in_(keys[: upto + 1]))))
    last = max(i for i in range(upto + 1) if keys[i] in stored)
    if durations is None:
        durations = dict(s.execute(select(EditRow.seq, EditRow.cost_s).where(EditRow.seq.in_(chain[last:upto]))).all())
    return float(sum(durations[q] for q in chain[last:upto]))
