"""Probing a query: edited vs original output, the likeliest first answer tokens under both,
and why the edit layers fired or deferred."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Optional

import torch

from ..models.tokens import encode, key_ids

if TYPE_CHECKING:
    from .interface import Editor

ALTERNATIVES = 5  # next tokens shown at the first answer position


@dataclass(frozen=True)
class Alternative:
    """One candidate for the first answer token and its probability under one model."""
    token: str          # decoded on its own (leading spaces kept)
    token_id: int
    probability: float


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
    routing: str = "router"                        # "router" (paper) or "keyed"
    similarity: Optional[float] = None             # keyed: key similarity to the nearest edit; scoped: its subject match
    scope_threshold: Optional[float] = None        # keyed: similarity needed to fire; scoped: the nearest edit's calibrated threshold
    defer_probability: Optional[float] = None      # scoped: the router's mass on "defer"
    matched_token: Optional[str] = None            # scoped: the prompt token that matched the nearest edit's key
    prompt_format: str = "plain"                   # "plain" or "chat" (prompt_format.py)
    # The ALTERNATIVES likeliest first answer tokens, most probable first, under each model:
    edited_alternatives: tuple[Alternative, ...] = ()
    original_alternatives: tuple[Alternative, ...] = ()

    def to_dict(self) -> dict:
        return asdict(self)


def _sequence_prob(logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> float:
    logp = torch.log_softmax(logits, -1).gather(-1, ids[..., None])[..., 0]
    return float(torch.exp((logp * mask).sum()))


@torch.no_grad()
def run_probe(editor: "Editor", query: str, target: Optional[str], max_new_tokens: int) -> ProbeResult:
    tuner, tok = editor.tuner, editor.tokenizer
    if tuner.keyed:
        return _keyed_probe(editor, query, target, max_new_tokens)
    if tuner.scoped:
        return _scoped_probe(editor, query, target, max_new_tokens)
    batch = encode(tok, [query], fmt=editor.prompt_format).to(editor.device)
    with tuner.routing.session(batch.query_positions, deferral=True, expert_index=editor.expert_index([query])) as state:
        editor.model(**batch.model_inputs(), use_cache=False)
        q, fire = state.query, bool(state.fire[0])
        distance, nearest = int(state.distance[0]), int(state.nearest[0])
    weights = tuner.router_weights(q)[0]
    k = editor.config.top_k
    top = weights.topk(k, dim=-1).indices.sort(-1).values
    code = tuner.codes_for(q)[0]
    has_edits = nearest >= 0
    return ProbeResult(
        **_outputs(editor, query, target, max_new_tokens),
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


def _outputs(editor: "Editor", query: str, target: Optional[str], max_new_tokens: int) -> dict:
    """Greedy outputs of the edited and the original model, and the target's probability."""
    tok = editor.tokenizer
    edited = editor.generate([query], max_new_tokens)[0]
    original = editor.generate([query], max_new_tokens, original=True)[0]
    probs = {}
    for name, orig in (("edited_target_prob", False), ("original_target_prob", True)):
        probs[name] = None
        if target is not None:
            logits, b = editor.target_logits([query], [target], original=orig)
            probs[name] = _sequence_prob(logits[0], b.target_ids[0], b.target_mask[0])
    return dict(query=query, target=target, edited_output=tok.decode(edited, skip_special_tokens=True),
                original_output=tok.decode(original, skip_special_tokens=True), **probs,
                prompt_format=editor.prompt_format.name,
                edited_alternatives=next_token_alternatives(editor, query),
                original_alternatives=next_token_alternatives(editor, query, original=True))


@torch.no_grad()
def next_token_alternatives(editor: "Editor", query: str, k: int = ALTERNATIVES, *,
                            original: bool = False) -> tuple[Alternative, ...]:
    """The k likeliest tokens at the first answer position, routed as generation routes the
    query (so a deferred query gives the original model's distribution exactly)."""
    batch = encode(editor.tokenizer, [query], fmt=editor.prompt_format).to(editor.device)
    if original:
        with editor.original():
            logits = editor.model(**batch.model_inputs(), use_cache=False).logits[0, -1]
    else:
        with editor.tuner.routing.session(batch.query_positions, deferral=True,
                                          expert_index=editor.expert_index([query])):
            logits = editor.model(**batch.model_inputs(), use_cache=False).logits[0, -1]
    top = torch.softmax(logits.float(), -1).topk(min(k, logits.shape[-1]))
    return tuple(Alternative(editor.tokenizer.decode([int(i)]), int(i), float(p))
                 for p, i in zip(top.values.tolist(), top.indices.tolist()))


@torch.no_grad()
def _keyed_probe(editor: "Editor", query: str, target: Optional[str], max_new_tokens: int) -> ProbeResult:
    """Keyed routing: the 'router weights' are, per layer, the gate of each edit's expert
    (1 for the routed edit, 0 elsewhere): a sequence uses one edit's experts or none."""
    index, nearest, sims = editor.tuner.route_keyed([key_ids(editor.tokenizer, query)])
    routed, near, sim = int(index[0]), nearest[0], sims[0]
    n = editor.tuner.num_pool_experts
    gates = tuple(float(i == routed) for i in range(n))
    L = len(editor.tuner.elder_layers)
    return ProbeResult(
        **_outputs(editor, query, target, max_new_tokens),
        router_weights=tuple(gates for _ in range(L)),
        top_k=tuple(((routed,) if routed >= 0 else ()) for _ in range(L)),
        code=(),
        nearest_edit=near if near >= 0 else None,
        nearest_prompt=editor.edits[near].prompt if 0 <= near < len(editor.edits) else None,
        hamming=None,
        epsilon=editor.config.epsilon,
        fired=routed >= 0,
        deferral_enabled=editor.config.deferral,
        routing="keyed",
        similarity=sim if near >= 0 else None,
        scope_threshold=editor.config.scope_threshold,
    )


@torch.no_grad()
def _scoped_probe(editor: "Editor", query: str, target: Optional[str], max_new_tokens: int) -> ProbeResult:
    """Scoped routing: the router's distribution over the edits (shared by every layer; the
    defer mass is reported beside it), the nearest edit, its subject match and threshold."""
    L = len(editor.tuner.elder_layers)
    n = len(editor.edits)
    outputs = _outputs(editor, query, target, max_new_tokens)
    if n == 0:
        return ProbeResult(**outputs, router_weights=tuple(() for _ in range(L)), top_k=tuple(() for _ in range(L)),
                           code=(), nearest_edit=None, nearest_prompt=None, hamming=None,
                           epsilon=editor.config.epsilon, fired=False, deferral_enabled=editor.config.deferral,
                           routing="scoped", defer_probability=1.0)
    decision, (item,) = editor.scope.route_with_states([query])
    routed = int(decision.expert_index[0]) if editor.config.deferral else int(decision.nearest[0])
    near = int(decision.nearest[0])
    probs = tuple(float(x) for x in decision.probs[0, :-1])
    pos = int(decision.best_position[0])
    token = None
    if 0 <= pos < len(item.offsets):
        a, b = item.offsets[pos]
        token = query[a:b] or None
    return ProbeResult(
        **outputs,
        router_weights=tuple(probs for _ in range(L)),
        top_k=tuple(((routed,) if routed >= 0 else ()) for _ in range(L)),
        code=(),
        nearest_edit=near,
        nearest_prompt=editor.edits[near].prompt if 0 <= near < n else None,
        hamming=None,
        epsilon=editor.config.epsilon,
        fired=routed >= 0,
        deferral_enabled=editor.config.deferral,
        routing="scoped",
        similarity=float(decision.scores[0, near]),
        scope_threshold=float(editor.tuner.scope_router.thresholds[near]),
        defer_probability=float(decision.probs[0, -1]),
        matched_token=token,
    )
