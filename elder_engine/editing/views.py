"""What the app's router views ask of the engine: gates per prompt, the scoped router's input
space, and the firing decision, each made by the routing the engine itself applies when it
generates (so a view never re-derives a decision and gets it wrong)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import torch

from ..errors import EditRequestError
from ..models.tokens import Batch, encode

if TYPE_CHECKING:
    from .interface import Editor


def query_of(editor: "Editor", batch: Batch) -> torch.Tensor:
    """The paper's router query of each row (no deferral, no generation)."""
    with torch.no_grad(), editor.tuner.routing.session(batch.query_positions, deferral=False) as state:
        editor.model(**batch.model_inputs(), use_cache=False)
        return state.query


@torch.no_grad()
def firing(editor: "Editor", prompts: list[str]) -> list[tuple[bool, Optional[int]]]:
    """Per prompt, (its experts apply, else it defers; the Hamming distance of its code to the
    nearest stored one: router profiles with edits only, else None), as generation decides."""
    prompts = list(prompts)
    if not prompts:
        return []
    index = editor.expert_index(prompts)
    if editor.tuner.own_experts:
        return [(int(i) >= 0, None) for i in index]
    batch = encode(editor.tokenizer, prompts, fmt=editor.prompt_format).to(editor.device)
    with editor.tuner.routing.session(batch.query_positions, deferral=True, expert_index=index) as state:
        editor.model(**batch.model_inputs(), use_cache=False)
        fire, distance, nearest = state.fire.cpu(), state.distance, state.nearest
    return [(bool(f), int(d) if int(n) >= 0 else None) for f, d, n in zip(fire, distance, nearest)]


@torch.no_grad()
def route(editor: "Editor", prompts: list[str], batch_size: int = 16) -> list[tuple[tuple[float, ...], ...]]:
    """Each prompt's gates per layer, without generation: the router softmax (L, N) for
    router profiles; for keyed profiles 1 for the edit whose experts it uses, else 0 (L, E)."""
    L = len(editor.tuner.elder_layers)
    if editor.tuner.scoped:
        if not editor.edits or not prompts:
            return [tuple(() for _ in range(L)) for _ in prompts]
        probs = editor.scope.route(list(prompts)).probs[:, :-1]
        return [tuple(tuple(float(x) for x in row) for _ in range(L)) for row in probs]
    if editor.tuner.keyed:
        index = editor.expert_index(list(prompts))
        n = editor.tuner.num_pool_experts
        return [tuple(tuple(float(i == int(e)) for i in range(n)) for _ in range(L)) for e in index]
    out: list[tuple[tuple[float, ...], ...]] = []
    for i in range(0, len(prompts), batch_size):
        batch = encode(editor.tokenizer, list(prompts[i:i + batch_size]), fmt=editor.prompt_format).to(editor.device)
        weights = editor.tuner.router_weights(query_of(editor, batch))
        out += [tuple(tuple(float(x) for x in row) for row in w) for w in weights]
    return out


@torch.no_grad()
def router_space(editor: "Editor", prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Scoped routing: the router's own input space. Returns the edits' keys (E, d) and, per
    prompt, the standardised state of its token that matched its nearest edit best (P, d)."""
    if not editor.tuner.scoped:
        raise EditRequestError("router_space is defined for the scoped router only")
    router = editor.tuner.scope_router
    if not prompts:
        return router.keys.clone(), torch.zeros(0, router.keys.shape[1])
    if not editor.edits:
        items = editor.scope.states(prompts, relation=False)
        return router.keys.clone(), torch.stack([router.standardise(p.states[-1]) for p in items])
    decision, items = editor.scope.route_with_states(list(prompts))
    points = [router.standardise(p.states[int(pos)]) for p, pos in zip(items, decision.best_position)]
    return router.keys.clone(), torch.stack(points)
