"""Probing a query: edited vs original output, and why the edit layers fired or deferred."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Optional

import torch

from .tokens import encode

if TYPE_CHECKING:
    from .editor import ElderEditor


@dataclass(frozen=True)
class ProbeResult:
    query: str
    edited_output: str
    original_output: str
    target: Optional[str]
    edited_target_prob: Optional[float]    # P(target | query), product over its tokens
    original_target_prob: Optional[float]
    router_weights: tuple[tuple[float, ...], ...]  # (L, N) softmax per layer
    top_k: tuple[tuple[int, ...], ...]             # (L, k) chosen experts per layer
    code: tuple[int, ...]                          # (L*N) allocation code of the query
    nearest_edit: Optional[int]                    # index into the engine's edits, None if no edits
    nearest_prompt: Optional[str]
    hamming: Optional[int]
    epsilon: int
    fired: bool                                    # experts applied (else deferred to the base model)
    deferral_enabled: bool

    def to_dict(self) -> dict:
        return asdict(self)


def _sequence_prob(logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> float:
    logp = torch.log_softmax(logits, -1).gather(-1, ids[..., None])[..., 0]
    return float(torch.exp((logp * mask).sum()))


@torch.no_grad()
def run_probe(editor: "ElderEditor", query: str, target: Optional[str], max_new_tokens: int) -> ProbeResult:
    tuner, tok = editor.tuner, editor.tokenizer
    batch = encode(tok, [query]).to(editor.device)
    with tuner.routing.session(batch.query_positions, deferral=True) as state:
        editor.model(**batch.model_inputs(), use_cache=False)
        q, fire = state.query, bool(state.fire[0])
        distance, nearest = int(state.distance[0]), int(state.nearest[0])
    weights = tuner.router_weights(q)[0]
    k = editor.config.top_k
    top = weights.topk(k, dim=-1).indices.sort(-1).values
    code = tuner.codes_for(q)[0]
    edited = editor.generate([query], max_new_tokens)[0]
    original = editor.generate([query], max_new_tokens, original=True)[0]
    edited_p = original_p = None
    if target is not None:
        logits, b = editor.target_logits([query], [target])
        edited_p = _sequence_prob(logits[0], b.target_ids[0], b.target_mask[0])
        logits, b = editor.target_logits([query], [target], original=True)
        original_p = _sequence_prob(logits[0], b.target_ids[0], b.target_mask[0])
    has_edits = nearest >= 0
    return ProbeResult(
        query=query,
        edited_output=tok.decode(edited, skip_special_tokens=True),
        original_output=tok.decode(original, skip_special_tokens=True),
        target=target,
        edited_target_prob=edited_p,
        original_target_prob=original_p,
        router_weights=tuple(tuple(float(x) for x in row) for row in weights),
        top_k=tuple(tuple(int(i) for i in row) for row in top),
        code=tuple(int(b) for b in code),
        nearest_edit=nearest if has_edits else None,
        nearest_prompt=editor.edits[nearest].prompt if has_edits and nearest < len(editor.edits) else None,
        hamming=distance if has_edits else None,
        epsilon=editor.config.epsilon,
        fired=fire,
        deferral_enabled=editor.config.deferral,
    )
