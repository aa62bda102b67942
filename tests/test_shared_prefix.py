"""Negatives read with their shared beginning once (editing/shared_prefix.py) have the states
of a whole read, for every tiny model family and in chat format."""

import pytest
import torch

from elder_engine.editing import shared_prefix
from elder_engine.editing.editor import ElderEditor
from elder_engine.elder import get_profile

from tiny import FAMILIES, tiny_loaded

PROMPT = "the native language of pablo picasso is"
TEXTS = ["the native language of marie curie is", "who wrote hamlet ?",
         "the native language of pablo neruda is", "the native language of x is"]


def _editor(family, chat=False):
    cfg = get_profile("scoped-router", num_edit_layers=2, prompt_format="chat" if chat else "plain")
    return ElderEditor(tiny_loaded(family, chat=chat), cfg)


@pytest.mark.parametrize("family,chat", [(f, False) for f in FAMILIES] + [("llama", True)])
def test_shared_read_gives_the_whole_read_states(family, chat, monkeypatch):
    editor = _editor(family, chat)
    tails = []
    real = shared_prefix._read_tails

    def spy(reader, shared, rows):
        tails.append(len(rows))
        return real(reader, shared, rows)

    monkeypatch.setattr(shared_prefix, "_read_tails", spy)
    got = shared_prefix.read_sharing_prefix(editor.scope, TEXTS, PROMPT)
    want = editor.scope.states(TEXTS, relation=False)
    assert tails == [3]  # the three texts that begin as the prompt does; "who wrote hamlet ?" is read whole
    for g, w in zip(got, want):
        assert g.offsets == w.offsets
        torch.testing.assert_close(g.states, w.states, rtol=1e-5, atol=1e-5 * float(w.states.abs().max()))


def test_a_model_that_cannot_take_the_cache_is_read_whole(monkeypatch):
    editor = _editor("llama")

    def fails(*args):
        raise TypeError("no cache here")

    monkeypatch.setattr(shared_prefix, "_read_tails", fails)
    got = shared_prefix.read_sharing_prefix(editor.scope, TEXTS, PROMPT)
    want = editor.scope.states(TEXTS, relation=False)
    assert [g.states.shape for g in got] == [w.states.shape for w in want]
    for g, w in zip(got, want):
        torch.testing.assert_close(g.states, w.states)
