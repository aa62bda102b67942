"""`EditRequest`: one fact to write into the model, as the app, the CLI and the data readers give it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class EditRequest:
    prompt: str
    target: str
    train_paraphrases: tuple[str, ...] = ()
    # Replays (rollback, revert, redo) pass the edit's own preset and settings; a fresh edit
    # draws its preset and uses the engine's current settings.
    preset: Optional[tuple[tuple[int, ...], ...]] = None
    settings: Optional[dict] = None
    # Optional: the entity the edit is about ("France" in "The capital of France is"). The
    # scoped router keys on it and swaps it for other names to make negatives; without it the
    # engine guesses one.
    subject: str = ""
    # Prompts the edit must leave alone; the scoped router learns not to fire on them.
    locality_prompts: tuple[str, ...] = ()
