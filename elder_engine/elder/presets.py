"""Preset expert allocations: k experts per layer, distinct from every earlier edit's."""

from __future__ import annotations

import torch

from . import ElderConfig

MAX_DRAWS = 10_000


def draw_preset(generator: torch.Generator, earlier: list, config: ElderConfig) -> tuple[tuple[int, ...], ...]:
    """Draw an (L, k) allocation whose expert sets differ from each earlier edit's in some layer.

    Once every combination is taken (C(N,k)^L of them: 46,656 for the paper's settings) a
    repeat is allowed rather than refusing the edit."""
    taken = {tuple(frozenset(layer) for layer in p) for p in earlier}
    preset = None
    for _ in range(MAX_DRAWS):
        preset = tuple(
            tuple(sorted(torch.randperm(config.num_experts, generator=generator)[: config.top_k].tolist()))
            for _ in range(config.num_edit_layers)
        )
        if tuple(frozenset(layer) for layer in preset) not in taken:
            break
    return preset
