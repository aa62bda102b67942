"""The main window's file dialogs: open a model folder, a GGUF file or a history, start a new
history, export and import bundles. Each asks for a path, then hands it to the controller."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog

from . import format_choice

BUNDLE_FILTER = "ELDER bundles (*.elderbundle);;All files (*)"
HISTORY_FILTER = "Edit histories (*.elderdb *.sqlite *.db);;All files (*)"


class FileDialogs:
    """Mixed into `MainWindow` (a QWidget with `bench` and `load_model`)."""

    def ask_open_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open a model folder (config.json + weights)")
        if path:
            self.load_model(path)

    def ask_open_gguf(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a GGUF model", "", "GGUF models (*.gguf);;All files (*)")
        if path:
            self.load_model(path)

    def ask_open_history(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open an edit history", "", HISTORY_FILTER)
        if path:
            self.bench.open_history(path)

    def ask_new_history(self, prompt_format=None) -> None:
        """`prompt_format`: given by the edit form's format button (a menu's `checked` is not one)."""
        format_choice.new_history(self, HISTORY_FILTER, prompt_format if isinstance(prompt_format, str) else None)

    def ask_export_bundle(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export bundle", "edits.elderbundle", BUNDLE_FILTER)
        if path:
            self.bench.export_bundle(path)

    def ask_import_bundle(self) -> None:
        bundle, _ = QFileDialog.getOpenFileName(self, "Import bundle", "", BUNDLE_FILTER)
        if not bundle:
            return
        db, _ = QFileDialog.getSaveFileName(self, "Save the imported history as", Path(bundle).stem + ".elderdb",
                                            HISTORY_FILTER)
        if db:
            self.bench.import_bundle(bundle, db)
