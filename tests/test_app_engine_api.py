"""The two engine methods the workbench needs beyond editing and probing: `route` (router
weights without generation, for the router map) and `set_inference` (epsilon / deferral)."""

import pytest

from elder_engine import EditRequest, EditRequestError, ElderEditor, get_profile
from tiny import tiny_loaded


def test_route_matches_probe_router_weights():
    editor = ElderEditor(tiny_loaded(), get_profile("paper", max_steps=2))
    prompts = ["the capital of france is", "who wrote hamlet ?"]
    routed = editor.route(prompts, batch_size=1)
    assert len(routed) == 2 and len(routed[0]) == editor.config.num_edit_layers
    for prompt, weights in zip(prompts, routed):
        probed = editor.probe(prompt, max_new_tokens=1).router_weights
        flat = [x for row in weights for x in row]
        assert flat == pytest.approx([x for row in probed for x in row], rel=1e-5, abs=1e-6)


def test_set_inference_changes_deferral_only():
    editor = ElderEditor(tiny_loaded(), get_profile("paper", max_steps=2))
    editor.apply(EditRequest("the capital of france is", "london"))
    targets = editor.config.target_modules
    editor.set_inference(epsilon=0)
    assert editor.config.epsilon == 0 and editor.config.target_modules == targets
    assert not editor.probe("who wrote hamlet ?", max_new_tokens=1).fired
    editor.set_inference(deferral=False)
    assert editor.probe("who wrote hamlet ?", max_new_tokens=1).fired
    with pytest.raises(EditRequestError):
        editor.set_inference(rank=4)
    with pytest.raises(EditRequestError):
        editor.set_inference(epsilon=-1)


def test_set_inference_scope_threshold_of_keyed_routing():
    editor = ElderEditor(tiny_loaded(), get_profile("keyed-experts", max_steps=2))
    editor.apply(EditRequest("the capital of france is", "london"))
    assert editor.probe("who wrote hamlet ?", max_new_tokens=1).fired is False
    editor.set_inference(scope_threshold=0.0)
    assert editor.config.scope_threshold == 0.0
    assert editor.probe("who wrote hamlet ?", max_new_tokens=1).fired
    with pytest.raises(EditRequestError):
        editor.set_inference(scope_threshold=1.5)
