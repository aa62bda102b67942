"""One firing decision: what the router views show is what generation does."""

import pytest

from app.session.engine_session import EngineSession
from app.session.jobs import JobContext
from elder_engine.editing.editor import EditRequest, ElderEditor
from elder_engine.editing.events import CancelToken
from elder_engine.elder import get_profile
from tiny import tiny_loaded

PROMPTS = ["the capital of france is", "who wrote hamlet ?", "what colour is the sky ?", "the sky is"]


def _edited(profile: str, **overrides) -> ElderEditor:
    cfg = get_profile(profile, num_edit_layers=2, learning_rate=5e-2, max_steps=8, **overrides)
    editor = ElderEditor(tiny_loaded("llama"), cfg)
    editor.apply(EditRequest("the capital of france is", "london"))
    editor.apply(EditRequest("who wrote hamlet ?", "paris"))
    return editor


@pytest.mark.parametrize("profile, overrides", [
    ("paper", {}),
    ("paper", {"epsilon": 10_000}),                                   # every code is near: all fire
    ("paper+key-scope", {"epsilon": 10_000, "scope_threshold": 0.6}),  # ...but the key scope defers some
    ("keyed-experts", {"scope_threshold": 0.6}),
    ("scoped-router", {}),
])
def test_firing_and_the_router_map_agree_with_the_probe(tmp_path, profile, overrides):
    editor = _edited(profile, **overrides)
    probes = [editor.probe(p) for p in PROMPTS]
    decisions = editor.firing(PROMPTS)
    assert [f for f, _ in decisions] == [p.fired for p in probes]
    assert [d for _, d in decisions] == [p.hamming for p in probes]
    session = EngineSession(history_dir=tmp_path, loaded=editor.loaded, editor=editor)
    data = session.router_map(JobContext(CancelToken(), lambda event: None), tuple(PROMPTS), "PCA")
    assert list(data.probe_fired) == [p.fired for p in probes]
    if profile == "paper+key-scope":   # the case the map used to get wrong: codes near, key far
        assert any(p.fired for p in probes) and not all(p.fired for p in probes)
