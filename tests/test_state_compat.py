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
    assert now == then
    editor.save(tmp_path / "again.safetensors")
    old, new = load_file(path), load_file(tmp_path / "again.safetensors")
    # own-expert profiles no longer keep the router they never read; everything else is kept
    dropped = {k for k in old if ".router." in k} if profile != "paper" else set()
    assert set(new) == set(old) - dropped
    assert all(old[k].dtype == new[k].dtype and torch.equal(old[k], new[k]) for k in new)
