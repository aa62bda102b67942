"""What the scoped router reads of one prompt (`scoping.py` reads it, `shared_prefix.py` too)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

BATCH = 32  # prompts per forward of the lower blocks


@dataclass
class PromptStates:
    states: torch.Tensor     # (S, d) block output at each prompt token (the sink token excluded)
    relation: torch.Tensor   # (d,) the paper's query: FFN input one block below the first MoLoRA block, last token
    offsets: list            # (start, end) character span of each token in the text
