"""Reading many prompts that begin alike: the shared beginning once, then only what differs.

An edit's negatives are mostly its own prompt with the subject swapped ("What is the native
language of Pablo Picasso?" -> "... of Marie Curie?"). In a causal model the tokens before
the subject have the same states in all of them, and the later tokens only need those
positions' keys and values. So the shared tokens run once, their key/value cache is repeated
over the batch, and each text runs its own tail. The states are those of a whole read up to
rounding (`tests/test_shared_prefix.py` compares them for every tiny model family); reading the
negatives of a ZsRE edit is about half the tokens.
"""

from __future__ import annotations

import copy
import os
from typing import Optional, Sequence

import torch

from ..models.blocks import cache_argument, forward_until, inner_model
from .prompt_states import BATCH, PromptStates

# Texts sharing fewer tokens than this with the model prompt are read whole: the cache would
# save less than it costs.
MIN_SHARED = 3


def read_sharing_prefix(reader, texts: Sequence[str], like: str) -> list[PromptStates]:
    """`reader.states(texts, relation=False)`, reading once the tokens each text shares with
    `like` (the edit prompt). Texts that share less than MIN_SHARED tokens with it, and every
    text if the model cannot take a repeated cache, are read whole. `reader` is the editor's
    ScopeReader (not imported here: it imports this module)."""

    if not texts:
        return []
    head, tail = reader.editor.prompt_format.routing_frame()
    prefix = list(head or reader.prefix)
    model_ids = reader._encode(like)[0] + list(tail)
    encoded = []
    for text in texts:
        ids, offsets = reader._encode(text)
        full = ids + list(tail)
        offsets = offsets + [(len(text), len(text))] * len(tail)
        # leave each text at least one token of its own
        encoded.append((full, offsets, min(len(os.path.commonprefix([full, model_ids])), len(full) - 1)))
    sharing = [i for i, (_, _, k) in enumerate(encoded) if k >= MIN_SHARED]
    out: list[Optional[PromptStates]] = [None] * len(texts)
    if sharing:
        k = min(encoded[i][2] for i in sharing)
        try:
            for start in range(0, len(sharing), BATCH):
                rows = sharing[start:start + BATCH]
                states = _read_tails(reader, prefix + model_ids[:k], [encoded[i][0][k:] for i in rows])
                for i, s in zip(rows, states):
                    out[i] = PromptStates(states=s[len(prefix):], relation=torch.zeros(0), offsets=encoded[i][1])
        except (TypeError, ValueError, AttributeError, RuntimeError, NotImplementedError):
            out = [None] * len(texts)  # a model whose cache cannot be repeated this way: read them whole
    whole = [i for i in range(len(texts)) if out[i] is None]
    for i, item in zip(whole, reader.states([texts[i] for i in whole], relation=False)):
        out[i] = item
    return out  # type: ignore[return-value]


@torch.no_grad()
def _read_tails(reader, shared: list[int], tails: list[list[int]]) -> list[torch.Tensor]:
    """States (len(shared) + len(tail), d) of block `scope_block` for shared + each tail."""
    from transformers import DynamicCache

    tuner, device = reader.tuner, reader.editor.device
    block = reader.blocks[tuner.config_elder.scope_block]
    stop_at = reader.blocks[tuner.config_elder.scope_block + 1] if tuner.config_elder.scope_block + 1 < len(reader.blocks) else None
    captured = {}

    def keep(module, args, output):
        captured["h"] = output[0] if isinstance(output, tuple) else output

    P = len(shared)
    cache = DynamicCache(config=tuner.model.config)
    name = cache_argument(inner_model(tuner.model))
    with tuner.routing.session(None, deferral=False, expert_index=torch.full((1,), -1)):
        forward_until(tuner.model, stop_at, [(block, keep)], input_ids=torch.tensor([shared], device=device),
                      attention_mask=torch.ones(1, P, dtype=torch.long, device=device),
                      position_ids=torch.arange(P, device=device)[None], use_cache=True, **{name: cache})
    head_states = captured["h"][0].float().cpu()
    B, S = len(tails), max(len(t) for t in tails)
    pad = reader.tokenizer.pad_token_id if reader.tokenizer.pad_token_id is not None else reader.sink
    ids = torch.full((B, S), pad, dtype=torch.long)
    mask = torch.zeros((B, P + S), dtype=torch.long)
    mask[:, :P] = 1
    for i, t in enumerate(tails):  # padded on the right: a real token never attends to padding
        ids[i, :len(t)] = torch.tensor(t)
        mask[i, P:P + len(t)] = 1
    repeated = copy.deepcopy(cache)
    repeated.batch_repeat_interleave(B)
    with tuner.routing.session(None, deferral=False, expert_index=torch.full((B,), -1)):
        forward_until(tuner.model, stop_at, [(block, keep)], input_ids=ids.to(device), attention_mask=mask.to(device),
                      position_ids=(P + torch.arange(S, device=device))[None].expand(B, S),
                      use_cache=True, **{name: repeated})
    tail_states = captured["h"].float().cpu()
    if tail_states.shape[:2] != (B, S):
        raise ValueError("the model did not read the tails on top of the shared cache")
    return [torch.cat([head_states, tail_states[i, :len(t)]]) for i, t in enumerate(tails)]
