"""ELDER's state is registered (state_dict and .to() see every expert, key and code), the state
file is a renaming of it, and an engine exports in peft's layout and loads back identically."""

import json

import pytest
import torch
from safetensors import safe_open

from elder_engine.cli.main import main as cli_main
from elder_engine.editing.editor import EditRequest, ElderEditor
from elder_engine.editing.export import ADAPTER_CONFIG, ADAPTER_WEIGHTS, read_pretrained
from elder_engine.editing.state import state_tensors
from elder_engine.elder import get_profile
from elder_engine.errors import StateFormatError
from tiny import tiny_loaded

PROFILES = ("paper", "keyed-experts", "scoped-router")
QUERIES = ("the capital of france is", "who wrote hamlet ?", "what colour is the sky ?")


def _edited(profile: str) -> ElderEditor:
    cfg = get_profile(profile, num_edit_layers=2, learning_rate=5e-2, max_steps=8)
    editor = ElderEditor(tiny_loaded("llama"), cfg)
    editor.apply(EditRequest("the capital of france is", "london"))
    editor.apply(EditRequest("who wrote hamlet ?", "paris"))
    return editor


@pytest.mark.parametrize("profile", ["keyed-experts", "scoped-router"])
def test_every_frozen_expert_key_and_code_is_in_the_state_dict(profile):
    editor = _edited(profile)
    state = editor.tuner.elder_state_dict()
    for name in editor.tuner.elder_layer_names:
        assert {f"{name}.elder_pool.{e}.{p}" for e in (0, 1) for p in "AB"} <= set(state)
    assert {"stored_codes", "key_index.tokens", "key_index.lengths", "key_index.owners"} <= set(state)
    if profile == "scoped-router":
        assert state["scope_router.keys"].shape[0] == 2
    else:
        assert len(editor.tuner.key_index.lengths) > 0
    # the state file is that dict renamed, plus the generator's state
    file = state_tensors(editor)
    assert set(file) - {"rng_state"} and len(file) - 1 == len(
        [k for k in state if profile == "scoped-router" or not k.startswith("scope_router.")])
    layer = editor.tuner.elder_layers[1]
    assert torch.equal(file["layers.1.experts.1.A"], layer.elder_pool[1].A)
    # .to() reaches the frozen experts and the tuner's buffers
    editor.tuner.to(torch.float64)
    assert layer.elder_pool[0].A.dtype == torch.float64 and editor.tuner.scope_router.bg_mean.dtype == torch.float64
    assert editor.tuner.stored_codes.dtype == torch.bool  # .to(dtype) leaves non-float buffers alone


@pytest.mark.parametrize("profile", PROFILES)
def test_export_in_peft_layout_loads_back_with_identical_probes(tmp_path, profile):
    editor = _edited(profile)
    folder = tmp_path / "adapter"
    editor.save_pretrained(folder)
    config = json.loads((folder / ADAPTER_CONFIG).read_text())
    assert config["peft_type"] == "ELDER" and config["task_type"] == "CAUSAL_LM"
    assert config["target_modules"] == editor.config.target_modules and config["routing"] == editor.config.routing
    with safe_open(str(folder / ADAPTER_WEIGHTS), framework="pt") as f:
        names = list(f.keys())
        assert f.metadata()["format"] == "pt"
    layer_path = editor.tuner.elder_layer_names[0]
    assert f"base_model.{layer_path}.elder_A" in names
    # a router only where the profile reads one; frozen experts only where edits own them
    assert (f"base_model.{layer_path}.elder_router.weight" in names) == (profile == "paper")
    assert (f"base_model.{layer_path}.elder_pool.1.B" in names) == (profile != "paper")
    assert not any(".default" in n for n in names)

    again = ElderEditor.from_pretrained(tiny_loaded("llama"), folder)
    assert [e.to_dict() for e in again.edits] == [e.to_dict() for e in editor.edits]
    for q in QUERIES:
        assert again.probe(q, "paris") == editor.probe(q, "paris")
    mine, theirs = editor.tuner.elder_state_dict(), again.tuner.elder_state_dict()
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    # the next edit draws the same numbers after the round trip
    editor.apply(EditRequest("the sky is", "green"))
    again.apply(EditRequest("the sky is", "green"))
    assert torch.equal(editor.tuner.elder_layers[0].elder_A["default"], again.tuner.elder_layers[0].elder_A["default"])


def test_bad_adapter_folders_are_refused_clearly(tmp_path):
    editor = _edited("paper")
    with pytest.raises(StateFormatError, match="needs adapter_config.json"):
        read_pretrained(tmp_path)
    editor.save_pretrained(tmp_path / "a")
    config = json.loads((tmp_path / "a" / ADAPTER_CONFIG).read_text())
    (tmp_path / "a" / ADAPTER_CONFIG).write_text(json.dumps({**config, "peft_type": "LORA"}))
    with pytest.raises(StateFormatError, match="LORA adapter, not an ELDER"):
        read_pretrained(tmp_path / "a")
    editor.save_pretrained(tmp_path / "b")
    (tmp_path / "b" / ADAPTER_WEIGHTS).write_bytes(b"not safetensors")
    with pytest.raises(StateFormatError, match="not a readable ELDER adapter"):
        read_pretrained(tmp_path / "b")
    editor.save_pretrained(tmp_path / "c")
    with pytest.raises(StateFormatError, match="another model"):
        ElderEditor.from_pretrained(tiny_loaded("llama", seed=1), tmp_path / "c")
    (tmp_path / "file").write_text("x")
    with pytest.raises(StateFormatError, match="is a file"):
        editor.save_pretrained(tmp_path / "file")


def test_cli_exports_a_history_and_probes_the_folder(tmp_path, capsys):
    folder, db, out = tmp_path / "tiny", tmp_path / "h.elderdb", tmp_path / "adapter"
    loaded = tiny_loaded("llama")
    loaded.model.save_pretrained(folder)
    loaded.tokenizer.save_pretrained(folder)
    base = ["--model", str(folder), "--profile", "keyed-experts"]
    assert cli_main(["edit", "--db", str(db), *base, "--prompt", "the capital of france is", "--target", "london"]) == 0
    assert cli_main(["probe", "--db", str(db), *base, "--query", "the capital of france is"]) == 0
    from_history = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert cli_main(["adapter", "export", "--db", str(db), *base, str(out)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["edits"] == 1
    assert cli_main(["adapter", "probe", str(out), "--model", str(folder), "--query", "the capital of france is"]) == 0
    from_folder = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert from_folder == {k: v for k, v in from_history.items() if k in from_folder}
    assert from_folder["fired"] and from_folder["edited_output"] != from_folder["original_output"]
    assert cli_main(["adapter", "probe", str(tmp_path / "none"), "--query", "x"]) == 2
    err = capsys.readouterr().err
    assert "not an exported ELDER adapter" in err and len(err.strip().splitlines()) == 1
    assert cli_main(["adapter", "export", "--db", str(tmp_path / "missing.elderdb"), *base, str(out)]) == 2
    assert "no history" in capsys.readouterr().err


@pytest.mark.real_model
def test_default_model_export_loads_back_on_a_fresh_base_model(tmp_path, fresh_default_model, default_model_cache_dir):
    from elder_engine.models.loading import LoadSettings, load_model

    editor = ElderEditor(fresh_default_model)
    editor.apply(EditRequest("The capital of France is", "Rome", subject="France"))
    queries = ("The capital of France is", "France's capital city is", "The capital of Germany is")
    before = [editor.probe(q, "Rome") for q in queries]
    assert before[0].fired and before[0].edited_output.strip().startswith("Rome")
    editor.save_pretrained(tmp_path / "adapter")
    base = load_model("default", LoadSettings(cache_dir=default_model_cache_dir, threads=1))
    again = ElderEditor.from_pretrained(base, tmp_path / "adapter")
    assert again.config.profile == editor.config.profile
    assert [again.probe(q, "Rome") for q in queries] == before
