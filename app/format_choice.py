"""The prompt format of a history, as the app names it and asks for it.

A history keeps one format for life (its edits were trained and keyed on those tokens), so the
choice is made when a history is created: chat by default for a model with a chat template,
since an instruct model answers questions only inside it.
"""

from __future__ import annotations

from typing import Optional

from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

LABELS = {"chat": "Chat template", "plain": "Plain text"}
EXPLAINED = {"chat": "the prompt is the user's turn, the target the assistant's reply",
             "plain": "the target continues the prompt"}
EXAMPLES = {"chat": ("e.g. What is the capital of France?", "e.g. Rome"),
            "plain": ("e.g. The capital of France is", "e.g. Rome")}


def label(fmt: str) -> str:
    return LABELS.get(fmt, fmt)


def describe(fmt: str) -> str:
    return f"{label(fmt)}: {EXPLAINED.get(fmt, '')}"


def ask_prompt_format(parent: QWidget, has_template: bool, current: str) -> Optional[str]:
    """The format for a new history; None when the user cancels. A model without a chat
    template has only plain text, so nothing is asked."""
    if not has_template:
        return "plain"
    box, chat, plain = format_box(parent, current)
    box.exec()
    clicked = box.clickedButton()
    return "chat" if clicked is chat else "plain" if clicked is plain else None


def format_box(parent: QWidget, current: str):
    """The question, not yet shown: (box, chat button, plain button)."""
    box = QMessageBox(parent)
    box.setWindowTitle("New history: prompt format")
    box.setText("How should this history's edits, probes and evaluations reach the model?")
    box.setInformativeText(f"{describe('chat')} (what an instruct model expects).\n{describe('plain')}.\n\n"
                           f"The format is fixed for the history's life; the current one is {label(current).lower()}.")
    chat = box.addButton(f"{LABELS['chat']} (recommended)", QMessageBox.AcceptRole)
    plain = box.addButton(LABELS["plain"], QMessageBox.AcceptRole)
    box.addButton(QMessageBox.Cancel)
    box.setDefaultButton(chat)
    return box, chat, plain


def new_history(window, file_filter: str, prompt_format: Optional[str] = None) -> None:
    """File → New history, or the edit form's format button (which names the format): a file
    name, then the format, then the controller creates it."""
    info = window.bench.info
    path, _ = QFileDialog.getSaveFileName(window, "New edit history", "edits.elderdb", file_filter)
    if not path or info is None:
        return
    fmt = prompt_format or ask_prompt_format(window, info.chat_template, window.bench.history.prompt_format)
    if fmt:
        window.bench.new_history(path, fmt)
