"""The scoped router (profile `scoped-router`): its distribution, calibration, learned keys,
negatives and deferral, on synthetic states and tiny random models."""

import pytest
import torch

from elder_engine import guess_subject
from elder_engine.editing.editor import EditRequest, ElderEditor
from elder_engine.elder import get_profile
from elder_engine.elder.negatives import background_prompts, entities, swap_subject
from elder_engine.models.blocks import find_blocks
from elder_engine.elder.scope import ScopeRouter, subject_span
from elder_engine.editing.events import CancelToken, EditCancelled, EditStep
from elder_engine.models.tokens import encode

from tiny import tiny_loaded


def make(**overrides):
    cfg = get_profile("scoped-router", num_edit_layers=2, **{"learning_rate": 5e-2, "max_steps": 20, **overrides})
    return ElderEditor(tiny_loaded("llama"), cfg)


def unit(v):
    return v / v.norm()


def router_with(keys, thresholds, d=8):
    router = ScopeRouter(d, 3, temperature=20.0, margin=0.05)
    for k, t in zip(keys, thresholds):
        router.add(unit(k), t, unit(torch.ones(3)))
    return router


# ------------------------------------------------------------------ the router itself
def test_distribution_covers_the_edits_and_defer_and_fires_only_above_threshold():
    g = torch.Generator().manual_seed(0)
    keys = [torch.randn(8, generator=g) for _ in range(3)]
    router = router_with(keys, [0.8, 0.8, 0.8])
    states = torch.randn(3, 5, 8, generator=g) * 0.1
    states[0, 2] = keys[1] * 4          # row 0 carries edit 1's key at position 2
    states[2, 4] = keys[2] * 4          # row 2 carries edit 2's key, but position 4 is masked out
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[2, 4] = False
    d = router.decide(states, mask, torch.randn(3, 3, generator=g))
    assert d.probs.shape == (3, 4)
    torch.testing.assert_close(d.probs.sum(1), torch.ones(3), rtol=1e-6, atol=1e-6)
    assert d.expert_index.tolist() == [1, -1, -1]
    assert int(d.best_position[0]) == 2
    assert d.probs[0, 1] > d.probs[0, -1] and d.probs[1, -1] > d.probs[1, :-1].max()
    torch.testing.assert_close(d.scores[0, 1], torch.tensor(1.0), rtol=1e-5, atol=1e-5)


def test_a_two_part_key_fires_only_where_both_parts_match():
    """"San Marino Football Federation" vs "Peruvian Football Federation": the last subject
    token alone matches both; the second part (another subject token) must match too."""
    g = torch.Generator().manual_seed(3)
    tail, head = unit(torch.randn(8, generator=g)), unit(torch.randn(8, generator=g))
    router = ScopeRouter(8, 3, temperature=20.0, margin=0.05)
    router.add(torch.stack([tail, head]), 0.8, unit(torch.ones(3)))
    states = torch.randn(3, 4, 8, generator=g) * 0.05
    states[0, 1], states[0, 3] = head * 4, tail * 4      # the whole subject
    states[1, 3] = tail * 4                              # only its last token
    states[2, 1] = head * 4                              # only the other part
    d = router.decide(states, torch.ones(3, 4, dtype=torch.bool))
    assert d.expert_index.tolist() == [0, -1, -1]
    one_part = router_with([tail], [0.8]).decide(states, torch.ones(3, 4, dtype=torch.bool))
    assert one_part.expert_index.tolist() == [0, 0, -1]   # what a one-part key would do
    # a state saved before key parts loads as one key used twice: the same decisions
    old = {k: v for k, v in router_with([tail], [0.8]).tensors().items() if k != "scope.head_keys"}
    loaded = ScopeRouter(8, 3, temperature=20.0, margin=0.05)
    loaded.load(old)
    assert torch.equal(loaded.head_keys, loaded.keys)
    assert loaded.decide(states, torch.ones(3, 4, dtype=torch.bool)).expert_index.tolist() == [0, 0, -1]


def test_a_raised_threshold_turns_a_firing_sequence_into_a_deferred_one():
    g = torch.Generator().manual_seed(1)
    key = torch.randn(8, generator=g)
    states = (key + 0.5 * torch.randn(8, generator=g))[None, None, :].repeat(1, 2, 1)
    mask = torch.ones(1, 2, dtype=torch.bool)
    score = float(router_with([key], [0.0]).decide(states, mask, torch.ones(1, 3)).scores[0, 0])
    assert router_with([key], [score - 0.01]).decide(states, mask, torch.ones(1, 3)).expert_index.tolist() == [0]
    assert router_with([key], [score + 0.01]).decide(states, mask, torch.ones(1, 3)).expert_index.tolist() == [-1]


def test_no_edits_means_defer_with_all_mass_on_defer():
    router = ScopeRouter(8, 3, 20.0, 0.05)
    g = torch.Generator().manual_seed(3)
    d = router.decide(torch.randn(2, 4, 8, generator=g), torch.ones(2, 4, dtype=torch.bool), torch.randn(2, 3, generator=g))
    assert d.expert_index.tolist() == [-1, -1]
    torch.testing.assert_close(d.probs, torch.ones(2, 1))


def test_calibration_sits_a_margin_above_the_hardest_negative_and_below_the_prompt():
    router = ScopeRouter(4, 3, 20.0, margin=0.05)
    key = unit(torch.tensor([1.0, 0.0, 0.0, 0.0]))
    item = lambda v: (torch.tensor([v]), torch.ones(1, dtype=torch.bool))
    positives = [item([1.0, 0.0, 0.0, 0.0])]
    negatives = [item([0.6, 0.8, 0.0, 0.0]), item([0.0, 1.0, 0.0, 0.0])]  # cosines 0.6 and 0.0
    theta = router.calibrate(key, positives, negatives, floor=0.3)
    assert theta == pytest.approx(0.65, rel=1e-4, abs=1e-4)
    # the floor holds when every negative is far
    assert router.calibrate(key, positives, negatives[1:], floor=0.3) == pytest.approx(0.3, rel=1e-6)
    # a negative as close as the prompt: the threshold stays below the prompt's own score
    theta = router.calibrate(key, positives, [item([0.99, 0.141, 0.0, 0.0])], floor=0.3)
    assert theta < 1.0
    # a prompt that matches its own key less than the floor still fires, a margin below itself
    weak = [item([0.45, 0.893, 0.0, 0.0])]
    assert router.calibrate(key, weak, negatives[1:], floor=0.5) == pytest.approx(0.40, rel=1e-3, abs=1e-3)
    # ... or halfway to a negative that is closer than the margin
    assert router.calibrate(key, weak, [item([0.42, 0.907, 0.0, 0.0])], floor=0.5) == pytest.approx(0.435, rel=1e-3, abs=1e-3)


def test_the_packed_match_is_each_items_best_unmasked_position_then_its_weakest_key_part():
    g = torch.Generator().manual_seed(5)
    router = ScopeRouter(8, 3, 20.0, 0.05)
    router.bg_mean = torch.randn(8, generator=g)
    router.bg_scale = torch.rand(8, generator=g) + 0.5
    items = []
    for n in (1, 4, 7, 3):
        mask = torch.rand(n, generator=g) > 0.3
        mask[0] = True
        items.append((torch.randn(n, 8, generator=g), mask))
    items.append((torch.randn(2, 8, generator=g), torch.zeros(2, dtype=torch.bool)))  # nothing to match
    parts = unit(torch.randn(2, 8, generator=g))
    got = router._max_sim(router._pack(items), parts)
    want = []
    for states, mask in items:
        z = router.standardise(states)[mask]
        want.append(float((z @ parts.t()).max(0).values.min()) if mask.any() else -2.0)
    torch.testing.assert_close(got, torch.tensor(want), rtol=1e-5, atol=1e-6)


def test_a_learned_key_separates_positives_from_negatives_better_than_its_start():
    g = torch.Generator().manual_seed(2)
    subject, shared = unit(torch.randn(16, generator=g)), unit(torch.randn(16, generator=g))
    router = ScopeRouter(16, 3, 20.0, 0.05)
    item = lambda v: (v[None], torch.ones(1, dtype=torch.bool))
    # the starting key mixes the subject with a direction every negative shares
    init = unit(subject + shared)
    positives = [item(unit(subject + shared + 0.1 * torch.randn(16, generator=g))) for _ in range(4)]
    positives += [item(unit(subject + 0.1 * torch.randn(16, generator=g))) for _ in range(4)]
    negatives = [item(unit(shared + 0.3 * torch.randn(16, generator=g))) for _ in range(20)]

    def gap(key):
        sp = router._max_sim(router._pack(positives), key)
        sn = router._max_sim(router._pack(negatives), key)
        return float(sp.min() - sn.max())

    learned = router.fit_key(init, positives, negatives, steps=60, lr=0.05)
    torch.testing.assert_close(learned.norm(), torch.tensor(1.0), rtol=1e-5, atol=1e-5)
    assert gap(learned) > gap(init) + 0.05
    assert torch.equal(router.fit_key(init, positives, negatives, steps=0, lr=0.05), init)


# ------------------------------------------------------------------ negatives and subjects
def test_subject_swaps_keep_the_template():
    prompt = "The capital of France is"
    span = subject_span(prompt, "france")
    assert prompt[span[0]:span[1]] == "France"
    assert swap_subject(prompt, span, "Germany") == "The capital of Germany is"
    assert swap_subject("The Eiffel Tower is in", subject_span("The Eiffel Tower is in", "Eiffel Tower"),
                        "the Colosseum") == "The Colosseum is in"
    assert swap_subject("France is big", (0, 6), "the Nile") == "The Nile is big"
    assert subject_span(prompt, "Spain") is None and subject_span(prompt, "") is None


@pytest.mark.parametrize("prompt, subject", [
    ("The capital of France is", "France"),
    ("What is the capital city of France?", "France"),
    ("The mother tongue of Danielle Darrieux is", "Danielle Darrieux"),
    ("When was the inception of IAAF Combined Events Challenge?", "IAAF Combined Events Challenge"),
    ("France's capital city is", "France"),
    ("what does the fox say", ""),
])
def test_guess_subject(prompt, subject):
    assert guess_subject(prompt) == subject


def test_shipped_negative_lists_are_there_and_clean():
    assert len(background_prompts()) >= 50 and len(entities()) >= 100
    assert len(set(entities())) == len(entities())


def test_negatives_are_swaps_earlier_prompts_and_locality_but_never_the_same_subject():
    editor = make(max_steps=2)
    editor.apply(EditRequest("the capital of france is", "london", subject="france"))
    editor.apply(EditRequest("who wrote hamlet ?", "paris", subject="hamlet"))
    request = EditRequest("the river of france is", "blue", subject="france", locality_prompts=("the sky is",))
    subject = editor.scope.subject_of(request)
    item = editor.scope.states([request.prompt], relation=False)[0]
    init = editor.tuner.scope_router.standardise(item.states[editor.scope.key_position(item, request.prompt, subject)])
    negatives = editor.scope._negative_prompts(request, subject, init, editor.edits)
    assert "the sky is" in negatives
    assert "who wrote hamlet ?" in negatives                 # an earlier edit about another subject
    assert "the capital of france is" not in negatives       # an earlier edit about the same subject
    swaps = [n for n in negatives if n.startswith("the river of ") and n != request.prompt]
    assert len(swaps) == editor.config.scope_swaps
    assert any("hamlet" in s for s in swaps)                 # earlier subjects are swapped in first
    assert not any(s.lower() == request.prompt for s in swaps)


# ------------------------------------------------------------------ the engine
def test_each_edit_gets_a_key_a_threshold_and_its_own_expert():
    editor = make()
    assert editor.route(["the capital of france is"]) == [((), ())]
    editor.apply(EditRequest("the capital of france is", "london", subject="france"))
    editor.apply(EditRequest("who wrote hamlet ?", "paris"))
    router = editor.tuner.scope_router
    assert router.keys.shape[0] == 2 and router.thresholds.shape == (2,)
    assert all(layer.pool_size == 2 for layer in editor.tuner.elder_layers)
    assert editor.edits[0].subject == "france"
    assert {"scope_router.keys", "scope_router.thresholds", "scope_router.bg_mean"} <= set(editor.tuner.state_dict())
    index = editor.expert_index(["the capital of france is", "who wrote hamlet ?"])
    assert index.tolist() == [0, 1]          # each edit fires on its own prompt, with its own expert
    weights = editor.route(["the capital of france is"])[0]
    assert len(weights) == 2 and len(weights[0]) == 2 and weights[0] == weights[1]


def test_deferred_sequences_get_exactly_the_base_output():
    editor = make()
    editor.apply(EditRequest("the capital of france is", "london", subject="france"))
    prompts = ["the capital of france is", "what colour is the sky ?"]
    index = editor.expert_index(prompts)
    assert index.tolist()[0] == 0
    deferred = [p for p, i in zip(prompts, index.tolist()) if i == -1]
    assert deferred, "the unrelated prompt must defer"
    edited, _ = editor.target_logits(deferred, ["blue"] * len(deferred))
    original, _ = editor.target_logits(deferred, ["blue"] * len(deferred), original=True)
    assert torch.equal(edited, original)
    fired, _ = editor.target_logits(prompts[:1], ["london"])
    base, _ = editor.target_logits(prompts[:1], ["london"], original=True)
    assert not torch.equal(fired, base)
    assert editor.generate(deferred, 4) == editor.generate(deferred, 4, original=True)


def test_state_round_trip_routes_identically(tmp_path):
    editor = make()
    editor.apply(EditRequest("the capital of france is", "london", subject="france"))
    editor.apply(EditRequest("who wrote hamlet ?", "paris", subject="hamlet"))
    path = tmp_path / "s.safetensors"
    editor.save(path)
    again = ElderEditor.from_state(tiny_loaded("llama"), path)
    for name in ("keys", "thresholds", "relation_keys", "bg_mean", "bg_scale"):
        assert torch.equal(getattr(again.tuner.scope_router, name), getattr(editor.tuner.scope_router, name))
    prompts = ["the capital of france is", "who wrote hamlet ?", "the sky is blue"]
    assert torch.equal(again.scope.route(prompts).probs, editor.scope.route(prompts).probs)
    assert [e.subject for e in again.edits] == ["france", "hamlet"]


def test_a_cancelled_edit_leaves_the_router_as_it_was():
    editor = make()
    editor.apply(EditRequest("the capital of france is", "london", subject="france"))
    before = {k: v.clone() for k, v in editor.tuner.scope_router.tensors().items()}
    cancel = CancelToken()
    for event in editor.edit(EditRequest("who wrote hamlet ?", "paris"), cancel):
        if isinstance(event, EditStep):
            cancel.cancel()
        if isinstance(event, EditCancelled):
            break
    after = editor.tuner.scope_router.tensors()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert len(editor.edits) == 1


def test_teacher_forced_routing_reads_the_prompt_only():
    """Target tokens must not change the decision: the router sees the prompt alone."""
    editor = make()
    editor.apply(EditRequest("the capital of france is", "london", subject="france"))
    batch = encode(editor.tokenizer, ["what colour is the sky ?"], ["france france"])
    assert batch.target_ids.shape[1] == 2
    assert editor.expert_index(["what colour is the sky ?"]).tolist() == [-1]
    edited, _ = editor.target_logits(["what colour is the sky ?"], ["france france"])
    original, _ = editor.target_logits(["what colour is the sky ?"], ["france france"], original=True)
    assert torch.equal(edited, original)


def test_min_steps_keeps_an_edit_training_past_its_early_stop():
    """min_steps: with an early stop the first iteration already meets, an edit still makes
    `min_steps` updates (iterations = min_steps + 1: the last one only sees the loss)."""
    for min_steps, iterations in ((0, 1), (3, 4)):
        editor = make(early_stop_loss=1e9, min_steps=min_steps, stop_at_min_steps=False)
        applied = editor.apply(EditRequest("the capital of france is", "london", subject="france"))
        assert applied.steps == iterations and len(applied.loss_curve) == iterations
        assert applied.settings["min_steps"] == min_steps
    editor = make(early_stop_loss=1e9, min_steps=6, max_steps=3)   # max_steps still caps it
    assert editor.apply(EditRequest("the capital of france is", "london")).steps == 3
    with pytest.raises(ValueError, match="min_steps"):
        get_profile("scoped-router", min_steps=-1)


def test_stop_at_min_steps_skips_the_check_pass_and_trains_the_same_expert():
    """With the loss already below the early stop, the min_steps-th update ends the edit: one
    iteration fewer, the same updates, the same expert as with the check pass."""
    experts = {}
    for stop, iterations in ((False, 4), (True, 3)):
        editor = make(early_stop_loss=1e9, min_steps=3, stop_at_min_steps=stop, stop_at_min_steps_loss=1e9)
        applied = editor.apply(EditRequest("the capital of france is", "london", subject="france"))
        assert applied.steps == iterations and applied.settings["stop_at_min_steps"] is stop
        experts[stop] = [t.clone() for layer in editor.tuner.elder_layers for t in (layer.elder_pool[0].A, layer.elder_pool[0].B)]
    assert all(torch.equal(a, b) for a, b in zip(experts[False], experts[True]))
    # min_steps 0 is unchanged: the first loss below the early stop ends the edit before any update
    editor = make(early_stop_loss=1e9, min_steps=0, stop_at_min_steps=True)
    assert editor.apply(EditRequest("the capital of france is", "london")).steps == 1
    # a loss that is not yet below goes on as before
    editor = make(early_stop_loss=-1.0, min_steps=3, max_steps=5, stop_at_min_steps=True)
    assert editor.apply(EditRequest("the capital of france is", "london")).steps == 5
    # stop_at_min_steps_loss: the loss must also be below it, else the check pass decides
    for bar, iterations in ((1e-30, 4), (1e9, 3), (None, 3)):
        editor = make(early_stop_loss=1e9, min_steps=3, stop_at_min_steps=True, stop_at_min_steps_loss=bar)
        applied = editor.apply(EditRequest("the capital of france is", "london"))
        assert applied.steps == iterations and applied.settings["stop_at_min_steps_loss"] == bar
    with pytest.raises(ValueError, match="stop_at_min_steps_loss"):
        get_profile("scoped-router", stop_at_min_steps_loss=0.0)


def test_near_miss_subjects_differ_from_the_subject_in_exactly_one_word():
    from elder_engine.elder.negatives import near_miss_subjects

    names = ["Nissan Laurel", "Toyota Camry", "Paris", "Real Madrid"]
    out = near_miss_subjects("Ferrari F40", names, 4)
    assert len(out) == 4 and len(set(out)) == 4
    for variant in out:
        a, b = "Ferrari F40".split(), variant.split()
        assert len(a) == len(b) and sum(x != y for x, y in zip(a, b)) == 1
    assert near_miss_subjects("France", names, 4) == []           # one word: nothing to vary
    assert near_miss_subjects("Bank of England", names, 2) == ["Bank of Laurel", "Nissan of England"]
    assert near_miss_subjects("Ferrari F40", names, 0) == []


def test_among_edits_that_fire_the_relation_weight_decides_which_applies():
    """Two edits of one subject both fire; a small relation weight leaves it to the match
    (against each edit's match on its own prompt), a large one to the relation query (what the
    prompt asks)."""
    g = torch.Generator().manual_seed(4)
    subject = unit(torch.randn(8, generator=g))
    asks_a, asks_b = unit(torch.tensor([1.0, 0.0, 0.0])), unit(torch.tensor([0.0, 1.0, 0.0]))
    states = (subject * 4)[None, None, :].repeat(1, 2, 1)
    mask = torch.ones(1, 2, dtype=torch.bool)
    chosen = {}
    for weight in (0.5, 100.0):
        router = ScopeRouter(8, 3, temperature=20.0, margin=0.05, relation_weight=weight)
        router.add(subject, 0.5, asks_a, own_score=0.9)   # the query matches edit 0 beyond its own prompt ...
        router.add(subject, 0.55, asks_b, own_score=1.0)
        d = router.decide(states, mask, asks_b[None] * 3)   # ... but the prompt asks what edit 1 asks
        assert d.scores[0].tolist() == pytest.approx([1.0, 1.0], rel=1e-5, abs=1e-5)
        chosen[weight] = int(d.expert_index[0])
    assert chosen == {0.5: 0, 100.0: 1}


def test_routing_no_prompts_gives_no_decisions_with_edits_stored():
    editor = make(max_steps=2)
    editor.apply(EditRequest("the capital of france is", "london", subject="france"))
    assert editor.expert_index([]).tolist() == []


def test_a_relation_read_at_the_scope_block_routes_in_one_short_forward():
    """scope_relation='scope-block': the relation comes from the same forward
    as the subject states, so no block above them runs; two edits of one subject are still told
    apart by what their prompts ask."""
    editor = make(scope_relation="scope-block", scope_block=1, max_steps=2)
    assert editor.scope.relation_is_free
    editor.apply(EditRequest("the capital of france is", "london", subject="france"))
    editor.apply(EditRequest("the currency of france is", "yen", subject="france"))
    ran = []
    _, blocks = find_blocks(editor.tuner.model)
    handles = [b.register_forward_hook(lambda m, a, o, i=i: ran.append(i)) for i, b in enumerate(blocks)]
    try:
        chosen = editor.expert_index(["the capital of france is", "the currency of france is"]).tolist()
    finally:
        for h in handles:
            h.remove()
    assert max(ran) <= 1
    assert chosen == [0, 1]
    assert editor.tuner.scope_router.relation_keys.shape[1] == editor.tuner.model.config.hidden_size
    with pytest.raises(ValueError, match="scope_relation"):
        make(scope_relation="block 3")


def test_an_edit_that_does_not_fire_never_wins_on_its_relation_alone():
    g = torch.Generator().manual_seed(5)
    subject, other = unit(torch.randn(8, generator=g)), unit(torch.randn(8, generator=g))
    asks_a, asks_b = unit(torch.tensor([0.2, -1.0, 0.0])), unit(torch.tensor([0.0, 1.0, 0.0]))  # opposed
    states = (subject * 4)[None, None, :]
    for weight in (100.0, 1e6):
        router = ScopeRouter(8, 3, temperature=20.0, margin=0.05, relation_weight=weight)
        router.add(subject, 0.5, asks_a)       # fires, asks something else
        router.add(other, 0.5, asks_b)         # does not fire, asks exactly what the prompt asks
        d = router.decide(states, torch.ones(1, 1, dtype=torch.bool), asks_b[None])
        assert d.expert_index.tolist() == [0] and d.nearest.tolist() == [0]


def test_between_edits_whose_prompts_end_alike_the_match_against_their_own_prompts_ranks():
    """Both edits fire and the query asks what both ask. Edit 1's key matches the query more
    (0.71 vs 0.70, and its threshold is lower), but the query matches edit 0 as well as edit
    0's own prompt does (gap 0), edit 1 far less than its own (gap -0.29): edit 0 applies."""
    router = ScopeRouter(2, 3, temperature=20.0, margin=0.05, relation_weight=1000.0)
    asks = unit(torch.ones(3))
    router.add(unit(torch.tensor([1.0, 0.0])), 0.5, asks, own_score=0.7)
    router.add(unit(torch.tensor([0.0, 1.0])), 0.3, asks, own_score=1.0)
    states = unit(torch.tensor([0.7, 0.714]))[None, None, :]
    d = router.decide(states, torch.ones(1, 1, dtype=torch.bool), asks[None])
    assert d.scores[0].tolist() == pytest.approx([0.7, 0.714], rel=1e-3, abs=1e-3)
    assert d.expert_index.tolist() == [0]


def test_a_mixed_batch_gives_each_row_what_it_gets_alone():
    """Rows of one batch routed to different edits, or deferred, get the same logits as when
    each is scored alone (the experts are grouped once per batch, not per layer)."""
    from elder_engine.elder.routing import group_rows

    assert [(e, r.tolist()) for e, r in group_rows(torch.tensor([3, -1, 3, 0]))] == [(3, [0, 2]), (0, [3])]
    assert group_rows(torch.tensor([2, 2])) == [(2, None)] and group_rows(torch.tensor([-1])) == []
    editor = make(max_steps=3)
    editor.apply(EditRequest("the capital of france is", "london", subject="france"))
    editor.apply(EditRequest("who wrote hamlet ?", "paris", subject="hamlet"))
    prompts = ["who wrote hamlet ?", "what colour is the sky ?", "the capital of france is"]
    assert editor.expert_index(prompts).tolist() == [1, -1, 0]
    mixed, _ = editor.target_logits(prompts, ["paris"] * 3)
    for i, p in enumerate(prompts):
        alone, _ = editor.target_logits([p], ["paris"])
        torch.testing.assert_close(mixed[i], alone[0], rtol=1e-4, atol=1e-4 * float(alone.abs().max()))
