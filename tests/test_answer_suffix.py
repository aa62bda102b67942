"""experts_from_answer: experts apply from the last prompt token on, and training runs only
that suffix on top of the prompt's cached keys and values (tiny random models)."""

import pytest
import torch

from elder_engine.editing.editor import ElderEditor
from elder_engine.editing.training import AnswerSuffixCache, LowerBlockCache, full_target_logits, training_cache
from elder_engine.elder import get_profile
from elder_engine.elder.routing import TRAINING_EXPERT
from elder_engine.models.tokens import encode

from tiny import FAMILIES, tiny_loaded

PROMPTS = ["the capital of france is", "who wrote hamlet ?", "what colour is the sky ?"]
TARGETS = ["paris", "shakespeare", "blue red"]  # different lengths: rows end at different positions


def make(family="llama", profile="paper", **overrides):
    cfg = get_profile(profile, num_edit_layers=2, **{"experts_from_answer": True, **overrides})
    editor = ElderEditor(tiny_loaded(family), cfg)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in editor.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.5)
    return editor


def close(got, want):
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * float(want.detach().abs().max()))


@pytest.mark.parametrize("family", FAMILIES)
def test_suffix_training_gives_the_whole_forward_logits_and_gradients(family):
    editor = make(family)
    batch = encode(editor.tokenizer, PROMPTS, TARGETS)
    cache = training_cache(editor.tuner, batch)
    assert isinstance(cache, AnswerSuffixCache)
    assert cache.experts_from is not None  # the rows' prompts end at different positions
    params = editor.training_parameters()
    cached = cache.target_logits()
    grads = torch.autograd.grad(cached.square().mean(), params, allow_unused=True)
    full = full_target_logits(editor.tuner, batch, deferral=False)
    want = torch.autograd.grad(full.square().mean(), params, allow_unused=True)
    close(cached, full)
    for g, w in zip(grads, want):
        assert (g is None) == (w is None)
        if w is not None:
            close(g, w)
    close(cache.target_logits(), full)  # a second forward starts again from the prompt's cache


def test_prompt_positions_keep_the_base_states_and_the_answer_changes():
    editor = make()
    batch = encode(editor.tokenizer, PROMPTS, TARGETS)
    with torch.no_grad():
        with editor.original():
            base = editor.model(**batch.model_inputs()).logits
        with editor.tuner.routing.session(batch.query_positions, deferral=False):
            edited = editor.model(**batch.model_inputs()).logits
    for row, end in enumerate(batch.target_positions[:, 0].tolist()):
        assert torch.equal(edited[row, :end], base[row, :end])
        assert not torch.allclose(edited[row, end:], base[row, end:])


def test_own_expert_training_matches_the_whole_forward():
    editor = make(profile="keyed-experts")
    batch = encode(editor.tokenizer, PROMPTS[:2], ["paris is nice", "paris is nice"])
    index = torch.full((2,), TRAINING_EXPERT)
    cached = training_cache(editor.tuner, batch, index)
    assert cached.experts_from is None  # one target: every row's prompt ends at the same position
    close(cached.target_logits(), full_target_logits(editor.tuner, batch, deferral=False, expert_index=index))


def test_without_the_setting_training_uses_the_lower_block_cache():
    editor = make(experts_from_answer=False)
    batch = encode(editor.tokenizer, PROMPTS, TARGETS)
    assert type(training_cache(editor.tuner, batch)) is LowerBlockCache


def test_generation_applies_experts_from_the_last_prompt_token():
    """Cached generation (prefill, then one token per step) against greedy whole forwards."""
    editor = make()
    prompts = PROMPTS[:2]
    batch = encode(editor.tokenizer, prompts)
    pad = editor.tokenizer.pad_token_id
    with torch.no_grad(), editor.tuner.routing.session(batch.query_positions, deferral=False):
        out = editor.model.generate(input_ids=batch.input_ids, attention_mask=batch.attention_mask, do_sample=False,
                                    max_new_tokens=5, min_new_tokens=5, pad_token_id=pad, num_beams=1)
    got = [row[batch.input_ids.shape[1]:].tolist() for row in out]
    ids, mask, pos = batch.input_ids, batch.attention_mask, batch.position_ids
    with torch.no_grad():
        for _ in range(5):
            with editor.tuner.routing.session(batch.query_positions, deferral=False):
                logits = editor.model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
            nxt = logits[:, -1].argmax(-1, keepdim=True)
            ids, mask = torch.cat([ids, nxt], 1), torch.cat([mask, torch.ones_like(nxt)], 1)
            pos = torch.cat([pos, pos[:, -1:] + 1], 1)
    assert got == [row[batch.input_ids.shape[1]:].tolist() for row in ids]
    with torch.no_grad(), editor.original():
        base = editor.model.generate(input_ids=batch.input_ids, attention_mask=batch.attention_mask, do_sample=False,
                                     max_new_tokens=5, min_new_tokens=5, pad_token_id=pad, num_beams=1)
    assert not torch.equal(base, out)  # the experts did change the answer


def test_in_chat_format_experts_start_at_the_last_prompt_token_not_at_the_query():
    """In chat format the query is the user's last token, a few tokens before the prompt ends;
    the experts still start where the prompt ends."""
    cfg = get_profile("paper", num_edit_layers=2, experts_from_answer=True, prompt_format="chat", chat_query="user")
    editor = ElderEditor(tiny_loaded("llama", chat=True), cfg)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in editor.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.5)
    fmt = editor.prompt_format
    assert fmt.query_back > 0
    batch = encode(editor.tokenizer, PROMPTS, TARGETS, fmt)
    ends = batch.target_positions[:, 0]
    assert torch.equal(ends, batch.query_positions + fmt.query_back)
    with torch.no_grad():
        with editor.original():
            base = editor.model(**batch.model_inputs()).logits
        with editor.tuner.routing.session(batch.query_positions, deferral=False):
            edited = editor.model(**batch.model_inputs()).logits
    for row, end in enumerate(ends.tolist()):
        assert torch.equal(edited[row, :end], base[row, :end])
        assert not torch.allclose(edited[row, end:], base[row, end:])
    close(training_cache(editor.tuner, batch).target_logits(), full_target_logits(editor.tuner, batch, deferral=False))


def test_a_model_whose_cache_cannot_be_rebuilt_trains_through_the_lower_block_cache(monkeypatch):
    """The fallback keeps the mask: its logits are those of the whole masked forward."""
    editor = make()
    batch = encode(editor.tokenizer, PROMPTS, TARGETS)

    def refuse(self):
        raise AttributeError("no per-layer keys")

    monkeypatch.setattr(AnswerSuffixCache, "_fill", refuse)
    cache = training_cache(editor.tuner, batch)
    assert type(cache) is LowerBlockCache
    assert editor.tuner.routing.experts_from is None  # nothing left over from the failed fill
    close(cache.target_logits(), full_target_logits(editor.tuner, batch, deferral=False))
