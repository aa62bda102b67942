"""The menu bar and its actions, with keyboard shortcuts."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu


@dataclass
class Actions:
    open_folder: QAction
    open_gguf: QAction
    open_default: QAction
    recent: QMenu
    open_history: QAction
    new_history: QAction
    export_bundle: QAction
    import_bundle: QAction
    quit: QAction
    undo: QAction
    redo: QAction
    apply_edit: QAction
    probe: QAction
    cancel: QAction
    about: QAction
    tabs: list


def _action(window: QMainWindow, text: str, slot, shortcut=None, tip: str = "") -> QAction:
    action = QAction(text, window)
    if shortcut is not None:
        action.setShortcut(QKeySequence(shortcut))
    if tip:
        action.setStatusTip(tip)
        action.setToolTip(tip)
    action.triggered.connect(slot)
    window.addAction(action)   # shortcuts work wherever the focus is
    return action


def build_menus(w) -> Actions:
    """`w` is the MainWindow; its slots are connected here."""
    bar = w.menuBar()
    file = bar.addMenu("&File")
    open_folder = _action(w, "Open model &folder…", w.ask_open_folder, "Ctrl+O",
                          "Load a Hugging Face model folder (config.json + weights)")
    open_gguf = _action(w, "Open &GGUF file…", w.ask_open_gguf, "Ctrl+Shift+O", "Load a .gguf model file")
    open_default = _action(w, "Open the &default model", lambda: w.load_model("default"), None,
                           "SmolLM2-135M-Instruct, embedded")
    recent = QMenu("&Recent models", w)
    for action in (open_folder, open_gguf, open_default):
        file.addAction(action)
    file.addMenu(recent)
    file.addSeparator()
    open_history = _action(w, "Open &history…", w.ask_open_history, "Ctrl+H", "Open an edit-history database")
    new_history = _action(w, "&New history…", w.ask_new_history, "Ctrl+Shift+N", "Start an empty edit history")
    file.addAction(open_history)
    file.addAction(new_history)
    file.addSeparator()
    export_bundle = _action(w, "&Export bundle…", w.ask_export_bundle, "Ctrl+Shift+E",
                            "Save the history and its edits as one file to share")
    import_bundle = _action(w, "&Import bundle…", w.ask_import_bundle, "Ctrl+Shift+I",
                            "Open a bundle as a new history on this model")
    file.addAction(export_bundle)
    file.addAction(import_bundle)
    file.addSeparator()
    quit_action = _action(w, "&Quit", w.close, "Ctrl+Q")
    file.addAction(quit_action)

    edit = bar.addMenu("&Edit")
    undo = _action(w, "&Undo last edit", lambda: w.history_action("undo", 0), "Ctrl+Z")
    redo = _action(w, "&Redo", lambda: w.history_action("redo", 0), "Ctrl+Shift+Z")
    redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
    apply_edit = _action(w, "&Apply edit", w.edit_panel.request_apply, "Ctrl+Return", "Train the edit in the form")
    probe = _action(w, "&Probe", w.focus_probe, "Ctrl+P", "Go to the probe query")
    cancel = _action(w, "&Cancel running job", w.cancel_job, "Esc")
    for action in (undo, redo, None, apply_edit, probe, cancel):
        edit.addSeparator() if action is None else edit.addAction(action)

    view = bar.addMenu("&View")
    tabs = []
    for index, name in enumerate(("Probe", "Router map", "History", "Evaluate")):
        action = _action(w, name, lambda _checked=False, i=index: w.tabs.setCurrentIndex(i), f"Ctrl+{index + 1}")
        view.addAction(action)
        tabs.append(action)

    help_menu = bar.addMenu("&Help")
    about = _action(w, "&About ELDER Workbench", w.show_about, "F1")
    help_menu.addAction(about)
    return Actions(open_folder, open_gguf, open_default, recent, open_history, new_history, export_bundle,
                   import_bundle, quit_action, undo, redo, apply_edit, probe, cancel, about, tabs)
