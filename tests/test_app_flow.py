"""The workbench end to end on the real default model: load, edit a fact, probe it, a deferred
query keeps the original answer, the history row, rollback / undo / redo, cancel mid-way,
and a screenshot of every panel. The tests share one window and run in file order."""

import pytest

from app_support import (
    ARTIFACTS, StallMeter, apply_edit, idle, probe, save_screenshot, wait_signal, wait_until,
    workbench,
)

pytestmark = pytest.mark.real_model

FACT = ("The capital of France is", "Rome")
SECOND = ("The mother tongue of Danielle Darrieux is", "Italian")
UNRELATED = ("Who wrote the play Hamlet?", "The Eiffel Tower is located in", "The largest planet is",
             "Water boils at", "The author of Pride and Prejudice is")


@pytest.fixture(scope="module")
def wb(qapp, tmp_path_factory):
    yield from workbench(tmp_path_factory, "workbench")


def _edited(window) -> str:
    return window.probe_panel.edited.text.toPlainText()


def _original(window) -> str:
    return window.probe_panel.original.text.toPlainText()


def test_loads_default_model_with_its_history(wb):
    assert wb.bench.has_model
    assert "SmolLM2" in wb.status.model.text() and "cpu" in wb.status.device.text()
    assert wb.windowTitle().startswith("ELDER Workbench — SmolLM2")
    assert not wb.overlay.isVisible()
    assert wb.bench.history.path and wb.bench.history.path.endswith(".elderdb")
    assert wb.history_panel.model.rowCount() == 0
    assert wb.settings.recent_models()[0] == "default"


def test_edit_a_fact_then_probe_shows_the_new_answer(wb):
    steps = []
    wb.bench.edit_step.connect(steps.append)
    with StallMeter() as meter:          # the model works in the worker: the GUI keeps ticking
        outcome = apply_edit(wb, *FACT, locality=["Water boils at"])
    wb.bench.edit_step.disconnect(steps.append)
    # benchmarks/gui_stall.py holds the 100 ms budget; here only a gross regression (model
    # work on the GUI thread takes seconds) fails, so a busy test machine does not.
    assert meter.ticks > 50 and meter.longest_ms < 400, meter.longest_ms
    assert steps and steps[0].step == 1 and wb.edit_panel.plot.steps        # live progress reached the panel
    assert outcome.edit.prompt == FACT[0] and len(outcome.locality) == 1
    assert wb.edit_panel.result.kind == "fired" and "Edit applied" in wb.edit_panel.result.headline.text()
    view = wb.probe_panel.last
    assert view.result.query == FACT[0] and view.result.fired
    assert "Rome" in _edited(wb) and "Paris" in _original(wb)
    assert view.result.edited_target_prob > view.result.original_target_prob
    detail = wb.probe_panel.verdict.detail.text()
    assert wb.probe_panel.verdict.kind == "fired" and ("Hamming" in detail or "similarity" in detail or "subject match" in detail)
    # the history row
    model = wb.history_panel.model
    assert model.rowCount() == 1
    entry = model.entry(0)
    assert (entry.seq, entry.prompt, entry.target, entry.status) == (1, *FACT, "applied")
    assert "Paris" in model.data(model.index(0, 3)) and "Rome" in model.data(model.index(0, 3))
    assert "1 edit" in wb.status.edits.text()


def _set_inference(wb, **values):
    advanced = wb.edit_panel.advanced
    advanced.epsilon.setValue(values.get("epsilon", advanced.epsilon.value()))
    advanced.scope.setValue(values.get("scope_threshold", advanced.scope.value()))
    wait_signal(wb.bench.info_changed, advanced.epsilon.editingFinished.emit, 60)


def test_a_deferred_query_keeps_the_original_answer(wb):
    config = dict(wb.bench.info.config)
    keyed = config.get("routing") == "keyed"
    if not keyed:
        _set_inference(wb, epsilon=1)        # the paper's codes: fire only on an exact match
    try:
        fired = []
        for query in UNRELATED:  # every one of them: none is about the edited fact
            view = probe(wb, query)
            if view.result.fired:
                fired.append(query)
                continue
            assert wb.probe_panel.verdict.kind == "deferred"
            assert "Deferred to the original model" in wb.probe_panel.verdict.headline.text()
            assert view.result.edited_output == view.result.original_output
            assert _edited(wb) == _original(wb)
        assert fired == [], f"unrelated queries fired the edit: {fired}"
    finally:
        if not keyed:
            _set_inference(wb, epsilon=config["epsilon"])
    assert wb.bench.info.config["epsilon"] == config["epsilon"]


def test_the_deferral_setting_reaches_the_engine(wb):
    config = dict(wb.bench.info.config)
    _set_inference(wb, epsilon=3, scope_threshold=0.9)
    try:
        assert wb.bench.info.config["epsilon"] == 3 and wb.bench.info.config["scope_threshold"] == 0.9
    finally:
        _set_inference(wb, epsilon=config["epsilon"], scope_threshold=config["scope_threshold"])
    assert wb.bench.info.config["scope_threshold"] == config["scope_threshold"]


def test_cancel_an_edit_midway_leaves_the_model_as_it_was(wb):
    advanced = wb.edit_panel.advanced
    advanced.max_steps.setValue(400)
    advanced.early_stop.setChecked(False)
    try:
        panel = wb.edit_panel
        panel.prompt.set_text("The Eiffel Tower is located in")
        panel.target.set_text("Berlin")
        panel.locality.set_text("")
        cancelled = []
        wb.bench.edit_cancelled.connect(cancelled.append)
        wait_signal(wb.bench.edit_step, panel.apply_button.click, 120, check=lambda e: e.step >= 3)
        assert panel.cancel_button.isEnabled()
        panel.cancel_button.click()
        wait_until(lambda: cancelled, 60)
        idle(wb)
        wb.bench.edit_cancelled.disconnect(cancelled.append)
        assert 3 <= cancelled[0] < 400
        assert "cancelled" in panel.result.headline.text().lower()
        assert panel.apply_button.isEnabled() and not panel.cancel_button.isEnabled()
    finally:
        advanced.fill_from_profile(advanced.profile.currentText())
    assert wb.history_panel.model.rowCount() == 1          # nothing was recorded
    view = probe(wb, *FACT)                                  # the earlier edit is intact
    assert "Rome" in view.result.edited_output


def test_screenshots_of_every_panel_after_a_real_edit(wb):
    idle(wb)
    wb.tabs.setCurrentIndex(0)
    probe(wb, *FACT, tokens=12)
    save_screenshot(wb, "window")
    save_screenshot(wb.edit_panel, "edit_panel")
    save_screenshot(wb.probe_panel, "probe_panel")
    (exported,) = wait_signal(wb.probe_panel.router.exported,
                              lambda: wb.probe_panel.router.export_png(ARTIFACTS / "router_view_export"), 60)
    assert exported.endswith("router_view_export.png")
    wait_signal(wb.bench.map_ready, lambda: wb.tabs.setCurrentIndex(1), 120)
    idle(wb)
    assert wb.map_panel.plot.points, "the router map shows no points"
    save_screenshot(wb.map_panel, "router_map_panel")
    wb.tabs.setCurrentIndex(3)
    eval_panel = wb.eval_panel
    from app.panels.eval_panel import SAMPLES
    eval_panel.set_data_path(str(SAMPLES / "plain_example.jsonl"))
    eval_panel.edits.setValue(2)
    wb.edit_panel.advanced.max_steps.setValue(4)        # mechanics, not quality: keep it short
    try:
        (run,) = wait_signal(wb.bench.eval_done, eval_panel.run_button.click, 300)
        idle(wb)
    finally:
        wb.edit_panel.advanced.fill_from_profile(wb.edit_panel.advanced.profile.currentText())
    assert run.result.edits == 2 and 0.0 <= run.result.reliability <= 1.0
    assert eval_panel.table.item(0, 1).text().endswith("%")
    assert wb.history_panel.model.rowCount() == 1          # the evaluation ran on a copy
    save_screenshot(eval_panel, "evaluate_panel")
    csv_path = eval_panel.export_csv(ARTIFACTS / "eval.csv")
    assert csv_path.read_text().splitlines()[0].startswith("edits,reliability")
    wb.tabs.setCurrentIndex(0)


def test_rollback_undo_and_redo_through_the_history(wb):
    apply_edit(wb, *SECOND)
    assert wb.history_panel.model.rowCount() == 2
    assert "Italian" in probe(wb, SECOND[0]).result.edited_output
    # roll back to edit 1: edit 2 is undone and its old answer returns
    wb.tabs.setCurrentIndex(2)
    assert wb.history_panel.select_seq(1)
    wait_signal(wb.bench.history_changed, wb.history_panel.rollback_button.click, 180)
    idle(wb)
    statuses = [e.status for e in wb.history_panel.model.entries]
    assert statuses == ["applied", "rolled_back"]
    save_screenshot(wb.history_panel, "history_panel")
    view = probe(wb, SECOND[0])
    assert "Italian" not in view.result.edited_output
    assert view.result.edited_output == view.result.original_output     # the original answer is back
    # undo the remaining edit: Paris returns
    wait_signal(wb.bench.history_changed, wb.actions_.undo.trigger, 180)
    idle(wb)
    assert [e.status for e in wb.history_panel.model.entries] == ["rolled_back", "rolled_back"]
    assert "Paris" in probe(wb, FACT[0]).result.edited_output
    assert "0 edits" in wb.status.edits.text()
    # redo brings both back
    wait_signal(wb.bench.history_changed, wb.actions_.redo.trigger, 300)
    idle(wb)
    assert [e.status for e in wb.history_panel.model.entries] == ["applied", "applied"]
    assert "Rome" in probe(wb, FACT[0]).result.edited_output


def test_history_filter_and_revert(wb):
    panel = wb.history_panel
    panel.filter.setText("darrieux")
    assert panel.proxy.rowCount() == 1
    panel.filter.setText("")
    assert panel.proxy.rowCount() == 2
    assert panel.select_seq(2)
    wait_signal(wb.bench.history_changed, panel.revert_button.click, 180)
    idle(wb)
    assert [e.status for e in panel.model.entries] == ["applied", "reverted"]
    assert "Rome" in probe(wb, FACT[0]).result.edited_output


def test_export_and_import_a_bundle(wb, tmp_path):
    before = [(e.seq, e.prompt, e.status) for e in wb.history_panel.model.entries]
    bundle = tmp_path / "edits.elderbundle"
    (message,) = wait_signal(wb.bench.message, lambda: wb.bench.export_bundle(str(bundle)), 120)
    assert message.level == "info" and bundle.is_file(), (message, sorted(p.name for p in tmp_path.iterdir()))
    database = tmp_path / "imported.elderdb"
    wait_signal(wb.bench.history_changed, lambda: wb.bench.import_bundle(str(bundle), str(database)), 180)
    idle(wb)
    assert wb.bench.history.path == str(database), wb.message_bar.detail.text()
    assert [(e.seq, e.prompt, e.status) for e in wb.history_panel.model.entries] == before
    view = probe(wb, FACT[0])
    assert "Rome" in view.result.edited_output, view.result
