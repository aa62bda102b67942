"""Progress events of long engine operations, and the cancel request they honour.

An edit, an evaluation run or a replay is a generator of these events. The Qt worker and the
CLI progress bar drive the same generator; cancel is a request checked between steps.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Optional


class CancelToken:
    """Set from any thread; a running operation stops at its next step boundary."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


@dataclass(frozen=True)
class AppliedEdit:
    """One edit as the engine holds it (the history stores more around it)."""

    prompt: str
    target: str
    train_paraphrases: tuple[str, ...]
    preset: tuple[tuple[int, ...], ...]   # (L, k) expert indices the guided loss pushed towards
    code: tuple[int, ...]                 # (L*N) 0/1 allocation code recorded after training
    profile: str
    steps: int
    seconds: float
    final_loss: float
    loss_curve: tuple[float, ...] = ()
    settings: dict = field(default_factory=dict)  # training settings this edit used
    subject: str = ""                      # the entity the edit is about, as given ("" = none)
    locality_prompts: tuple[str, ...] = ()  # prompts the scoped router learned not to fire on

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt, "target": self.target, "train_paraphrases": list(self.train_paraphrases),
            "preset": [list(p) for p in self.preset], "code": list(self.code), "profile": self.profile,
            "steps": self.steps, "seconds": self.seconds, "final_loss": self.final_loss,
            "loss_curve": list(self.loss_curve), "settings": dict(self.settings),
            "subject": self.subject, "locality_prompts": list(self.locality_prompts),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AppliedEdit":
        return cls(
            prompt=d["prompt"], target=d["target"], train_paraphrases=tuple(d.get("train_paraphrases", ())),
            preset=tuple(tuple(p) for p in d["preset"]), code=tuple(d["code"]), profile=d.get("profile", ""),
            steps=int(d.get("steps", 0)), seconds=float(d.get("seconds", 0.0)),
            final_loss=float(d.get("final_loss", float("nan"))), loss_curve=tuple(d.get("loss_curve", ())),
            settings=dict(d.get("settings", {})), subject=str(d.get("subject", "") or ""),
            locality_prompts=tuple(d.get("locality_prompts", ())),
        )


@dataclass(frozen=True)
class EditStarted:
    prompt: str
    target: str
    preset: tuple[tuple[int, ...], ...]
    total_steps: int


@dataclass(frozen=True)
class EditStep:
    step: int                 # 1-based
    total_steps: int
    loss: float               # ce_loss + lambda * guided_loss
    ce_loss: float
    guided_loss: float
    router_weights: tuple[tuple[float, ...], ...]  # (L, N) softmax of each router on the edit's query


@dataclass(frozen=True)
class EditFinished:
    edit: AppliedEdit
    stopped_early: bool


@dataclass(frozen=True)
class EditCancelled:
    steps_done: int


@dataclass(frozen=True)
class Progress:
    """Generic progress of a multi-item job (evaluation, replay)."""

    done: int
    total: int
    message: str = ""
    detail: Optional[dict] = field(default=None)
