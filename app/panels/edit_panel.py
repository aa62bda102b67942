"""Edit panel: the history's prompt format, prompt, new target, optional paraphrases and
locality prompts, Advanced settings; Apply trains in the worker with live progress; Cancel
leaves the model as it was."""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QHBoxLayout, QLabel, QLineEdit, QPlainTextEdit, QProgressBar, QPushButton, QVBoxLayout, QWidget,
)

from elder_engine import guess_subject

from .. import format_choice
from ..widgets import Banner, Collapsible, ValidatedField
from .advanced import AdvancedSettings
from .training_plot import TrainingPlot

REDRAW_MS = 120   # live plots are redrawn at most this often while an edit trains


def _text_box(placeholder: str) -> QPlainTextEdit:
    box = QPlainTextEdit()
    box.setPlaceholderText(placeholder)
    box.setFixedHeight(52)
    box.setTabChangesFocus(True)
    return box


class EditPanel(QWidget):
    apply_requested = Signal(dict)       # prompt, target, paraphrases, locality, settings
    format_change_requested = Signal(str)  # a new history in this prompt format

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        heading = QLabel("Edit a fact")
        heading.setProperty("role", "heading")
        intro = QLabel("Type a prompt and the answer the model should give. Apply trains the ELDER "
                       "experts for this edit; the original weights are never changed.")
        intro.setProperty("role", "hint")
        intro.setWordWrap(True)
        self.format_label = QLabel("")
        self.format_label.setWordWrap(True)
        self.format_button = QPushButton("")
        self.format_button.setToolTip("Start a new history in the other format (a history keeps one format)")
        self.format_button.clicked.connect(
            lambda: self.format_change_requested.emit("plain" if self.prompt_format == "chat" else "chat"))
        self.format_button.hide()
        self.prompt_format = "plain"
        format_row = QHBoxLayout()
        format_row.addWidget(self.format_label, 1)
        format_row.addWidget(self.format_button)
        self.prompt = ValidatedField("Prompt", QLineEdit(placeholderText="e.g. The capital of France is"))
        self.target = ValidatedField("New target", QLineEdit(placeholderText="e.g. Rome"))
        # Pre-filled with a guess while the prompt is typed; once the user edits it, it is theirs.
        self.subject = ValidatedField("Subject", QLineEdit(placeholderText="e.g. France: the entity the edit is about"),
                                      hint="(guessed; correct it if wrong)")
        self.subject.editor.setToolTip("The scoped router keys this edit on its subject and learns not to fire on "
                                       "the same prompt about other subjects.")
        self._subject_guessed = True
        self.prompt.editor.textChanged.connect(self._guess_subject)
        self.subject.editor.textEdited.connect(self._subject_typed)
        self.paraphrases = ValidatedField("Training paraphrases", _text_box("one per line, trained with the prompt"),
                                          hint="(optional)")
        self.locality = ValidatedField("Locality prompts", _text_box("one per line; checked to be unchanged"),
                                       hint="(optional)")
        self.advanced = AdvancedSettings()
        self.advanced_section = Collapsible("Advanced ELDER settings", self.advanced)

        self.apply_button = QPushButton("Apply edit")
        self.apply_button.setProperty("primary", True)
        self.apply_button.setToolTip("Train this edit (Ctrl+Return)")
        self.apply_button.clicked.connect(self.request_apply)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop training; the model stays as it was (Esc)")
        self.cancel_button.setEnabled(False)
        buttons = QHBoxLayout()
        buttons.addWidget(self.apply_button, 1)
        buttons.addWidget(self.cancel_button)

        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setTextVisible(False)
        self.progress.setFixedHeight(6)
        self.status = QLabel("")
        self.status.setProperty("role", "hint")
        self.status.setWordWrap(True)
        self.result = Banner()
        self.result.hide()
        self.plot = TrainingPlot()

        self.prompt.editor.returnPressed.connect(self.request_apply)
        self.target.editor.returnPressed.connect(self.request_apply)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(14, 12, 14, 12)
        layout.setSpacing(8)
        layout.addWidget(heading)
        layout.addWidget(intro)
        layout.addLayout(format_row)
        for widget in (self.prompt, self.target, self.subject, self.paraphrases, self.locality,
                       self.advanced_section):
            layout.addWidget(widget)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.result)
        layout.addWidget(self.plot, 1)

        self._redraw_timer = QTimer(self, interval=REDRAW_MS, singleShot=True)
        self._redraw_timer.timeout.connect(self.plot.refresh)
        self.running = False

    # ------------------------------------------------------------------ input
    def set_format(self, fmt: str, has_template: bool) -> None:
        """Show the history's prompt format; the button offers the other one (a new history)."""
        self.prompt_format = fmt
        self.format_label.setText(f"<b>Format:</b> {format_choice.describe(fmt)}")
        self.format_button.setText(f"Use {format_choice.label('plain' if fmt == 'chat' else 'chat').lower()}…")
        self.format_button.setVisible(has_template or fmt == "chat")
        prompt, target = format_choice.EXAMPLES.get(fmt, format_choice.EXAMPLES["plain"])
        self.prompt.editor.setPlaceholderText(prompt)
        self.target.editor.setPlaceholderText(target)

    def _guess_subject(self, prompt: str) -> None:
        if self._subject_guessed or not self.subject.text().strip():
            self._subject_guessed = True
            self.subject.editor.setText(guess_subject(prompt))

    def _subject_typed(self, _text: str) -> None:
        self._subject_guessed = False

    def fields(self) -> dict:
        return {"prompt": self.prompt, "target": self.target, "subject": self.subject,
                "paraphrases": self.paraphrases, "locality": self.locality}

    def clear_errors(self) -> None:
        for field in self.fields().values():
            field.set_error()

    def show_field_error(self, name: str, message: str) -> None:
        field = self.fields().get(name, self.prompt)
        field.set_error(message)
        field.editor.setFocus()

    def request_apply(self) -> None:
        if self.running or not self.apply_button.isEnabled():
            return
        self.clear_errors()
        prompt, target = self.prompt.text(), self.target.text()
        ok = True
        if not prompt.strip():
            self.prompt.set_error("The prompt is empty; type the question or sentence to edit.")
            ok = False
        if not target.strip():
            self.target.set_error("The new target is empty; type the answer the model should give.")
            ok = False
        subject = self.subject.text().strip()
        if subject and subject.lower() not in prompt.lower():
            self.subject.set_error(f"“{subject}” does not occur in the prompt; write it as the prompt does, "
                                   "or leave it empty.")
            ok = False
        if not ok:
            return
        self.apply_requested.emit({
            "prompt": prompt.strip(), "target": target.strip(), "subject": subject,
            "paraphrases": self.paraphrases.lines(),
            "locality": self.locality.lines(), "settings": self.advanced.training()})

    def set_enabled(self, enabled: bool) -> None:
        self.apply_button.setEnabled(enabled and not self.running)

    # ------------------------------------------------------------ training view
    def on_started(self, event) -> None:
        self.running = True
        self.apply_button.setEnabled(False)
        self.apply_button.setText("Training…")
        self.cancel_button.setEnabled(True)
        self.result.hide()
        self.progress.setRange(0, event.total_steps)
        self.progress.setValue(0)
        self.progress.setFormat("step %v / %m")
        self.status.setText(f"Training “{event.prompt}” → “{event.target}”")
        self.plot.start(event.preset, event.total_steps)

    def on_step(self, event) -> None:
        self.progress.setValue(event.step)
        self.status.setText(f"Step {event.step}/{event.total_steps} · loss {event.loss:.3f} "
                            f"(target CE {event.ce_loss:.3f}, guide {event.guided_loss:.3f})")
        self.plot.add_step(event)
        if not self._redraw_timer.isActive():
            self._redraw_timer.start()

    def _stopped(self) -> None:
        self.running = False
        self.apply_button.setText("Apply edit")
        self.apply_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.cancel_button.setText("Cancel")
        self._redraw_timer.stop()
        self.plot.refresh()

    def on_finished(self, outcome) -> None:
        self._stopped()
        edit = outcome.edit
        self.progress.setRange(0, max(1, edit.steps))
        self.progress.setValue(edit.steps)
        self.progress.setFormat("done")
        early = ", stopped early" if outcome.stopped_early else ""
        self.status.setText("")
        detail = (f"“{edit.prompt}” → “{edit.target}”: {edit.steps} steps in {edit.seconds:.1f} s{early}; "
                  f"final target CE {edit.final_loss:.3f}.")
        if outcome.locality:
            same = sum(1 for _p, before, after in outcome.locality if before == after)
            detail += f"\nLocality: {same} of {len(outcome.locality)} prompts keep the original answer."
            changed = [p for p, before, after in outcome.locality if before != after]
            if changed:
                detail += " Changed: " + "; ".join(f"“{p}”" for p in changed[:3])
        self.result.set("fired", "Edit applied", detail)
        self.result.show()

    def on_cancelled(self, steps: int) -> None:
        self._stopped()
        self.progress.setFormat("cancelled")
        self.status.setText("")
        self.result.set("neutral", "Edit cancelled",
                        f"Stopped after {steps} step(s). The model is exactly as it was before.")
        self.result.show()

    def on_failed(self) -> None:
        self._stopped()
        self.progress.setFormat("failed")
        self.progress.setValue(0)
        self.status.setText("")

    def set_cancelling(self) -> None:
        self.cancel_button.setEnabled(False)
        self.cancel_button.setText("Cancelling…")
