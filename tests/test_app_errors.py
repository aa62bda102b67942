"""Error paths: every failure is a message that says what happened and what to do, never a
traceback, and the window stays usable afterwards (one window on the real default model)."""

import sqlite3
import sys

import pytest

from app_support import idle, probe, wait_signal, workbench

pytestmark = pytest.mark.real_model


@pytest.fixture(scope="module")
def wb(qapp, tmp_path_factory):
    yield from workbench(tmp_path_factory, "workbench-errors")


def _message(wb):
    bar = wb.message_bar
    assert bar.isVisible(), "no message shown"
    return bar.headline.text(), bar.detail.text()


def _still_usable(wb):
    idle(wb)
    assert wb.bench.has_model and wb.probe_panel.button.isEnabled() and wb.edit_panel.apply_button.isEnabled()
    view = probe(wb, "The capital of France is", tokens=2)
    assert view.result.original_output


def test_bad_model_folder(wb, tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    wait_signal(wb.bench.model_load_failed, lambda: wb.load_model(str(tmp_path)), 60)
    title, text = _message(wb)
    assert title == "The model could not be loaded" and "config.json" in text
    assert "Traceback" not in text and not wb.overlay.isVisible()
    assert "SmolLM2" in wb.status.model.text()          # the previous model is still there
    _still_usable(wb)


def test_corrupt_gguf_file(wb, tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"this is not a gguf file at all")
    wait_signal(wb.bench.model_load_failed, lambda: wb.load_model(str(bad)), 60)
    title, text = _message(wb)
    assert title == "The model could not be loaded" and "GGUF" in text
    _still_usable(wb)


def test_empty_fields_are_flagged_without_running_anything(wb):
    panel = wb.edit_panel
    panel.prompt.set_text("   ")
    panel.target.set_text("")
    panel.apply_button.click()
    assert not wb.bench.busy
    assert panel.prompt.error.isVisible() and "prompt is empty" in panel.prompt.error.text()
    assert panel.target.error.isVisible() and "target is empty" in panel.target.error.text()
    wb.probe_panel.set_query("")
    wb.probe_panel.button.click()
    assert not wb.bench.busy and wb.probe_panel.query.error.isVisible()


def test_target_too_long_and_prompt_over_context(wb):
    panel = wb.edit_panel
    panel.prompt.set_text("The capital of France is")
    panel.target.set_text(" ".join(["word"] * 120))
    wait_signal(wb.bench.field_error, panel.apply_button.click, 60)
    idle(wb)
    assert panel.target.error.isVisible() and "tokens long" in panel.target.error.text()
    assert not panel.prompt.error.isVisible()
    context = wb.bench.info.max_context
    panel.prompt.set_text("word " * (context + 10))
    panel.target.set_text("Rome")
    wait_signal(wb.bench.field_error, panel.apply_button.click, 60)
    idle(wb)
    assert panel.prompt.error.isVisible() and "context" in panel.prompt.error.text()
    assert wb.history_panel.model.rowCount() == 0
    panel.prompt.set_text("")
    panel.clear_errors()


def test_a_failing_edit_is_a_message_and_leaves_the_model_usable(wb, monkeypatch):
    history = wb.bench.session.history

    def broken_edit(request, cancel=None, locality_prompts=()):
        yield from ()
        raise RuntimeError("simulated failure inside the engine")

    monkeypatch.setattr(history, "edit", broken_edit)
    panel = wb.edit_panel
    panel.prompt.set_text("The capital of France is")
    panel.target.set_text("Rome")
    wait_signal(wb.bench.edit_failed, panel.apply_button.click, 60)
    idle(wb)
    title, text = _message(wb)
    assert title == "Something went wrong" and "simulated failure" in text and "keep working" in text
    monkeypatch.undo()
    assert wb.history_panel.model.rowCount() == 0
    _still_usable(wb)


def test_locked_history_database(wb):
    path = wb.bench.history.path
    other = sqlite3.connect(path, timeout=0.1)
    other.execute("BEGIN EXCLUSIVE")
    try:
        panel = wb.edit_panel
        panel.prompt.set_text("The capital of Spain is")
        panel.target.set_text("Lisbon")
        wait_signal(wb.bench.edit_failed, panel.apply_button.click, 120)
        idle(wb)
        title, text = _message(wb)
        assert "locked" in text and "try again" in text.lower()
    finally:
        other.rollback()
        other.close()
    assert wb.history_panel.model.rowCount() == 0
    _still_usable(wb)


def test_not_a_history_file_and_unreadable_data_file(wb, tmp_path):
    junk = tmp_path / "junk.elderdb"
    junk.write_bytes(b"definitely not sqlite" * 10)
    wait_signal(wb.bench.activity_ended, lambda: wb.bench.open_history(str(junk)), 60)
    title, text = _message(wb)
    assert title == "The edit history could not be used" and "not an ELDER history" in text
    assert wb.bench.history.path != str(junk)
    bad = tmp_path / "edits.json"
    bad.write_text("{ this is not json")
    wait_signal(wb.bench.eval_ended, lambda: wb.eval_panel.set_data_path(str(bad)) or
                wb.eval_panel.run_button.click(), 60)
    title, text = _message(wb)
    assert title == "The data file could not be read" and "not valid JSON" in text
    assert not wb.eval_panel.running and wb.eval_panel.run_button.isEnabled()
    _still_usable(wb)


@pytest.mark.qt_no_exception_capture  # pytest-qt would catch it first: the app's own hook must
def test_an_unexpected_exception_in_the_gui_becomes_a_message(wb, monkeypatch):
    from app.main import _install_excepthook
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)   # restored after the test
    _install_excepthook([wb])
    wb.message_bar.hide()

    def broken_probe(*_args):
        raise KeyError("unexpected")
    monkeypatch.setattr(wb.bench, "probe", broken_probe)
    wb.probe_panel.set_query("The capital of France is")
    # a real click: the button's slot emits probe_requested, whose slot (the window's) raises;
    # Qt hands the exception to sys.excepthook, as it would for any slot in the app
    wb.probe_panel.button.click()
    title, text = _message(wb)
    assert title == "Something went wrong" and "KeyError" in text and "Traceback" not in text
    monkeypatch.undo()
    _still_usable(wb)  # the failed slot left nothing half-done (the probe button works again)
