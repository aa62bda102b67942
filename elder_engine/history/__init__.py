"""The edit history: an exact, persistent record of an engine's edits in one SQLite file.

    from elder_engine.history import EditHistory, load_bundle
    history = EditHistory.open("edits.elderdb", editor)   # restores the engine to the head
    for event in history.edit(EditRequest(prompt, target)): ...   # engine events, then HistoryChanged
    for progress in history.rollback_to(3): ...            # Progress events; revert / redo / undo alike
    history.export_bundle("state.elderbundle"); editor2 = load_bundle("state.elderbundle", loaded)

Layout: schema.py (tables, version, migrations), store.py (file, transactions, error
messages), snapshots.py (keyframes and exact replay: the mechanism and its trade-offs),
history.py (EditHistory), entries.py (what it hands out), bundle.py (portable single-file export/import),
watch.py and watch_io.py (the watch list: prompts re-probed after every change, and its files).
"""

from .bundle import load_bundle, read_bundle
from .entries import HistoryChanged, HistoryEntry
from .history import EditHistory
from .schema import SCHEMA_VERSION
from .snapshots import DEFAULT_KEYFRAME_BUDGET_S
from .watch import WATCH_TOKENS, WatchItem, WatchList, WatchReport
from .watch_io import ARROW as WATCH_ARROW
from .watch_io import parse_text as parse_watch_text

__all__ = ["DEFAULT_KEYFRAME_BUDGET_S", "EditHistory", "HistoryChanged", "HistoryEntry", "SCHEMA_VERSION",
           "WATCH_ARROW", "WATCH_TOKENS", "WatchItem", "WatchList", "WatchReport", "load_bundle", "parse_watch_text",
           "read_bundle"]
