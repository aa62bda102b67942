"""Per-sequence routing state shared by the MoLoRA layers of one engine.

ELDER routes per sequence: one query vector per sequence (the input of the FFN module one
block below the first MoLoRA block, at the last real prompt token) drives all L routers, and
the routing holds for every generated token. The official code keeps this in module globals;
here one `RoutingState` object per engine owns it.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Optional

import torch


@dataclass
class RoutingState:
    query: Optional[torch.Tensor] = None        # (B, d) float32, detached
    positions: Optional[torch.Tensor] = None    # (B,) index of the query token in the input
    hold: bool = False                          # keep `query` across forwards (generation, cached training)
    fire: Optional[torch.Tensor] = None         # (B,) bool; None = always apply experts (training)
    use_deferral: bool = True
    # Keyed routing: the expert each sequence uses (-1: none, deferred; TRAINING_EXPERT: the
    # expert being trained). Set by the editor before the forward.
    expert_index: Optional[torch.Tensor] = None
    # The same, grouped once per session: (expert, rows) for each expert in use, rows None when
    # every sequence uses it. Every layer and generation step reads it instead of regrouping.
    expert_groups: Optional[list] = None
    # Filled by the deferral check, for probes:
    codes: Optional[torch.Tensor] = None        # (B, L*N) bool code of the query
    nearest: Optional[torch.Tensor] = None      # (B,) index of the nearest stored edit (-1: none)
    distance: Optional[torch.Tensor] = None     # (B,) its Hamming distance
    # experts_from_answer: the position, in the first forward's input, from which each
    # sequence's experts apply (its last prompt token: the query position plus answer_offset);
    # None = every position. Single-token forwards (generation steps) are past it.
    experts_from: Optional[torch.Tensor] = None  # (B,)
    # Engine-level, kept across sessions: the config's experts_from_answer (set by ElderModel),
    # and the tokens from the query to the last prompt token (`PromptFormat.query_back`, set
    # by the editor).
    experts_from_answer: bool = False
    answer_offset: int = 0

    def reset(self) -> None:
        self.query = self.positions = self.fire = self.expert_index = self.expert_groups = None
        self.codes = self.nearest = self.distance = self.experts_from = None
        self.hold = False
        self.use_deferral = True

    @contextmanager
    def session(
        self,
        positions: Optional[torch.Tensor] = None,
        *,
        query: Optional[torch.Tensor] = None,
        deferral: bool = True,
        expert_index: Optional[torch.Tensor] = None,
        experts_from: Optional[torch.Tensor] = None,
    ) -> Iterator["RoutingState"]:
        """Route the next forward passes as one batch of sequences.

        `positions` says where each sequence's query token is (default: the last position,
        right for left-padded prompts). The first forward computes the query; later forwards
        (generation steps) keep it. Passing `query` skips the computation (cached training).
        With experts_from_answer, experts start at each sequence's last prompt token, found
        from `positions`, unless `experts_from` says where in this forward's input (a forward
        of the suffix only).
        """
        self.reset()
        self.positions = positions
        self.use_deferral = deferral
        self.hold = True
        self.expert_index = expert_index
        self.expert_groups = group_rows(expert_index) if expert_index is not None else None
        if query is not None:
            self.query = query
        if experts_from is not None:
            self.experts_from = experts_from
        elif self.experts_from_answer and positions is not None:
            self.experts_from = positions + self.answer_offset
        try:
            yield self
        finally:
            self.reset()


TRAINING_EXPERT = -2


def group_rows(index: torch.Tensor) -> list:
    """[(expert, rows)] for the experts in `index` (B,) other than -1 (deferred); rows is None
    when the expert serves every sequence."""
    values = index.tolist()
    rows: dict[int, list[int]] = {}
    for row, expert in enumerate(values):
        if expert != -1:
            rows.setdefault(expert, []).append(row)
    return [(e, None if len(r) == len(values) else torch.tensor(r)) for e, r in rows.items()]


def hamming_to_codes(codes: torch.Tensor, stored: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Smallest Hamming distance from each code (B, bits) to the stored codes (T, bits)."""
    if stored.numel() == 0:
        big = torch.full((codes.shape[0],), codes.shape[1] + 1, dtype=torch.long)
        return big, torch.full_like(big, -1)
    diff = (codes[:, None, :] != stored[None, :, :].to(codes.device)).sum(-1)
    distance, nearest = diff.min(dim=1)
    return distance.cpu(), nearest.cpu()


def topk_code(weights: torch.Tensor, k: int) -> torch.Tensor:
    """k-hot code of the top-k entries of router weights (..., N) -> bool (..., N)."""
    idx = weights.topk(k, dim=-1).indices
    return torch.zeros_like(weights, dtype=torch.bool).scatter(-1, idx, True)
