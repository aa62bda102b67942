"""The watch-list panel in the real window, on a tiny random model loaded as a model folder
(fast; the mechanics, not the answers): adding, pasting, importing and exporting rows, bad
input that loses nothing, the automatic re-probe after an edit and an undo with its before /
after columns and highlights, cancel, and a screenshot."""

from __future__ import annotations

import re

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog

from app_support import close_window, idle, make_window, save_screenshot, wait_signal, wait_until
from tiny import tiny_loaded, tiny_tokenizer

PROMPTS = ["who wrote hamlet ?", "what colour is the sky ?", "the king was born in"]


@pytest.fixture(scope="module")
def wb(qapp, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("watch")
    folder = tmp / "tiny-model"
    tiny_loaded(seed=3).model.save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    window = make_window(tmp, load=False)
    wait_signal(window.bench.model_loaded, lambda: window.load_model(str(folder)), 120)
    idle(window)
    window.edit_panel.advanced.max_steps.setValue(6)   # mechanics, not quality
    window.tabs.setCurrentIndex(4)
    yield window
    close_window(window)


def rows(wb) -> list[str]:
    return [i.prompt for i in wb.watch_panel.model.items]


def view_changed(wb) -> int:
    return wb.bench.watch.view.report.counts["changed"]


def changed(wb, trigger):
    (view,) = wait_signal(wb.bench.watch.changed, trigger, 120)
    idle(wb)
    return view


def test_add_a_typed_prompt_and_refuse_an_empty_one(wb):
    panel = wb.watch_panel
    assert panel.has_history and rows(wb) == []
    assert "No prompts watched yet" in panel.summary.text()
    panel.prompt.setText("   ")
    panel.add_button.click()
    assert panel.error.isVisible() and "Type a prompt" in panel.error.text()
    assert not wb.bench.busy and rows(wb) == []
    panel.prompt.setText(PROMPTS[0])
    panel.expected.setText("shakespeare")
    view = changed(wb, panel.add_button.click)
    assert not panel.error.isVisible() and panel.prompt.text() == ""
    assert rows(wb) == PROMPTS[:1] and view.items[0].expected == "shakespeare"
    assert "1 prompt added" in panel.summary.text()


def test_paste_many_keeps_the_text_on_a_bad_line(wb):
    panel = wb.watch_panel
    dialog = panel.ask_paste()
    try:
        dialog.text.setPlainText(f"{PROMPTS[1]} -> blue\n\t-> an answer with no prompt\n")
        dialog.accept()
        assert dialog.isVisible() and dialog.result() != QDialog.Accepted
        assert "line 2" in dialog.error.text()
        assert "an answer with no prompt" in dialog.text.toPlainText()
        dialog.text.setPlainText(f"{PROMPTS[1]} -> blue\n\n{PROMPTS[2]}\n{PROMPTS[0]}\n")
        view = changed(wb, dialog.accept)
    finally:
        dialog.close()
    assert rows(wb) == PROMPTS
    assert [i.expected for i in view.items] == ["shakespeare", "blue", ""]
    assert "2 prompts added (1 already watched)" in panel.summary.text()


def test_import_and_export_files(wb, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text('prompt,expected\n"the river of zorbia is",quux\n"unclosed\n')
    messages = []
    wb.bench.message.connect(messages.append)
    try:
        wb.bench.watch.import_file(str(bad))
        wait_until(lambda: messages, 60)
        idle(wb)
        assert messages[0].level == "error" and "malformed CSV" in messages[0].text
        assert rows(wb) == PROMPTS                                  # nothing lost, nothing half-added
        good = tmp_path / "more.csv"
        good.write_text('prompt,expected\n"the river of zorbia is",quux\n')
        changed(wb, lambda: wb.bench.watch.import_file(str(good)))
        assert rows(wb) == PROMPTS + ["the river of zorbia is"]
        out = tmp_path / "out.txt"
        wb.bench.watch.export_file(str(out))
        wait_until(lambda: len(messages) > 1, 60)
        assert messages[1].level == "info" and "4 prompts" in messages[1].text
    finally:
        wb.bench.message.disconnect(messages.append)
    assert out.read_text().splitlines() == [f"{PROMPTS[0]}\tshakespeare", f"{PROMPTS[1]}\tblue", PROMPTS[2],
                                            "the river of zorbia is\tquux"]


def test_remove_selected(wb):
    panel = wb.watch_panel
    panel.table.selectRow(3)
    assert panel.remove_button.isEnabled()
    changed(wb, panel.remove_button.click)
    assert rows(wb) == PROMPTS


def test_an_edit_re_probes_the_list_and_highlights_what_changed(wb):
    panel, model = wb.watch_panel, wb.watch_panel.model
    changed(wb, panel.run_button.click)                       # answers before any edit
    assert all(i.after == i.original and i.fired is False for i in model.items)
    edit = wb.edit_panel
    edit.prompt.set_text("the capital of france is")
    edit.target.set_text("london")
    edit.locality.set_text("the team plays for")
    views = []
    wb.bench.watch.changed.connect(views.append)
    try:
        wait_signal(wb.bench.edit_finished, edit.apply_button.click, 180)
        wait_until(lambda: views and views[-1].action == "edit #1", 180)
        idle(wb)
    finally:
        wb.bench.watch.changed.disconnect(views.append)
    view = views[-1]
    assert rows(wb) == PROMPTS + ["the team plays for"]       # seeded with the edit's locality prompt
    assert all(i.state == view.report.state and i.head == 1 for i in model.items)
    counts = view.report.counts
    assert f"{counts['changed']}</b> changed since the original" in panel.summary.text()
    assert "changed by the last action (edit #1)" in panel.summary.text()
    for row, item in enumerate(model.items):
        after = model.index(row, 5)
        assert (model.data(model.index(row, 6)) == "deferred") == (not item.fired)
        if not item.fired:
            assert item.after == item.original and model.data(after, Qt.BackgroundRole) is None
        if item.moved:
            assert model.data(after, Qt.BackgroundRole).name() == "#fde3a7"
            assert model.data(model.index(row, 7)) == "changed by the last action"
    # the edit's own prompt: watch it, and an undo brings the original answer back
    changed(wb, lambda: wb.bench.watch.add([("the capital of france is", "london")]))
    changed(wb, panel.run_button.click)
    own = model.items[-1]
    assert own.fired and own.changed and own.meets_expected
    wb.tabs.setCurrentIndex(4)
    assert wb.tabs.tabText(4) == f"Watch list ({view_changed(wb)} changed)"
    save_screenshot(wb.watch_panel, "watch_panel_tiny")
    views.clear()
    wb.bench.watch.changed.connect(views.append)
    try:
        wb.history_action("undo", 0)
        wait_until(lambda: views and views[-1].action == "undo", 180)
        idle(wb)
    finally:
        wb.bench.watch.changed.disconnect(views.append)
    own = model.items[-1]
    assert own.before is not None and own.after == own.original and own.moved and not own.fired
    last = len(model.items) - 1
    assert model.data(model.index(last, 5), Qt.BackgroundRole).name() == "#fde3a7"      # changed by the undo
    assert model.data(model.index(last, 5), Qt.FontRole).bold()
    assert model.data(model.index(last, 4), Qt.BackgroundRole).name() == "#ece3f8"      # before: not the original
    assert model.data(model.index(last, 7)) == "changed by the last action"
    assert "1</b> changed by the last action (undo)" in wb.watch_panel.summary.text()
    assert views[-1].report.counts["changed"] == 0 and views[-1].report.counts["fired"] == 0


def test_cancel_a_re_probe_keeps_what_was_probed(wb):
    import time

    controller, editor = wb.bench.watch, wb.bench.session.editor
    before = [(i.after, i.state) for i in wb.watch_panel.model.items]
    generate = editor.generate

    def slow(*args, **kwargs):   # time for the GUI to see the first row and cancel
        time.sleep(0.2)
        return generate(*args, **kwargs)

    editor.generate = slow
    controller.row_probed.connect(controller.cancel)
    try:
        wait_signal(controller.running, controller.run, 60, check=lambda on: not on)
        idle(wb)
    finally:
        controller.row_probed.disconnect(controller.cancel)
        del editor.generate
    view = controller.view
    assert view.report.complete is False and view.note.startswith("stopped after")
    done, total = map(int, re.findall(r"\d+", view.note)[:2])
    assert 1 <= done < total == len(before)
    # same state, same answers: what was probed again agrees, the rest kept its answers
    assert [(i.after, i.state) for i in wb.watch_panel.model.items] == before
    assert not wb.watch_panel.cancel_button.isVisible() and not wb.watch_panel.progress.isVisible()
