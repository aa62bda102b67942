"""Bad input through the desktop app, table-driven (one window on the real default model):
each case gives a field error or a message that says what happened, never a traceback;
every existing file is byte-identical afterwards (checked by hash); the window stays usable.
Nothing here trains: the bad edits are refused before training, the valid odd texts are probed."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from app_support import idle, probe, wait_signal, workbench

pytestmark = pytest.mark.real_model

MIXED = "La capitale de la France — столица Франции — 法国的首都 is"


@pytest.fixture(scope="module")
def wb(qapp, tmp_path_factory):
    yield from workbench(tmp_path_factory, "workbench-bad-inputs")


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    d = tmp_path_factory.mktemp("app_bad_files")
    (d / "nonutf8.json").write_bytes(b'[{"prompt": "caf\xe9", "target": "x"}]')
    (d / "wrongtypes.json").write_text(json.dumps([{"prompt": 1, "target": ["x"]}, {"prompt": None}]))
    (d / "missing_columns.csv").write_text("prompt,answer\nthe sky is,blue\n")
    (d / "no_config").mkdir()
    (d / "no_config" / "tokenizer.json").write_text("{}")
    from test_loading import save_tiny, truncate, write_tiny_gguf
    truncate(write_tiny_gguf(d / "half.gguf"))
    save_tiny(d / "truncated_model")
    truncate(d / "truncated_model" / "model.safetensors")
    (d / "notsqlite.elderdb").write_text("my notes\n" * 100)
    from history_helpers import edit, open_tiny, tiny_editor
    with open_tiny(d / "tiny.elderdb", tiny_editor()) as history:  # another model's history and bundle
        edit(history, 0)
        history.export_bundle(d / "tiny.elderbundle")
    shutil.copy(d / "tiny.elderdb", d / "newer.elderdb")
    with closing(sqlite3.connect(d / "newer.elderdb")) as db, db:
        db.execute("UPDATE info SET value = 99 WHERE key = 'schema_version'")
    data = (d / "tiny.elderbundle").read_bytes()
    (d / "truncated.elderbundle").write_bytes(data[: len(data) // 2])
    return d


def hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _message(wb) -> str:
    bar = wb.message_bar
    assert bar.isVisible(), "no message shown"
    return f"{bar.headline.text()} | {bar.detail.text()}"


# ---------------------------------------------------------------------- the edit form
EDIT_CASES = [  # (id, prompt, target, field with the error, its words)
    ("empty-prompt", "", "Rome", "prompt", "prompt is empty"),
    ("whitespace-prompt", " \t ", "Rome", "prompt", "prompt is empty"),
    ("empty-target", "The capital of France is", "", "target", "target is empty"),
    ("whitespace-target", "The capital of France is", "\t  ", "target", "target is empty"),
    ("65-token-target", "The capital of France is", " ".join(["word"] * 66), "target", "tokens long"),
    ("100k-prompt", "The capital of France is " * 4000, "Rome", "prompt", "context"),
]


@pytest.mark.parametrize("prompt, target, field, words", [c[1:] for c in EDIT_CASES], ids=[c[0] for c in EDIT_CASES])
def test_bad_edit_fields(wb, prompt, target, field, words):
    panel = wb.edit_panel
    rows = wb.history_panel.model.rowCount()
    panel.clear_errors()
    panel.prompt.set_text(prompt)
    panel.target.set_text(target)
    idle(wb)
    if prompt.strip() and target.strip():  # the engine's tokenizer decides: a round trip to the worker
        wait_signal(wb.bench.field_error, panel.apply_button.click, 60)
    else:
        panel.apply_button.click()
    idle(wb)
    error = getattr(panel, field).error
    assert error.isVisible() and words in error.text(), error.text()
    assert "Traceback" not in error.text()
    assert wb.history_panel.model.rowCount() == rows  # nothing was trained or stored
    panel.prompt.set_text("")
    panel.target.set_text("")
    panel.clear_errors()


# --------------------------------------------------------------------- the probe form
def test_empty_and_whitespace_queries_are_flagged(wb):
    for query in ("", "   \n"):
        wb.probe_panel.set_query(query)
        wb.probe_panel.button.click()
        assert not wb.bench.busy and wb.probe_panel.query.error.isVisible()


@pytest.mark.parametrize("query", ["The capital\x00 of France is", MIXED], ids=["nul-bytes", "mixed-scripts"])
def test_odd_but_valid_queries_are_probed(wb, query):
    view = probe(wb, query, tokens=2)
    assert view.result.query == query and view.result.original_output


def test_100k_character_query_is_a_field_error(wb):
    wb.probe_panel.set_query("The capital of France is " * 4000)
    idle(wb)
    wait_signal(wb.bench.field_error, wb.probe_panel.button.click, 60)
    idle(wb)
    error = wb.probe_panel.query.error
    assert error.isVisible() and "context" in error.text()
    wb.probe_panel.set_query("")
    wb.probe_panel.clear_errors()


# ------------------------------------------------------------------------------ files
def _load(name):
    return lambda wb, d: wait_signal(wb.bench.model_load_failed, lambda: wb.load_model(str(d / name)), 120)


def _history(name):
    return lambda wb, d: wait_signal(wb.bench.activity_ended, lambda: wb.bench.open_history(str(d / name)), 60)


def _eval(name):
    def run(wb, d):
        wait_signal(wb.bench.eval_ended, lambda: wb.eval_panel.set_data_path(str(d / name)) or
                    wb.eval_panel.run_button.click(), 60)
    return run


def _import(name):
    return lambda wb, d: wait_signal(wb.bench.activity_ended,
                                     lambda: wb.bench.import_bundle(str(d / name), str(d / "imported.elderdb")), 60)


FILE_CASES = [  # (id, action, words in the message)
    ("model-folder-without-config", _load("no_config"), "config.json"),
    ("model-gguf-cut-in-half", _load("half.gguf"), "truncated or corrupt"),
    ("model-truncated-safetensors", _load("truncated_model"), "truncated or corrupt"),
    ("history-not-sqlite", _history("notsqlite.elderdb"), "not an ELDER history"),
    ("history-newer-schema", _history("newer.elderdb"), "newer"),
    ("history-of-another-model", _history("tiny.elderdb"), "belongs to the model"),
    ("data-not-utf8", _eval("nonutf8.json"), "not UTF-8"),
    ("data-json-wrong-types", _eval("wrongtypes.json"), "no valid"),
    ("data-csv-missing-columns", _eval("missing_columns.csv"), "lacks the column"),
    ("bundle-truncated", _import("truncated.elderbundle"), "truncated"),
    ("bundle-for-another-model", _import("tiny.elderbundle"), "made with the model"),
]


@pytest.mark.parametrize("action, words", [c[1:] for c in FILE_CASES], ids=[c[0] for c in FILE_CASES])
def test_bad_files(wb, bad, action, words):
    before, history = hashes(bad), wb.bench.history.path
    wb.message_bar.hide()
    action(wb, bad)
    idle(wb)
    text = _message(wb)
    assert words in text and "Traceback" not in text, text
    assert hashes(bad) == before  # nothing changed, nothing created
    assert wb.bench.has_model and "SmolLM2" in wb.status.model.text()  # the model in use stays
    assert wb.bench.history.path == history  # and so does its history


def test_still_usable_after_every_bad_input(wb):
    idle(wb)
    assert wb.bench.has_model and wb.probe_panel.button.isEnabled() and wb.edit_panel.apply_button.isEnabled()
    assert probe(wb, "The capital of France is", tokens=2).result.original_output.startswith(" Paris")
