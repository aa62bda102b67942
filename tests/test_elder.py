"""ELDER mechanisms on tiny random models (fast)."""

import pytest
import torch

from elder_engine.editing.editor import EditRequest, ElderEditor
from elder_engine.editing.views import query_of
from elder_engine.elder import ElderLayer, get_profile
from elder_engine.errors import EditRequestError, UnsupportedModelError
from elder_engine.editing.events import CancelToken, EditCancelled, EditStep
from elder_engine.elder.presets import draw_preset
from elder_engine.models.tokens import encode
from elder_engine.editing.training import LowerBlockCache, full_target_logits

from tiny import FAMILIES, tiny_loaded

PROMPTS = ["the capital of france is", "who wrote hamlet ?", "what colour is the sky ?"]


def make(family="llama", **overrides):
    cfg = get_profile("paper", num_edit_layers=2, **{"learning_rate": 5e-3, "max_steps": 20, **overrides})
    return ElderEditor(tiny_loaded(family), cfg)


def base_logits(editor, prompts):
    batch = encode(editor.tokenizer, prompts).to(editor.device)
    with torch.no_grad(), editor.original():
        return editor.model(**batch.model_inputs()).logits


def perturb(editor, scale=0.5):
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in editor.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)


@pytest.mark.parametrize("family", FAMILIES)
def test_attaches_to_each_family(family):
    editor = make(family)
    layers = editor.tuner.elder_layers
    assert len(layers) == 2
    cfg = editor.config
    assert cfg.layers_to_transform == [4, 5] and cfg.first_edit_layer == 4
    trainable = {n for n, p in editor.model.named_parameters() if p.requires_grad}
    assert trainable and all("elder_" in n for n in trainable)
    # B starts at zero: attaching changes nothing
    batch = encode(editor.tokenizer, PROMPTS).to(editor.device)
    with torch.no_grad(), editor.tuner.routing.session(batch.query_positions, deferral=False):
        attached = editor.model(**batch.model_inputs()).logits
    assert torch.equal(attached, base_logits(editor, PROMPTS))


@pytest.mark.parametrize("family", FAMILIES)
def test_cached_lower_blocks_give_the_full_forward_logits(family):
    editor = make(family)
    perturb(editor)
    batch = encode(editor.tokenizer, PROMPTS, ["paris", "shakespeare", "blue red"])
    cached = LowerBlockCache(editor.tuner, batch).target_logits()
    full = full_target_logits(editor.tuner, batch, deferral=False)
    torch.testing.assert_close(cached, full, rtol=1e-5, atol=1e-5 * float(full.detach().abs().max()))


def test_layer_output_follows_the_formula():
    editor = make()
    perturb(editor)
    layer: ElderLayer = editor.tuner.elder_layers[0]
    x = torch.randn(2, 5, layer.in_features)
    q = torch.randn(2, layer.in_features)
    with editor.tuner.routing.session(query=q, deferral=False):
        got = layer(x)
    s = torch.softmax(layer.elder_router["default"](q), -1)
    A, B = layer.elder_A["default"], layer.elder_B["default"]
    want = layer.base_layer(x).clone()
    for b in range(2):
        for i in s[b].topk(2).indices.tolist():
            want[b] += s[b, i] * editor.config.scale * (x[b] @ A[i].T @ B[i].T)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * float(want.detach().abs().max()))


def test_query_is_last_real_prompt_token_under_left_padding():
    editor = make()
    alone = encode(editor.tokenizer, ["who wrote hamlet ?"], ["shakespeare"])
    mixed = encode(editor.tokenizer, ["who wrote hamlet ?", "the capital of the first city of france is"],
                   ["shakespeare", "paris"])
    assert mixed.input_ids.shape[1] > alone.input_ids.shape[1]  # the first row is left-padded
    q_alone = query_of(editor, alone)
    q_mixed = query_of(editor, mixed)
    torch.testing.assert_close(q_alone[0], q_mixed[0], rtol=1e-5, atol=1e-5 * float(q_alone[0].detach().abs().max()))
    # and it is the token before the target, not a target or pad token
    assert int(mixed.query_positions[0]) == mixed.input_ids.shape[1] - 2


def test_query_holds_during_generation():
    editor = make()
    perturb(editor)
    editor.tuner.stored_codes = torch.ones(1, editor.config.code_bits, dtype=torch.bool)
    seen = []
    hook = editor.tuner.query_module.register_forward_pre_hook(lambda m, a: seen.append(a[0].shape[1]))
    captured = []
    orig = editor.tuner._capture_query

    def spy(module, args):
        before = editor.tuner.routing.query
        orig(module, args)
        captured.append(editor.tuner.routing.query is not before)

    editor.tuner._hook.remove()
    editor.tuner._hook = editor.tuner.query_module.register_forward_pre_hook(spy)
    editor.generate(["who wrote hamlet ?"], 4)
    hook.remove()
    assert len(seen) == 4 and seen[0] > 1 and all(n == 1 for n in seen[1:])
    assert captured == [True, False, False, False]  # computed at prefill, then held


def test_presets_are_distinct_and_guided_loss_learns_them():
    editor = make(guide_lambda=10.0, max_steps=60, learning_rate=5e-2)
    editor.apply(EditRequest("the capital of france is", "london"))
    editor.apply(EditRequest("who wrote hamlet ?", "paris"))
    a, b = (e.preset for e in editor.edits)
    assert a != b and all(len(set(layer)) == 2 for layer in a)
    for edit in editor.edits:  # the recorded code is the preset once the router learned it
        code = torch.tensor(edit.code).view(2, 4)
        assert [sorted(torch.nonzero(row).flatten().tolist()) for row in code] == [list(p) for p in edit.preset]


def test_draw_preset_avoids_every_earlier_allocation():
    cfg = get_profile("paper", num_edit_layers=1)  # only C(4,2) = 6 allocations exist
    g = torch.Generator().manual_seed(0)
    earlier = []
    for _ in range(6):
        earlier.append(draw_preset(g, earlier, cfg))
    assert len({frozenset(p[0]) for p in earlier}) == 6


def test_edit_learns_and_defers_unrelated_queries():
    editor = make(epsilon=1, max_steps=60, learning_rate=5e-2, lora_alpha=256)
    editor.apply(EditRequest("the capital of france is", "london"))
    hit = editor.probe("the capital of france is", "london")
    assert hit.fired and hit.hamming == 0
    # a tiny random model cannot be confident (its final norm bounds the logits): the target
    # becomes the argmax and gains probability
    assert hit.edited_target_prob > 2 * hit.original_target_prob
    assert hit.edited_output.startswith("london")
    # epsilon=0 admits nothing: every query gives the base model's output exactly
    editor.tuner.config_elder = editor.config.replace(epsilon=0)
    miss = editor.probe("the capital of france is", "london")
    assert not miss.fired and miss.edited_output == miss.original_output
    assert miss.edited_target_prob == miss.original_target_prob


def test_experts_off_is_exactly_the_base_model():
    editor = make()
    before = base_logits(editor, PROMPTS)
    perturb(editor)
    editor.tuner.stored_codes = torch.ones(1, editor.config.code_bits, dtype=torch.bool)
    assert torch.equal(base_logits(editor, PROMPTS), before)


def _state(editor):
    return [p.detach().clone() for p in editor.parameters()] + [editor.tuner.stored_codes.clone(),
                                                              editor.tuner.generator.get_state()]


def _same(a, b):
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


def test_cancel_restores_the_engine_bitwise():
    editor = make()
    editor.apply(EditRequest("who wrote hamlet ?", "paris"))
    before, edits = _state(editor), list(editor.edits)
    token = CancelToken()
    events = []
    for event in editor.edit(EditRequest("the capital of france is", "london"), token):
        events.append(event)
        if isinstance(event, EditStep) and event.step == 5:
            token.cancel()
    assert isinstance(events[-1], EditCancelled) and events[-1].steps_done == 5
    assert _same(before, _state(editor)) and editor.edits == edits
    # a consumer that simply stops iterating (closes the generator) gets the same guarantee
    gen = editor.edit(EditRequest("the capital of france is", "london"))
    for event in gen:
        if isinstance(event, EditStep) and event.step == 3:
            break
    gen.close()
    assert _same(before, _state(editor)) and editor.edits == edits


def test_invalid_requests_are_refused_with_a_message():
    editor = make()
    with pytest.raises(EditRequestError, match="prompt is empty"):
        list(editor.edit(EditRequest("   ", "paris")))
    with pytest.raises(EditRequestError, match="target is empty"):
        list(editor.edit(EditRequest("the capital", "")))
    with pytest.raises(EditRequestError, match="context"):
        editor.probe("the " * 500)
    with pytest.raises(EditRequestError, match="tokens long"):
        list(editor.edit(EditRequest("the capital", "paris " * 100)))


def test_a_target_with_no_tokens_is_refused(monkeypatch):
    # Some tokenizers silently drop text they cannot encode; scoring zero tokens would say P = 1.
    from elder_engine.models.prompt_format import PromptFormat
    editor = make()
    monkeypatch.setattr(PromptFormat, "target_ids", lambda self, tokenizer, prompt, target: [])
    with pytest.raises(EditRequestError, match="no tokens"):
        list(editor.edit(EditRequest("the capital", "\u2603")))
    with pytest.raises(EditRequestError, match="no tokens"):
        editor.probe("the capital", target="\u2603")


def test_unsupported_ffn_module_is_a_clear_error():
    loaded = tiny_loaded("llama")
    with pytest.raises(UnsupportedModelError, match="no FFN module"):
        ElderEditor(loaded, get_profile("paper", ffn_module="mlp.nonexistent"))


def test_state_roundtrip_gives_identical_probes(tmp_path):
    editor = make()
    editor.apply(EditRequest("the capital of france is", "london"))
    editor.apply(EditRequest("who wrote hamlet ?", "paris"))
    path = tmp_path / "state.safetensors"
    editor.save(path)
    again = ElderEditor.from_state(tiny_loaded("llama"), path)
    for q in PROMPTS:
        assert again.probe(q, "paris") == editor.probe(q, "paris")
    assert _same(_state(again), _state(editor))
    # the RNG state came along: the next preset is the same
    a = editor.apply(EditRequest("what colour is the sky ?", "red"))
    b = again.apply(EditRequest("what colour is the sky ?", "red"))
    assert a.preset == b.preset and a.code == b.code


def test_state_of_another_model_or_a_truncated_file_is_refused(tmp_path):
    from elder_engine.errors import StateFormatError

    editor = make()
    editor.apply(EditRequest("the capital of france is", "london"))
    path = tmp_path / "s.safetensors"
    editor.save(path)
    other = ElderEditor(tiny_loaded("llama", seed=5), editor.config.replace())
    with pytest.raises(StateFormatError, match="another model"):
        other.load(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(StateFormatError, match="truncated or corrupt"):
        ElderEditor.from_state(tiny_loaded("llama"), path)
