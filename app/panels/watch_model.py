"""Table model of the watch list: one row per watched prompt, its answers under the original
model, before the last action and after it, and whether the edit layers fired.

Highlights: an answer the last action changed is amber and bold; an answer that differs from
the original model's is lilac; answers from an older state than the engine's are greyed."""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt
from PySide6.QtGui import QColor, QFont

from .. import style

COLUMNS = ("#", "Prompt", "Expected", "Original", "Before", "After", "Routing", "Status")
C_ID, C_PROMPT, C_EXPECTED, C_ORIGINAL, C_BEFORE, C_AFTER, C_ROUTING, C_STATUS = range(len(COLUMNS))
MOVED_BG = "#fde3a7"        # changed by the last action
CHANGED_BG = "#ece3f8"      # differs from the original model
MET = "#1f7a4d"
MISSED = "#b42318"
HEADER_TIPS = {
    C_ORIGINAL: "The unedited model's greedy answer (generated once and kept)",
    C_BEFORE: "The answer in the state the list was probed in before the last action",
    C_AFTER: "The answer now, after the last action",
    C_ROUTING: "fired: the edit layers were applied (with the edit they used); deferred: the original model answered",
}


def one_line(text: Optional[str]) -> str:
    return " ".join((text or "").split())


class WatchTableModel(QAbstractTableModel):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.items: list = []
        self.state = ""
        self._rows: dict[int, int] = {}
        self._cells: list[list[dict]] = []

    def set_report(self, report) -> None:
        self.beginResetModel()
        self.items = list(report.items) if report is not None else []
        self.state = report.state if report is not None else ""
        self._rows = {item.id: n for n, item in enumerate(self.items)}
        self._cells = [self._row_cells(item) for item in self.items]
        self.endResetModel()

    def update_item(self, item) -> None:
        """One row probed during a run (cheap: only that row is repainted)."""
        row = self._rows.get(item.id)
        if row is None:
            return
        self.items[row] = item
        if item.state and item.state != self.state:
            self.state = item.state
            self._cells = [self._row_cells(i) for i in self.items]
        else:
            self._cells[row] = self._row_cells(item)
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(COLUMNS) - 1))

    def item(self, row: int):
        return self.items[row] if 0 <= row < len(self.items) else None

    def current(self, item) -> bool:
        return item.probed and item.state == self.state

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802 - Qt API
        return 0 if parent.isValid() else len(self.items)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.DisplayRole):  # noqa: N802
        if orientation != Qt.Horizontal:
            return None
        if role == Qt.DisplayRole:
            return COLUMNS[section]
        if role == Qt.ToolTipRole:
            return HEADER_TIPS.get(section)
        return None

    def data(self, index, role=Qt.DisplayRole):
        # A lookup in cells built when a row changes: painting calls this for every visible
        # cell and role, and each call waits for the GIL while the worker thread computes.
        row = index.row()
        if not 0 <= row < len(self._cells):
            return None
        return self._cells[row][index.column()].get(role)

    def _row_cells(self, item) -> list[dict]:
        tip = self._tooltip(item)
        bold = QFont()
        bold.setBold(True)
        cells = []
        for col in range(len(COLUMNS)):
            cell = {Qt.DisplayRole: self._text(item, col), Qt.ToolTipRole: tip, Qt.UserRole: item.id}
            background, foreground = self._background(item, col), self._foreground(item, col)
            if background is not None:
                cell[Qt.BackgroundRole] = background
            if foreground is not None:
                cell[Qt.ForegroundRole] = foreground
            if col == C_AFTER and self.current(item) and item.moved:
                cell[Qt.FontRole] = bold
            if col == C_ID:
                cell[Qt.TextAlignmentRole] = int(Qt.AlignRight | Qt.AlignVCenter)
            cells.append(cell)
        return cells

    def _text(self, item, col: int) -> str:
        if col == C_ID:
            return str(item.id)
        if col == C_PROMPT:
            return one_line(item.prompt)
        if col == C_EXPECTED:
            if not item.expected:
                return ""
            met = item.meets_expected if self.current(item) else None
            return one_line(item.expected) + ("  ✓" if met else "  ✗" if met is False else "")
        if col == C_ORIGINAL:
            return one_line(item.original) if item.original is not None else "…"
        if col == C_BEFORE:
            return one_line(item.before) if item.before is not None else "—"
        if col == C_AFTER:
            return one_line(item.after) if item.after is not None else "…"
        if col == C_ROUTING:
            if item.fired is None:
                return ""
            if item.fired:
                return f"fired → #{item.fired_seq}" if item.fired_seq else "fired"
            return "deferred"
        if col == C_STATUS:
            return self.status(item)
        return ""

    def status(self, item) -> str:
        if item.error:
            return "not probed: " + item.error
        if not item.probed:
            return "not probed yet"
        if not self.current(item):
            return f"from an earlier state (head #{item.head})"
        if item.moved:
            return "changed by the last action"
        return "changed since the original" if item.changed else "unchanged"

    def _background(self, item, col: int):
        if not self.current(item):
            return None
        if col == C_AFTER:
            if item.moved:
                return QColor(MOVED_BG)
            if item.changed:
                return QColor(CHANGED_BG)
        if col == C_BEFORE and item.before is not None and item.original is not None and item.before != item.original:
            return QColor(CHANGED_BG)
        if col == C_ROUTING and item.fired is not None:
            return QColor(style.FIRED_BG if item.fired else style.DEFERRED_BG)
        if col == C_STATUS and (item.moved or item.changed):
            return QColor(MOVED_BG if item.moved else CHANGED_BG)
        return None

    def _foreground(self, item, col: int):
        if item.error and col == C_STATUS:
            return QColor(style.ERROR)
        if not self.current(item):
            return QColor(style.MUTED) if col != C_PROMPT else None
        if col == C_ROUTING and item.fired is not None:
            return QColor(style.FIRED if item.fired else style.DEFERRED)
        if col == C_EXPECTED and item.meets_expected is not None:
            return QColor(MET if item.meets_expected else MISSED)
        return None

    def _tooltip(self, item) -> str:
        lines = [f"Prompt: {item.prompt}"]
        if item.expected:
            lines.append(f"Expected: {item.expected}")
        for name, text in (("Original model", item.original), ("Before", item.before), ("After", item.after)):
            if text is not None:
                lines.append(f"{name}: {text.strip()}")
        lines.append(self.status(item))
        return "\n".join(lines)
