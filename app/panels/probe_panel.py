"""Probe panel: any query; the original and the edited model side by side, the target's
probability and the likeliest first answer tokens under both, a verdict (fired / deferred,
and why) and the router view."""

from __future__ import annotations

import html
from typing import Optional

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QGridLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit, QPushButton, QSpinBox, QTextEdit, QVBoxLayout, QWidget,
)

from .. import style
from ..widgets import Banner, ValidatedField
from .alternatives import AlternativesView
from .router_view import RouterView


def _prob(p: Optional[float]) -> str:
    if p is None:
        return "—"
    return f"{p:.3f}" if p >= 1e-3 else f"{p:.1e}"


class OutputBox(QGroupBox):
    def __init__(self, title: str, accent: str, parent=None) -> None:
        super().__init__(title, parent)
        self.text = QTextEdit(readOnly=True)
        self.text.setMinimumHeight(70)
        self.text.setMaximumHeight(110)
        self.prob = QLabel("P(target) —")
        self.prob.setProperty("role", "hint")
        self.accent = accent
        self.alternatives = AlternativesView(accent)
        layout = QVBoxLayout(self)
        layout.setSpacing(4)
        layout.addWidget(self.text)
        layout.addWidget(self.prob)
        layout.addWidget(self.alternatives)

    def show_output(self, query: str, output: str, prob: Optional[float], target: Optional[str],
                    alternatives=(), chat: bool = False) -> None:
        self.alternatives.show_alternatives(alternatives)
        # in chat format the answer is the assistant's turn, not a continuation of the query
        joint = "\n" if chat else ""
        self.text.setHtml(f"<span style='color:{style.MUTED}'>{html.escape(query + joint)}</span>"
                          f"<b style='color:{self.accent}'>{html.escape(output)}</b>".replace("\n", "<br>"))
        self.prob.setText(f"P(“{target}” | query) = {_prob(prob)}" if target else "No target given")


class ProbePanel(QWidget):
    probe_requested = Signal(str, str, int)     # query, target, max new tokens

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.query = ValidatedField("Query", QLineEdit(placeholderText="e.g. The capital of France is"))
        self.target = ValidatedField("Target", QLineEdit(placeholderText="optional: an answer to score"),
                                     hint="(optional)")
        self.tokens = QSpinBox(minimum=1, maximum=128, value=16)
        self.tokens.setToolTip("How many tokens each model generates")
        self.button = QPushButton("Probe")
        self.button.setProperty("primary", True)
        self.button.setToolTip("Run the query through the original and the edited model (Ctrl+Return)")
        self.button.clicked.connect(self._request)
        self.query.editor.returnPressed.connect(self._request)
        self.target.editor.returnPressed.connect(self._request)

        inputs = QGridLayout()
        inputs.setHorizontalSpacing(10)
        inputs.addWidget(self.query, 0, 0)
        inputs.addWidget(self.target, 0, 1)
        tokens_box = QVBoxLayout()
        tokens_box.setSpacing(3)
        tokens_box.addWidget(QLabel("Tokens"))
        tokens_box.addWidget(self.tokens)
        tokens_box.addStretch(1)
        inputs.addLayout(tokens_box, 0, 2)
        button_box = QVBoxLayout()
        button_box.addSpacing(19)
        button_box.addWidget(self.button)
        button_box.addStretch(1)
        inputs.addLayout(button_box, 0, 3)
        inputs.setColumnStretch(0, 3)
        inputs.setColumnStretch(1, 2)

        self.verdict = Banner()
        self.verdict.set("neutral", "Nothing probed yet",
                         "Type any query: both models answer it, and the verdict says whether the edit layers fired.")
        self.original = OutputBox("Original model", style.TEXT)
        self.edited = OutputBox("Edited model (ELDER)", style.ACCENT)
        outputs = QHBoxLayout()
        outputs.setSpacing(10)
        outputs.addWidget(self.original)
        outputs.addWidget(self.edited)
        self.router = RouterView()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 12, 12, 12)
        layout.setSpacing(10)
        layout.addLayout(inputs)
        layout.addWidget(self.verdict)
        layout.addLayout(outputs)
        layout.addWidget(self.router, 1)
        self.last = None

    # ------------------------------------------------------------------ input
    def _request(self) -> None:
        if not self.button.isEnabled():
            return
        query, target = self.query.text(), self.target.text().strip()
        self.clear_errors()
        if not query.strip():
            self.query.set_error("Type a query to probe.")
            return
        self.probe_requested.emit(query, target, self.tokens.value())

    def set_query(self, query: str, target: str = "") -> None:
        self.query.set_text(query)
        self.target.set_text(target)

    def clear_errors(self) -> None:
        self.query.set_error()
        self.target.set_error()

    def show_field_error(self, field: str, message: str) -> None:
        (self.target if field == "target" else self.query).set_error(message)

    def set_running(self, running: bool) -> None:
        self.button.setText("Probing…" if running else "Probe")

    def set_enabled(self, enabled: bool) -> None:
        self.button.setEnabled(enabled)

    # ----------------------------------------------------------------- output
    def show_probe(self, view) -> None:
        r = view.result
        self.last = view
        self.set_running(False)
        chat = getattr(r, "prompt_format", "plain") == "chat"
        self.original.show_output(r.query, r.original_output, r.original_target_prob, r.target,
                                  getattr(r, "original_alternatives", ()), chat)
        self.edited.show_output(r.query, r.edited_output, r.edited_target_prob, r.target,
                                getattr(r, "edited_alternatives", ()), chat)
        kind, headline, detail = self.verdict_text(r, view.nearest_target, view.nearest_seq)
        self.verdict.set(kind, headline, detail)
        self.router.show_probe(view)

    @staticmethod
    def verdict_text(r, nearest_target: Optional[str] = None, nearest_seq: Optional[int] = None) -> tuple[str, str, str]:
        target_line = ""
        if r.target:
            target_line = (f"  P(“{r.target}”): {_prob(r.original_target_prob)} original → "
                           f"{_prob(r.edited_target_prob)} edited.")
        scoped = getattr(r, "routing", "router") == "scoped"
        keyed = getattr(r, "routing", "router") == "keyed"
        if r.nearest_prompt is None or (r.hamming is None and not keyed and not scoped):
            return ("deferred", "Deferred to the original model",
                    "There are no edits yet, so the original model answered." + target_line)
        number = f"#{nearest_seq} " if nearest_seq is not None else ""
        near = f"{number}“{r.nearest_prompt}”" + (f" → {nearest_target}" if nearest_target else "")
        if scoped:
            sim, threshold = r.similarity or 0.0, r.scope_threshold or 0.0
            defer = r.defer_probability if r.defer_probability is not None else 1.0
            if r.fired:
                return ("fired", "Fired — the edit's experts answered",
                        f"Nearest edit {near}: subject match {sim:.2f} ≥ its calibrated threshold {threshold:.2f} "
                        f"(router: P(defer) = {defer:.2f}), so the query used that edit's experts." + target_line)
            return ("deferred", "Deferred to the original model",
                    f"Nearest edit {near}: subject match {sim:.2f} < its calibrated threshold {threshold:.2f} "
                    f"(router: P(defer) = {defer:.2f}); no edit covers this query, so the original model "
                    "answered." + target_line)
        if keyed:
            sim, threshold = r.similarity or 0.0, r.scope_threshold or 0.0
            if r.fired:
                return ("fired", "Fired — the edit's experts answered",
                        f"Nearest edit {near}: key similarity {sim:.2f} ≥ threshold {threshold:.2f}, so the "
                        "query was routed to that edit's experts." + target_line)
            return ("deferred", "Deferred to the original model",
                    f"Nearest edit {near}: key similarity {sim:.2f} < threshold {threshold:.2f}; no edit covers "
                    "this query, so the original model answered." + target_line)
        if not r.deferral_enabled:
            return ("fired", "Fired — deferral is switched off",
                    f"The experts are applied to every query. Nearest edit {near}, Hamming distance "
                    f"{r.hamming}." + target_line)
        if r.fired:
            return ("fired", "Fired — the edit layers answered",
                    f"Nearest edit {near} at Hamming distance {r.hamming} < ε = {r.epsilon}, so the "
                    "MoLoRA experts were applied." + target_line)
        return ("deferred", "Deferred to the original model",
                f"Nearest edit {near} at Hamming distance {r.hamming} ≥ ε = {r.epsilon}: no edit covers this "
                "query, so the experts were switched off and the original model answered." + target_line)
