"""The likeliest first answer tokens of one model, with their probabilities as bars.

Shown under each answer of the probe panel: beside the greedy output it says how sure the
model was and what it would have said instead, which is where an edit's effect (or a
deferral's absence of one) is plainest.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout, QLabel, QProgressBar, QWidget

ROWS = 5
BAR_STEPS = 1000


def token_text(token: str) -> str:
    """A token as it reads in a list: spaces and line breaks made visible, quoted."""
    shown = token.replace(" ", "␣").replace("\n", "⏎").replace("\t", "⇥")
    return f"“{shown}”" if shown else "“”"


def percent(p: float) -> str:
    return f"{100 * p:.1f}%" if p >= 1e-3 else "<0.1%"


class AlternativesView(QWidget):
    def __init__(self, accent: str, parent=None) -> None:
        super().__init__(parent)
        self.caption = QLabel("Next token")
        self.caption.setProperty("role", "hint")
        self.tokens, self.bars, self.probs = [], [], []
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 2, 0, 0)
        grid.setHorizontalSpacing(8)
        grid.setVerticalSpacing(2)
        grid.addWidget(self.caption, 0, 0, 1, 3)
        for row in range(1, ROWS + 1):
            token = QLabel("")
            token.setTextFormat(Qt.PlainText)
            token.setStyleSheet("font-family: monospace;")
            bar = QProgressBar()
            bar.setRange(0, BAR_STEPS)
            bar.setTextVisible(False)
            bar.setFixedHeight(8)
            bar.setStyleSheet(f"QProgressBar {{ border: none; background: #eef1f5; border-radius: 3px; }}"
                              f"QProgressBar::chunk {{ background: {accent}; border-radius: 3px; }}")
            prob = QLabel("")
            prob.setAlignment(Qt.AlignRight | Qt.AlignVCenter)
            prob.setMinimumWidth(48)
            grid.addWidget(token, row, 0)
            grid.addWidget(bar, row, 1)
            grid.addWidget(prob, row, 2)
            self.tokens.append(token)
            self.bars.append(bar)
            self.probs.append(prob)
        grid.setColumnStretch(1, 1)
        self.show_alternatives(())

    def show_alternatives(self, alternatives) -> None:
        """`alternatives`: the engine's Alternative tuples, likeliest first."""
        alternatives = tuple(alternatives)[:ROWS]
        self.caption.setText(f"Next token: top {len(alternatives)}" if alternatives else "Next token: —")
        for i in range(ROWS):
            have = i < len(alternatives)
            for widget in (self.tokens[i], self.bars[i], self.probs[i]):
                widget.setVisible(have)
            if have:
                a = alternatives[i]
                self.tokens[i].setText(token_text(a.token))
                self.tokens[i].setToolTip(f"token id {a.token_id}")
                self.bars[i].setValue(round(a.probability * BAR_STEPS))
                self.probs[i].setText(percent(a.probability))

    def rows(self) -> list[tuple[str, str]]:
        """(token, probability) as shown, for tests and screenshots."""
        return [(t.text(), p.text()) for t, p in zip(self.tokens, self.probs) if not t.isHidden()]
