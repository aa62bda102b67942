"""Turning prompts and targets into left-padded batches.

The target is scored teacher-forced after its prompt; the query token (ELDER's routing input)
is the last prompt token (in chat format the format says where: `PromptFormat.query_back`),
never a pad token and never a target token. Positions are passed to the model explicitly so
that left padding does not shift them. How a prompt and a target become tokens (plain text or
the chat template) is `prompt_format.PromptFormat`; plain text when none is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from .prompt_format import PLAIN_FORMAT, PromptFormat, spaced_target  # noqa: F401  (spaced_target: re-exported)


@dataclass
class Batch:
    input_ids: torch.Tensor       # (B, S), left-padded
    attention_mask: torch.Tensor  # (B, S)
    position_ids: torch.Tensor    # (B, S)
    query_positions: torch.Tensor  # (B,) index of the last prompt token
    target_positions: torch.Tensor  # (B, T) index of the logits that predict each target token
    target_ids: torch.Tensor      # (B, T)
    target_mask: torch.Tensor     # (B, T) bool; False on padding of shorter targets

    def to(self, device) -> "Batch":
        return Batch(*(getattr(self, f).to(device) for f in self.__dataclass_fields__))

    def model_inputs(self) -> dict:
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask, "position_ids": self.position_ids}


def prompt_ids(tokenizer, prompt: str, fmt: Optional[PromptFormat] = None) -> list[int]:
    return (fmt or PLAIN_FORMAT).prompt_ids(tokenizer, prompt)


def target_ids(tokenizer, prompt: str, target: str, fmt: Optional[PromptFormat] = None) -> list[int]:
    return (fmt or PLAIN_FORMAT).target_ids(tokenizer, prompt, target)


def key_ids(tokenizer, text: str) -> list[int]:
    """Token ids of a text for keyed routing (no special tokens: they carry no content)."""
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _positions(mask: torch.Tensor) -> torch.Tensor:
    return (mask.cumsum(-1) - 1).clamp(min=0)


def encode(tokenizer, prompts: list[str], targets: list[str] | None = None,
           fmt: Optional[PromptFormat] = None, *, closed: bool = False) -> Batch:
    """Left-padded batch of prompt (+ target) sequences. Without targets, T = 0. `closed`:
    chat targets end their turn (for training; see `PromptFormat.target_ids`)."""
    fmt = fmt or PLAIN_FORMAT
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    targets = targets if targets is not None else [None] * len(prompts)
    rows, tgts = [], []
    for p, t in zip(prompts, targets):
        pid = fmt.prompt_ids(tokenizer, p)
        tid = fmt.target_ids(tokenizer, p, t, closed=closed) if t is not None else []
        rows.append(pid + tid)
        tgts.append(tid)
    S = max(len(r) for r in rows)
    T = max(len(t) for t in tgts)
    B = len(rows)
    ids = torch.full((B, S), pad, dtype=torch.long)
    mask = torch.zeros((B, S), dtype=torch.long)
    qpos = torch.zeros(B, dtype=torch.long)
    tpos = torch.zeros((B, T), dtype=torch.long)
    tids = torch.full((B, T), pad, dtype=torch.long)
    tmask = torch.zeros((B, T), dtype=torch.bool)
    for i, (row, tid) in enumerate(zip(rows, tgts)):
        ids[i, S - len(row):] = torch.tensor(row)
        mask[i, S - len(row):] = 1
        last = S - len(tid) - 1  # the last prompt token: its logits predict the first target token
        qpos[i] = last - fmt.query_back
        n = len(tid)
        tpos[i, :n] = torch.arange(last, last + n)
        tpos[i, n:] = last
        tids[i, :n] = torch.tensor(tid, dtype=torch.long) if n else tids[i, :n]
        tmask[i, :n] = True
    return Batch(ids, mask, _positions(mask), qpos, tpos, tids, tmask)
