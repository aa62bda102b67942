"""`python -m elder_engine history --db F watch add|list|run|remove|export`: results, one JSON
line, no model load where none is needed, and one `error:` line (exit 2) for bad input with
the list left as it was."""

from __future__ import annotations

import json

import pytest

from elder_engine.cli import common, main as cli
from elder_engine.history import WatchList
from history_helpers import edit, open_tiny, tiny_editor


def call(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    if code == 0:
        assert len(lines) == 1, f"stdout must be one JSON line, got {out!r}"
        return code, json.loads(lines[0])
    assert not lines, f"nothing on stdout on failure: {out!r}"
    err_lines = err.strip().splitlines()
    assert len(err_lines) == 1 and err_lines[0].startswith("error:"), err
    return code, err_lines[0]


@pytest.fixture
def no_model(monkeypatch):
    def refuse(*_a, **_k):
        raise AssertionError("the model was loaded")
    monkeypatch.setattr(common, "open_model", refuse)


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "h.elderdb"
    with open_tiny(path, tiny_editor()) as history:
        edit(history, 0)
    return path


def prompts(path):
    with WatchList.open(path) as watch:
        return [(i.prompt, i.expected) for i in watch.items()]


def test_add_list_remove_export_without_a_model(capsys, db, tmp_path, no_model):
    w = ("history", "--db", str(db), "watch")
    code, out = call(capsys, *w, "add", "The capital of Germany is", "--expected", "Berlin")
    assert code == 0 and out["added"] == 1 and out["counts"]["prompts"] == 1
    code, out = call(capsys, *w, "add", "Who wrote Hamlet?", "What colour is the sky?")
    assert (out["added"], out["already_watched"]) == (2, 0)
    code, out = call(capsys, *w, "add", "Who wrote Hamlet?")
    assert (out["added"], out["already_watched"]) == (0, 1)
    src = tmp_path / "more.csv"
    src.write_text('prompt,expected\n"Paris, the city, lies in",France\n')
    code, out = call(capsys, *w, "add", "--file", str(src))
    assert out["added"] == 1
    code, out = call(capsys, *w, "list")
    assert code == 0 and [r["prompt"] for r in out["rows"]] == [
        "The capital of Germany is", "Who wrote Hamlet?", "What colour is the sky?", "Paris, the city, lies in"]
    assert out["rows"][0]["expected"] == "Berlin" and out["rows"][0]["edited"] is None
    assert out["head"] == 1 and out["counts"]["probed"] == 0
    code, out = call(capsys, *w, "remove", str(out["rows"][1]["id"]))
    assert out["removed"] == 1 and out["counts"]["prompts"] == 3
    dest = tmp_path / "out" / "list.txt"
    code, out = call(capsys, *w, "export", str(dest))
    assert dest.read_text() == "The capital of Germany is\tBerlin\nWhat colour is the sky?\n" \
                               "Paris, the city, lies in\tFrance\n"


def test_bad_input_is_one_line_and_changes_nothing(capsys, db, tmp_path, no_model):
    w = ("history", "--db", str(db), "watch")
    call(capsys, *w, "add", "kept prompt")
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text('prompt,expected\nfine,x\n"unclosed,quote\n')
    wide_csv = tmp_path / "wide.csv"
    wide_csv.write_text("a,b,c\n")
    cases = [
        ((*w, "add", ""), "empty prompt"),
        ((*w, "add", "   ", "--expected", "x"), "no prompt"),
        ((*w, "add"), "give a PROMPT or --file"),
        ((*w, "add", "a", "b", "--expected", "x"), "exactly one PROMPT"),
        ((*w, "add", "--file", str(tmp_path / "missing.txt")), "no such file"),
        ((*w, "add", "--file", str(bad_csv)), "malformed CSV"),
        ((*w, "add", "--file", str(wide_csv)), "3 fields"),
        ((*w, "remove", "999"), "no watched prompt with id 999"),
        ((*w, "run", "--tokens", "0"), "at least 1"),
        (("history", "--db", str(tmp_path / "none.elderdb"), "watch", "list"), "no history there"),
        (("history", "--db", str(tmp_path / "none.elderdb"), "watch", "add", "x"), "no history there"),
    ]
    for argv, words in cases:
        code, line = call(capsys, *argv)
        assert code == 2 and words in line, (argv, line)
    assert prompts(db) == [("kept prompt", "")]
    assert not (tmp_path / "none.elderdb").exists()


@pytest.mark.real_model
def test_run_after_an_edit_on_the_default_model(capsys, tmp_path, default_model):
    db = str(tmp_path / "h.elderdb")
    code, out = call(capsys, "edit", "--db", db, "--prompt", "The capital of France is", "--target", "Rome",
                     "--subject", "France", "--locality", "The capital of Germany is")
    assert code == 0 and out["seq"] == 1
    code, out = call(capsys, "history", "--db", db, "watch", "add", "The capital of France is", "--expected", "Rome")
    assert out["added"] == 1 and out["counts"]["prompts"] == 2     # the edit's locality prompt is watched too
    code, out = call(capsys, "history", "--db", db, "watch", "run", "--tokens", "6")
    assert code == 0 and out["complete"]
    rows = {r["prompt"]: r for r in out["rows"]}
    assert set(rows["The capital of France is"]) >= {"prompt", "expected", "original", "edited", "fired", "changed"}
    assert rows["The capital of France is"]["changed"] and rows["The capital of France is"]["fired"]
    assert rows["The capital of France is"]["meets_expected"]
    assert rows["The capital of Germany is"]["changed"] is False
    assert rows["The capital of Germany is"]["edited"] == rows["The capital of Germany is"]["original"]
    assert out["counts"]["changed"] == 1 and out["counts"]["probed"] == 2
