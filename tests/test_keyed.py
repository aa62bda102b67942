"""Keyed routing (the `keyed-experts` profile and its ablations) on tiny random models."""

import torch

from elder_engine.editing.editor import EditRequest, ElderEditor
from elder_engine.elder import get_profile
from elder_engine.elder.keyed import KeyIndex
from elder_engine.editing.events import CancelToken, EditCancelled, EditStep
from elder_engine.models.tokens import encode, key_ids
from elder_engine.editing.training import full_target_logits

from tiny import tiny_loaded


def make(profile="keyed-experts", **overrides):
    cfg = get_profile(profile, num_edit_layers=2, **{"learning_rate": 5e-2, "max_steps": 30, **overrides})
    return ElderEditor(tiny_loaded("llama"), cfg)


def test_key_index_prefers_shared_rare_tokens_and_the_newest_on_ties():
    index = KeyIndex()
    index.add(0, [1, 2, 3, 9])
    index.add(1, [4, 5, 3, 9])
    assert index.nearest([1, 2, 9])[0] == 0
    assert index.nearest([4, 5])[0] == 1
    index.add(2, [1, 2, 3, 9])  # the same key again: the newer edit wins
    owner, sim = index.nearest([1, 2, 3, 9])
    assert owner == 2 and abs(sim - 1.0) < 1e-9
    again = KeyIndex()
    again.load(index.tokens, index.lengths, index.owners)
    assert again.keys == index.keys and again.key_owners == index.key_owners
    assert torch.equal(again.tokens, index.tokens) and torch.equal(again.owners, index.owners)
    index.truncate(1)
    assert index.key_owners == [0] and index.owners.tolist() == [0] and index.nearest([1, 2, 3, 9])[0] == 0


def test_each_edit_gets_its_own_experts_and_earlier_ones_stay_frozen():
    editor = make()
    editor.apply(EditRequest("the capital of france is", "london"))
    first = [(layer.elder_pool[0].A.clone(), layer.elder_pool[0].B.clone()) for layer in editor.tuner.elder_layers]
    editor.apply(EditRequest("who wrote hamlet ?", "paris"))
    assert all(layer.pool_size == 2 for layer in editor.tuner.elder_layers)
    for layer, (a, b) in zip(editor.tuner.elder_layers, first):
        assert torch.equal(layer.elder_pool[0].A, a) and torch.equal(layer.elder_pool[0].B, b)
    assert [e.preset for e in editor.edits] == [((0,), (0,)), ((1,), (1,))]


def test_queries_route_to_their_edit_or_defer_to_the_base_model_exactly():
    editor = make(scope_threshold=0.6)
    editor.apply(EditRequest("the capital of france is", "london"))
    editor.apply(EditRequest("who wrote hamlet ?", "paris"))
    hit = editor.probe("the capital of france is", "london")
    assert hit.fired and hit.nearest_edit == 0 and hit.similarity > 0.99 and hit.routing == "keyed"
    assert hit.edited_output.startswith("london")
    assert editor.probe("who wrote hamlet ?").nearest_edit == 1
    miss = editor.probe("what colour is the sky ?", "london")
    assert not miss.fired and miss.edited_output == miss.original_output
    assert miss.edited_target_prob == miss.original_target_prob
    batch = encode(editor.tokenizer, ["what colour is the sky ?"])
    with torch.no_grad():
        with editor.tuner.routing.session(expert_index=editor.expert_index(["what colour is the sky ?"])):
            edited = editor.model(**batch.model_inputs()).logits
        with editor.original():
            base = editor.model(**batch.model_inputs()).logits
    assert torch.equal(edited, base)


def test_cancel_and_reload_restore_pool_and_keys(tmp_path):
    editor = make()
    editor.apply(EditRequest("the capital of france is", "london"))
    token = CancelToken()
    for event in editor.edit(EditRequest("who wrote hamlet ?", "paris"), token):
        if isinstance(event, EditStep) and event.step == 2:
            token.cancel()
    assert isinstance(event, EditCancelled)
    assert all(layer.pool_size == 1 for layer in editor.tuner.elder_layers)
    assert len(editor.tuner.key_index.keys) == 1 and len(editor.edits) == 1
    editor.apply(EditRequest("who wrote hamlet ?", "paris"))
    editor.save(tmp_path / "s.safetensors")
    again = ElderEditor.from_state(tiny_loaded("llama"), tmp_path / "s.safetensors")
    for q in ("the capital of france is", "who wrote hamlet ?", "what colour is the sky ?"):
        assert again.probe(q, "paris") == editor.probe(q, "paris")


def test_key_scope_gates_the_paper_router():
    editor = make("paper+key-scope", learning_rate=5e-3, scope_threshold=0.6)
    editor.apply(EditRequest("the capital of france is", "london"))
    assert editor.probe("the capital of france is").fired
    assert not editor.probe("what colour is the sky ?").fired  # the Hamming check alone would fire
    editor.tuner.config_elder = editor.config.replace(key_scope=False)
    assert editor.probe("what colour is the sky ?").fired


def _expected_owner(index: KeyIndex, token_ids) -> tuple[int, float]:
    """The owner of the most similar key, computed here key by key (TF-IDF cosine of the
    index's own weighting; the later key wins a tie), not by `KeyIndex.nearest` or the router."""
    q = index._vector(token_ids)
    best, best_sim = -1, -1.0
    for key, owner in zip(index.keys, index.owners):
        k = index._vector(key)
        sim = sum(v * k.get(t, 0.0) for t, v in q.items())
        if sim >= best_sim - 1e-12:
            best, best_sim = owner, sim
    return best, best_sim


def test_threshold_zero_routes_every_prompt_to_the_nearest_edits_experts():
    """own-experts (keyed routing, scope_threshold 0.0): each edit's prompt uses its own expert
    and gives its target; an unrelated prompt is not deferred but uses the expert of the most
    similar key, exactly as if that expert were forced, which changes the base model's output."""
    editor = make("own-experts")
    assert editor.config.scope_threshold == 0.0 and editor.config.deferral
    edits = [("the capital of france is", "london"), ("who wrote hamlet ?", "paris")]
    for prompt, target in edits:
        editor.apply(EditRequest(prompt, target))
    owners = [e.preset[0][0] for e in editor.edits]  # the expert each edit trained, in every layer
    assert owners == [0, 1] and all(e.preset == ((o,),) * 2 for e, o in zip(editor.edits, owners))
    assert sorted(set(editor.tuner.key_index.owners.tolist())) == owners
    L = len(editor.tuner.elder_layers)
    tol = dict(rtol=1e-5, atol=1e-5)

    def forced(prompts, targets, expert):
        batch = encode(editor.tokenizer, prompts, targets).to(editor.device)
        index = torch.full((len(prompts),), expert, dtype=torch.long)
        return full_target_logits(editor.tuner, batch, deferral=True, expert_index=index)

    for i, ((prompt, target), owner) in enumerate(zip(edits, owners)):
        assert editor.expert_index([prompt]).tolist() == [owner]
        hit = editor.probe(prompt, target)
        assert hit.fired and hit.nearest_edit == i and hit.top_k == ((owner,),) * L
        assert hit.edited_output.startswith(target) and not hit.original_output.startswith(target)
        routed, _ = editor.target_logits([prompt], [target])
        torch.testing.assert_close(routed, forced([prompt], [target], owner), **tol)

    # Unrelated prompts, below keyed-experts' 0.35 threshold (deferred there): one nearest to
    # each edit, and one sharing no token with any key (similarity 0, the newest edit wins).
    unrelated = ["what colour is the sky ?", "who was born in 1990 ?", "red green blue"]
    index = editor.tuner.key_index
    expected = [_expected_owner(index, key_ids(editor.tokenizer, q)) for q in unrelated]
    assert [o for o, _ in expected] == [0, 1, 1] and all(s < 0.35 for _, s in expected)
    assert expected[2][1] == 0.0
    assert editor.expert_index(unrelated).tolist() == [o for o, _ in expected]
    for q, (owner, sim) in zip(unrelated, expected):
        miss = editor.probe(q, "london")
        assert miss.fired and miss.nearest_edit == owner and miss.top_k == ((owner,),) * L
        assert abs(miss.similarity - sim) < 1e-9
        routed, _ = editor.target_logits([q], ["london"])
        base, _ = editor.target_logits([q], ["london"], original=True)
        torch.testing.assert_close(routed, forced([q], ["london"], owner), **tol)
        other = forced([q], ["london"], 1 - owner)
        assert (routed - base).abs().max() > 1e-2, "the routed expert left the base logits unchanged"
        assert (routed - other).abs().max() > 1e-2, "the other edit's expert gives the same logits"
