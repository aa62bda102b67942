"""The history on the embedded default model: exact replays, restart, bundles, the CLI."""

from __future__ import annotations

import json

import pytest

from elder_engine import EditRequest, ElderEditor, get_profile
from elder_engine.cli.main import main
from elder_engine.history import EditHistory, load_bundle
from elder_engine.models.loading import LoadSettings, load_model
from history_helpers import run, same_state, state

pytestmark = pytest.mark.real_model

FACTS = [("The capital of France is", "Lyon"), ("The mother tongue of Danielle Darrieux is", "English"),
         ("Hamlet was written by", "Charles Dickens")]
SETTINGS = {"max_steps": 5}  # short edits: exactness does not depend on their length
PROMPTS = ("The capital of France is", "The capital of Germany is")


def probes(editor) -> list[dict]:
    return [editor.probe(p, max_new_tokens=3).to_dict() for p in PROMPTS]


def test_replay_reopen_and_bundle_are_bit_exact(fresh_default_model, default_model_cache_dir, tmp_path):
    # The paper profile: its experts and routers are shared, so each replay starts from a state
    # every earlier edit shaped (the default keyed profile is checked through the CLI below).
    profile = "paper"
    editor = ElderEditor(fresh_default_model, get_profile(profile))
    # No keyframes: every rollback / redo below replays edits on the real model.
    history = EditHistory.open(tmp_path / "h.elderdb", editor, keyframe_budget_s=1e9)
    history.old_answer_tokens = 4
    states, outs = [state(editor)], {}
    for i, (prompt, target) in enumerate(FACTS, 1):
        run(history.edit(EditRequest(prompt, target, settings=SETTINGS)))
        states.append(state(editor))
        if i in (1, 3):
            outs[i] = probes(editor)
    assert history.entries()[0].old_answer.startswith("Paris")
    run(history.rollback_to(1))  # edit 1 replayed on the base state
    assert same_state(state(editor), states[1]) and probes(editor) == outs[1]
    run(history.redo())  # edits 2 and 3 replayed on the exact states 1 and 2
    assert same_state(state(editor), states[3]) and probes(editor) == outs[3]
    bundle = tmp_path / "h.elderbundle"
    history.export_bundle(bundle)
    history.close()

    settings = LoadSettings(cache_dir=default_model_cache_dir, threads=1)
    restarted = ElderEditor(load_model("default", settings), get_profile(profile))
    with EditHistory.open(tmp_path / "h.elderdb", restarted) as reopened:
        assert reopened.head == 3 and same_state(state(restarted), states[3]) and probes(restarted) == outs[3]
    from_bundle = load_bundle(bundle, load_model("default", settings))
    assert same_state(state(from_bundle), states[3]) and probes(from_bundle) == outs[3]


def cli(capsys, *args) -> tuple[int, dict | str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    return code, (json.loads(lines[-1]) if code == 0 else err.strip().splitlines()[-1])


def test_cli(tmp_path, capsys, default_model):
    db, bundle = str(tmp_path / "h.elderdb"), str(tmp_path / "b.elderbundle")
    code, out = cli(capsys, "edit", "--db", db, "--prompt", FACTS[0][0], "--target", FACTS[0][1])
    assert code == 0 and out["seq"] == 1 and out["edit"]["status"] == "applied"
    probe = ("probe", "--db", db, "--query", FACTS[0][0], "--max-new-tokens", "3")
    code, first = cli(capsys, *probe, "--keep")
    assert code == 0 and first["kept"] and {"edited_output", "original_output", "fired", "nearest_edit", "hamming"} <= set(first)
    assert first["original_output"].startswith(" Paris")
    code, out = cli(capsys, "history", "--db", db, "rollback", "0")
    assert code == 0 and out["head"] == 0 and out["edits"][0]["status"] == "rolled_back"
    code, out = cli(capsys, "history", "--db", db, "redo")  # replays the edit (default profile)
    assert code == 0 and out["head"] == 1
    code, again = cli(capsys, *probe)  # a new process-like run: same outputs, bit for bit
    assert {k: v for k, v in again.items() if k != "kept"} == {k: v for k, v in first.items() if k != "kept"}
    code, out = cli(capsys, "history", "--db", db, "export", bundle)
    assert code == 0
    code, out = cli(capsys, "history", "--db", str(tmp_path / "copy.elderdb"), "import", bundle)
    assert code == 0 and [(e["seq"], e["target"], e["status"]) for e in out["edits"]] == [(1, FACTS[0][1], "applied")]
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database")
    code, err = cli(capsys, "history", "--db", str(notes), "list")
    assert code == 2 and err.startswith("error:") and "not an SQLite database" in err
