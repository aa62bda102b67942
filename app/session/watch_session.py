"""Watch-list jobs (worker thread): read, add, remove, import, export and re-probe the open
history's watch list. Each returns a `WatchView`, a plain immutable result for the GUI; the
re-probe is a generator whose Progress events carry each probed row as it is done."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Optional

from elder_engine import HistoryError, Progress

from .engine_session import EngineSession
from .jobs import JobCancelled, JobContext


@dataclass(frozen=True)
class WatchView:
    report: Any = None          # engine WatchReport; None when no history is open
    action: str = ""            # what "after" follows: "edit #3", "rollback to #1", ...
    note: str = ""              # the outcome of the last change to the list, for the user

    @property
    def items(self) -> tuple:
        return self.report.items if self.report is not None else ()


def _history(session: EngineSession):
    if session.history is None:
        raise HistoryError("No edit history is open, and the watch list is kept in it. Open or create a "
                           "history from the File menu.")
    return session.history


def view(session: EngineSession, action: str = "", note: str = "") -> WatchView:
    history = session.history
    if history is None:
        return WatchView(None, action, note)
    return WatchView(history.watch.report(history.state_key, history.head), action, note)


def read(ctx: JobContext, session: EngineSession, action: str = "") -> WatchView:
    return view(session, action)


def _added(added: int, kept: int) -> str:
    note = f"{added} prompt{'s' if added != 1 else ''} added"
    return note + (f" ({kept} already watched)" if kept else "")


def add(ctx: JobContext, session: EngineSession, items: tuple, action: str = "") -> WatchView:
    added, kept = _history(session).watch.add(list(items))
    return view(session, action, _added(added, kept))


def remove(ctx: JobContext, session: EngineSession, ids: tuple, action: str = "") -> WatchView:
    n = _history(session).watch.remove(ids)
    return view(session, action, f"{n} prompt{'s' if n != 1 else ''} removed")


def import_file(ctx: JobContext, session: EngineSession, path: str, action: str = "") -> WatchView:
    added, kept = _history(session).watch.import_file(path)
    return view(session, action, _added(added, kept) + f" from {path}")


def export_file(ctx: JobContext, session: EngineSession, path: str) -> str:
    history = _history(session)
    written = history.watch.export_file(path)
    n = len(history.watch.items())
    return f"{n} prompt{'s' if n != 1 else ''} written to {written}"


def run(ctx: JobContext, session: EngineSession, action: str = "", tokens: Optional[int] = None) -> Iterator:
    """Re-probe every prompt in the engine's current state. Cancelled: JobCancelled carries a
    view of what was probed (kept in the file) and what was not."""
    history = _history(session)
    kwargs = {"max_new_tokens": tokens} if tokens else {}
    report = None
    for event in history.run_watch(cancel=ctx.cancel, **kwargs):
        detail = event.detail or {}
        report = detail.get("report", report)
        if detail.get("cancelled"):
            raise JobCancelled(WatchView(report, action, f"stopped after {event.done} of {event.total} prompts"))
        yield event
    return WatchView(report, action)


def is_row_event(event) -> bool:
    return isinstance(event, Progress) and "row" in (event.detail or {})
