"""Turn any exception into a message for a person: what happened, and what to do.

Engine errors (`ElderError`) already carry such a message. Anything else is a bug or an
environment problem; the user gets a plain sentence and the traceback goes to the log file.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from elder_engine import DataFormatError, EditRequestError, ElderError, HistoryError, ModelLoadError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UserMessage:
    title: str
    text: str
    level: str = "error"     # "error" | "warning" | "info"


_TITLES = (
    (ModelLoadError, "The model could not be loaded"),
    (DataFormatError, "The data file could not be read"),
    (EditRequestError, "The request is not valid"),
    (HistoryError, "The edit history could not be used"),
    (ElderError, "The operation failed"),
)


def log_file() -> Optional[Path]:
    for handler in logging.getLogger().handlers:
        name = getattr(handler, "baseFilename", None)
        if name:
            return Path(name)
    return None


def describe(error: BaseException, doing: str = "") -> UserMessage:
    """A message for `error`, raised while `doing` (e.g. "applying the edit")."""
    context = f" while {doing}" if doing else ""
    for kind, title in _TITLES:
        if isinstance(error, kind):
            return UserMessage(title, str(error))
    if isinstance(error, sqlite3.OperationalError) and "locked" in str(error).lower():
        return UserMessage("The edit history is locked",
                           "Another program is writing to the history database. Close it (or the "
                           "other ELDER Workbench window) and try again.")
    if isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError":
        return UserMessage("Out of memory",
                           f"The computer ran out of memory{context}. Close other programs, use "
                           "fewer edits at once, or load a smaller model.")
    if isinstance(error, PermissionError):
        return UserMessage("Permission denied",
                           f"{error.filename or 'A file'} cannot be written or read{context}. "
                           "Choose a folder you have access to.")
    if isinstance(error, FileNotFoundError):
        return UserMessage("File not found", f"{error.filename or error} does not exist. "
                           "Choose the file again.")
    if isinstance(error, OSError):
        return UserMessage("A file operation failed",
                           f"{error.strerror or error}{context}. Check the path and free disk space.")
    where = log_file()
    detail = f" The technical details were written to {where}." if where else ""
    return UserMessage("Something went wrong",
                       f"An unexpected error happened{context} ({type(error).__name__}: "
                       f"{str(error)[:200]}). The model and the history were left as they were; "
                       f"you can keep working.{detail}")
