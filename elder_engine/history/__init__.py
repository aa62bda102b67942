"""The edit history: an exact, persistent record of an engine's edits in one SQLite file.

    from elder_engine.history import EditHistory, load_bundle
    history = EditHistory.open("edits.elderdb", editor)   # restores the engine to the head
    for event in history.edit(EditRequest(prompt, target)): ...   # engine events, then HistoryChanged
    for progress in history.rollback_to(3): ...            # Progress events; revert / redo / undo alike
    history.export_bundle("state.elderbundle"); editor2 = load_bundle("state.elderbundle", loaded)

Layout: schema.py (tables, version, migrations), store.py (file, transactions, error
messages), snapshots.py (keyframes and exact replay: the mechanism and its trade-offs),
history.py (EditHistory), entries.py (what it hands out), bundle.py (portable single-file export/import).
"""

from .bundle import load_bundle, read_bundle
from .entries import HistoryChanged, HistoryEntry
from .history import EditHistory
from .schema import SCHEMA_VERSION
from .snapshots import DEFAULT_KEYFRAME_BUDGET_S

__all__ = ["DEFAULT_KEYFRAME_BUDGET_S", "EditHistory", "HistoryChanged", "HistoryEntry", "SCHEMA_VERSION",
           "load_bundle", "read_bundle"]
