"""What the window remembers between runs (QSettings, INI file here) and its shortcuts;
no model is loaded."""

from app_support import close_window, make_window, save_screenshot


def test_settings_survive_a_restart(qapp, tmp_path):
    first = make_window(tmp_path, load=False)
    first.resize(first.width() - 40, first.height() - 30)
    first.tabs.setCurrentIndex(2)
    first.edit_panel.advanced.max_steps.setValue(17)
    first.probe_panel.tokens.setValue(9)
    first.eval_panel.edits.setValue(7)
    first.settings.add_recent_model("/models/a")
    first.settings.add_recent_model("default")
    first.settings.set_threads(1)
    close_window(first)
    saved = first.settings.geometry("geometry")
    assert saved is not None

    second = make_window(tmp_path, load=False)
    try:
        assert second.restored_geometry        # the saved geometry was applied (the screen may clamp it)
        assert second.tabs.currentIndex() == 2
        assert second.edit_panel.advanced.max_steps.value() == 17
        assert second.probe_panel.tokens.value() == 9
        assert second.eval_panel.edits.value() == 7
        assert second.settings.recent_models() == ["default", "/models/a"]
        recent = [a.text() for a in second.actions_.recent.actions()]
        assert recent[0].startswith("Default model") and "/models/a" in recent
    finally:
        close_window(second)


def test_menus_and_shortcuts(qapp, tmp_path):
    window = make_window(tmp_path, load=False)
    try:
        menus = [a.text().replace("&", "") for a in window.menuBar().actions()]
        assert menus == ["File", "Edit", "View", "Help"]
        a = window.actions_
        shortcuts = {name: getattr(a, name).shortcut().toString() for name in
                     ("open_folder", "open_gguf", "undo", "redo", "apply_edit", "quit", "cancel")}
        assert shortcuts["open_folder"] == "Ctrl+O" and shortcuts["undo"] == "Ctrl+Z"
        assert shortcuts["apply_edit"] == "Ctrl+Return" and shortcuts["cancel"] == "Esc"
        assert all(shortcuts.values())
        assert not a.undo.isEnabled() and not window.edit_panel.apply_button.isEnabled()   # no model yet
        a.tabs[3].trigger()
        assert window.tabs.currentIndex() == 3
        assert "No model" in window.status.model.text() and "Memory" in window.status.memory.text()
        window.overlay.start("Loading the default model (SmolLM2-135M-Instruct)", "Reading tokenizer...")
        save_screenshot(window, "loading_overlay")
        window.overlay.hide()
    finally:
        close_window(window)
