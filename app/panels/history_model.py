"""Table model of the edit history (one row per HistoryEntry), with a text filter."""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt
from PySide6.QtGui import QColor, QFont

from .. import style

COLUMNS = ("#", "Time", "Prompt", "Old answer → new target", "Status", "Duration")
STATUS_TEXT = {"applied": "applied", "rolled_back": "rolled back", "reverted": "reverted"}
STATUS_COLOR = {"applied": style.FIRED, "rolled_back": style.MUTED, "reverted": style.DEFERRED}


def format_time(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (int, float)):
        value = dt.datetime.fromtimestamp(value)
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone()
        today = dt.datetime.now(value.tzinfo).date()
        return value.strftime("%H:%M:%S" if value.date() == today else "%Y-%m-%d %H:%M")
    return str(value)


def _short(text: Optional[str], n: int = 40) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[: n - 1] + "…"


class HistoryTableModel(QAbstractTableModel):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.entries: list = []
        self.head = 0

    def set_entries(self, entries, head: int) -> None:
        self.beginResetModel()
        self.entries = list(entries)
        self.head = head
        self.endResetModel()

    def entry(self, row: int):
        return self.entries[row] if 0 <= row < len(self.entries) else None

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802 - Qt API
        return 0 if parent.isValid() else len(self.entries)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.DisplayRole):  # noqa: N802
        if orientation == Qt.Horizontal and role == Qt.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index, role=Qt.DisplayRole):
        e = self.entry(index.row())
        if e is None:
            return None
        col = index.column()
        status = getattr(e, "status", "applied")
        if role == Qt.DisplayRole:
            return self._text(e, col, status)
        if role == Qt.ToolTipRole:
            return self._tooltip(e)
        if role == Qt.ForegroundRole:
            if col == 4:
                return QColor(STATUS_COLOR.get(status, style.TEXT))
            if status != "applied":
                return QColor(style.MUTED)
        if role == Qt.FontRole:
            font = QFont()
            if e.seq == self.head and status == "applied":
                font.setBold(True)
            if status == "reverted" and col in (2, 3):
                font.setStrikeOut(True)
            return font
        if role == Qt.TextAlignmentRole and col in (0, 5):
            return int(Qt.AlignRight | Qt.AlignVCenter)
        if role == Qt.UserRole:
            return e.seq
        return None

    def _text(self, e, col: int, status: str) -> str:
        if col == 0:
            return f"▶ {e.seq}" if e.seq == self.head and status == "applied" else str(e.seq)
        if col == 1:
            return format_time(getattr(e, "created_at", None))
        if col == 2:
            return e.prompt
        if col == 3:
            old = getattr(e, "old_answer", None)
            return f"{_short(old, 28) or '?'}  →  {e.target}"
        if col == 4:
            return STATUS_TEXT.get(status, status)
        if col == 5:
            seconds = getattr(e, "duration_s", None)
            return f"{seconds:.1f} s" if isinstance(seconds, (int, float)) else ""
        return ""

    @staticmethod
    def _tooltip(e) -> str:
        lines = [f"Edit {e.seq}: {e.prompt} → {e.target}"]
        old = getattr(e, "old_answer", None)
        if old:
            lines.append(f"Answer before the edit: {old}")
        for p in getattr(e, "train_paraphrases", ()) or ():
            lines.append(f"  paraphrase: {p}")
        for p in getattr(e, "locality_prompts", ()) or ():
            lines.append(f"  locality: {p}")
        profile = getattr(e, "profile", "")
        curve = getattr(e, "loss_curve", ()) or ()
        if curve:
            lines.append(f"{len(curve)} steps, final loss {curve[-1]:.3f} (profile {profile})")
        return "\n".join(lines)


class HistoryFilter(QSortFilterProxyModel):
    """Matches the filter text against prompt, target, old answer and status."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.text = ""

    def set_text(self, text: str) -> None:
        if hasattr(self, "beginFilterChange"):   # Qt >= 6.10
            self.beginFilterChange()
            self.text = text.strip().lower()
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            self.text = text.strip().lower()
            self.invalidateFilter()

    def filterAcceptsRow(self, row: int, parent) -> bool:  # noqa: N802
        if not self.text:
            return True
        e = self.sourceModel().entry(row)
        haystack = " ".join(str(x) for x in (e.seq, e.prompt, e.target, getattr(e, "old_answer", "") or "",
                                             getattr(e, "status", ""))).lower()
        return all(word in haystack for word in self.text.split())
