"""State files written before ELDER's state was registered (commit 27b6300: frozen experts in
a Python list, keys in a dataclass) still load, probe exactly as they did, and re-save with
every tensor unchanged.

The files in tests/data/ were written by 27b6300 on the tiny llama of tests/tiny.py: two edits
("the capital of france is" -> "london", "who wrote hamlet ?" -> "paris"), 8 steps each; the
JSON holds that version's probes of three queries."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from elder_engine.editing.editor import ElderEditor
from tiny import tiny_loaded

DATA = Path(__file__).parent / "data"
QUERIES = ("the capital of france is", "who wrote hamlet ?", "what colour is the sky ?")


@pytest.mark.parametrize("profile", ["paper", "keyed-experts", "scoped-router"])
def test_old_state_files_probe_and_resave_exactly(tmp_path, profile):
    path = DATA / f"state-27b6300-{profile}.safetensors"
    editor = ElderEditor.from_state(tiny_loaded("llama"), path)
    then = json.loads((DATA / "state-27b6300-probes.json").read_text())[profile]
    now = json.loads(json.dumps([editor.probe(q, "paris").to_dict() for q in QUERIES], sort_keys=True, default=str))
    # Outputs, tokens, codes and decisions exactly; probabilities to float rounding, which
    # differs between CPUs (the JSON was written on another host's matrix kernels).
    assert _floats_apart(now, then) == []
    editor.save(tmp_path / "again.safetensors")
    old, new = load_file(path), load_file(tmp_path / "again.safetensors")
    # own-expert profiles no longer keep the router they never read; everything else is kept
    dropped = {k for k in old if ".router." in k} if profile != "paper" else set()
    assert set(new) == set(old) - dropped
    assert all(old[k].dtype == new[k].dtype and torch.equal(old[k], new[k]) for k in new)


def _floats_apart(now, then, path="") -> list[str]:
    """Paths where `now` differs from `then`: floats beyond rtol 1e-5 (atol 1e-9), anything
    else unless equal."""
    if isinstance(then, float) and isinstance(now, (int, float)) and not isinstance(now, bool):
        return [] if abs(now - then) <= 1e-9 + 1e-5 * abs(then) else [f"{path}: {now} != {then}"]
    if isinstance(then, dict) and isinstance(now, dict) and now.keys() == then.keys():
        return [p for k in then for p in _floats_apart(now[k], then[k], f"{path}.{k}")]
    if isinstance(then, list) and isinstance(now, list) and len(now) == len(then):
        return [p for i, (a, b) in enumerate(zip(now, then)) for p in _floats_apart(a, b, f"{path}[{i}]")]
    return [] if now == then else [f"{path}: {now!r} != {then!r}"]


def test_floats_apart_tells_rounding_from_a_change():
    then = {"output": "paris", "p": [0.025333670899271965, 1.0], "fired": True}
    assert _floats_apart({"output": "paris", "p": [0.025333672761917114, 1.0], "fired": True}, then) == []
    assert _floats_apart({"output": "paris", "p": [0.0254, 1.0], "fired": True}, then) == [".p[0]: 0.0254 != 0.025333670899271965"]
    assert _floats_apart({"output": "london", "p": [0.025333670899271965, 1.0], "fired": True}, then) != []
    assert _floats_apart({"output": "paris", "p": [0.025333670899271965, 1.0], "fired": False}, then) != []
    assert _floats_apart({"output": "paris", "p": [0.025333670899271965], "fired": True}, then) != []


def test_history_rows_from_before_stop_at_min_steps_replay_with_the_check_pass():
    """A history row records every training setting of its day; one written before
    stop_at_min_steps existed was trained with the check pass and must replay so, whatever the
    engine's profile now says."""
    from types import SimpleNamespace

    from elder_engine.history.entries import request_from_row

    old = SimpleNamespace(prompt="p", target="t", train_paraphrases=[], preset=[[4]], subject="", locality_prompts=[],
                          settings={"learning_rate": 1e-3, "min_steps": 6})
    assert request_from_row(old).settings["stop_at_min_steps"] is False
    assert request_from_row(old).settings["stop_at_min_steps_loss"] is None
    new = SimpleNamespace(**{**vars(old), "settings": {"min_steps": 3, "stop_at_min_steps": True}})
    assert request_from_row(new).settings["stop_at_min_steps"] is True
