"""The chat format and the next-token alternatives in the app: the alternatives view itself,
then on the real default model: a new history is in chat by default, a question gets an answer,
an edit in chat sticks, a deferred query shows the original alternatives, and a new history in
plain text from the edit form's format button."""

import pytest

from app_support import apply_edit, idle, probe, save_screenshot, wait_signal, wait_until, workbench
from elder_engine import Alternative

QUESTION = "What is the capital city of France?"


def test_alternatives_view_shows_tokens_bars_and_percentages(qtbot):
    from app.panels.alternatives import AlternativesView, token_text

    view = AlternativesView("#2563a8")
    qtbot.addWidget(view)
    assert view.rows() == [] and view.caption.text() == "Next token: —"
    alts = (Alternative(" Paris", 7, 0.625), Alternative("\n", 3, 0.125), Alternative("Lyon", 9, 0.0004))
    view.show_alternatives(alts)
    assert view.rows() == [("“␣Paris”", "62.5%"), ("“⏎”", "12.5%"), ("“Lyon”", "<0.1%")]
    assert [b.value() for b in view.bars[:3]] == [625, 125, 0]
    assert view.caption.text() == "Next token: top 3"
    assert token_text("") == "“”"


@pytest.fixture(scope="module")
def wb(qapp, tmp_path_factory):
    yield from workbench(tmp_path_factory, "chat", prompt_format=None)   # the app's own default


@pytest.mark.real_model
def test_a_new_history_on_an_instruct_model_is_in_chat_and_a_question_gets_an_answer(wb):
    assert wb.bench.info.chat_template and wb.bench.history.prompt_format == "chat"
    assert wb.status.format.text() == "Format: chat template"
    assert "Chat template" in wb.edit_panel.format_label.text()
    assert wb.edit_panel.format_button.isVisible() and "plain" in wb.edit_panel.format_button.text()
    assert "?" in wb.edit_panel.prompt.editor.placeholderText()
    view = probe(wb, QUESTION, tokens=8)
    assert view.result.prompt_format == "chat"
    assert view.result.original_output.strip()      # as plain text the model answers nothing
    rows = wb.probe_panel.original.alternatives.rows()
    assert len(rows) == 5 and rows[0][0].strip("“”").replace("␣", " ").strip() == \
        view.result.original_alternatives[0].token.strip()


@pytest.mark.real_model
def test_an_edit_in_chat_sticks_and_a_deferred_query_shows_the_original_alternatives(wb):
    outcome = apply_edit(wb, QUESTION, "Rome", locality=["Who wrote the play Hamlet?"])
    assert outcome.edit.prompt == QUESTION
    fired = wb.probe_panel.last.result
    assert fired.fired and fired.edited_output.strip().startswith("Rome"), fired.edited_output
    assert wb.probe_panel.edited.alternatives.rows()[0][0] == "“Rome”"
    save_screenshot(wb, "chat_probe_fired")
    view = probe(wb, "Who wrote the play Hamlet?", tokens=8)
    r = view.result
    assert not r.fired and r.edited_output == r.original_output and r.original_output.strip()
    assert r.edited_alternatives == r.original_alternatives
    assert wb.probe_panel.edited.alternatives.rows() == wb.probe_panel.original.alternatives.rows()


@pytest.mark.real_model
def test_the_format_button_starts_a_new_history_in_plain_text(wb, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    path = str(tmp_path / "plain.elderdb")
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (path, ""))
    idle(wb)
    wait_signal(wb.bench.history_changed, wb.edit_panel.format_button.click, 120)
    idle(wb)
    assert wb.bench.history.path == path and wb.bench.history.prompt_format == "plain"
    assert wb.bench.history.entries == ()          # a fresh model: the chat edits do not carry over
    assert wb.status.format.text() == "Format: plain text"
    assert "Plain text" in wb.edit_panel.format_label.text()
    view = probe(wb, "The capital of France is", tokens=4)
    assert view.result.prompt_format == "plain" and "Paris" in view.result.original_output
    wait_until(lambda: not wb.bench.busy)
