"""The scoped router on the real default model: an edit and its paraphrase fire, a template
twin (same template, another subject) and an unrelated prompt defer and keep the original
output bit for bit."""

import pytest
import torch

from elder_engine import EditRequest, ElderEditor, get_profile
from elder_engine.models.tokens import target_ids

pytestmark = pytest.mark.real_model

EDITS = [
    EditRequest("The capital of France is", "Rome", subject="France"),
    EditRequest("The native language of Pablo Picasso was", "German", subject="Pablo Picasso"),
    # no subject given: the engine guesses "Mona Lisa"
    EditRequest("The Mona Lisa was painted by", "Rembrandt"),
]


@pytest.fixture(scope="module")
def edited(fresh_default_model_module):
    editor = ElderEditor(fresh_default_model_module, get_profile("scoped-router"))
    for request in EDITS:
        editor.apply(request)
    return editor


@pytest.fixture(scope="module")
def fresh_default_model_module(default_model, default_model_cache_dir):
    from elder_engine.models.loading import LoadSettings, load_model

    return load_model("default", LoadSettings(cache_dir=default_model_cache_dir, threads=1))


def greedy_gives(editor, prompt, target):
    gold = target_ids(editor.tokenizer, prompt, target)
    return editor.generate([prompt], len(gold))[0][: len(gold)] == gold


@pytest.mark.parametrize("prompt, target, owner", [
    ("The capital of France is", "Rome", 0),
    ("France's capital city is", "Rome", 0),
    ("Pablo Picasso grew up speaking", "German", 1),
    ("The Mona Lisa was painted by", "Rembrandt", 2),
])
def test_edits_and_paraphrases_fire_their_own_edit(edited, prompt, target, owner):
    assert edited.expert_index([prompt]).tolist() == [owner]
    assert greedy_gives(edited, prompt, target)


@pytest.mark.parametrize("prompt", [
    "The capital of Germany is",
    "The native language of Victor Hugo was",
    "The Starry Night was painted by",
    "The chemical symbol for gold is",
])
def test_twins_and_unrelated_prompts_defer_and_keep_the_original_output_exactly(edited, prompt):
    assert edited.expert_index([prompt]).tolist() == [-1]
    assert edited.generate([prompt], 12) == edited.generate([prompt], 12, original=True)
    logits, _ = edited.target_logits([prompt], ["Paris is a city"])
    base, _ = edited.target_logits([prompt], ["Paris is a city"], original=True)
    assert torch.equal(logits, base)


def test_the_probe_shows_the_router_distribution_and_threshold(edited):
    fired = edited.probe("France's capital city is")
    assert fired.routing == "scoped" and fired.fired and fired.nearest_edit == 0
    assert len(fired.router_weights[0]) == len(EDITS)
    total = sum(fired.router_weights[0]) + fired.defer_probability
    assert total == pytest.approx(1.0, rel=1e-5)
    assert fired.similarity > fired.scope_threshold
    assert "France" in (fired.matched_token or "")
    deferred = edited.probe("The capital of Germany is")
    assert not deferred.fired and deferred.similarity < deferred.scope_threshold
    assert deferred.edited_output == deferred.original_output
    assert deferred.defer_probability > max(deferred.router_weights[0])
