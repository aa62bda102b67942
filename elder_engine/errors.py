"""Errors the engine raises on purpose.

Every failure a user can cause (a bad path, a corrupt file, a malformed record, a locked
database) surfaces as an `ElderError` subclass whose message says what happened and what to
do. The CLI and the app print `str(error)`; they never show a traceback for these.
"""


class ElderError(Exception):
    """Base class: a failure with a message meant for the user."""


class ModelLoadError(ElderError):
    """The model could not be loaded (not a model, corrupt weights, offline hub id, ...)."""


class UnsupportedModelError(ModelLoadError):
    """The model loaded but ELDER cannot attach to it (no causal LM head, no FFN module)."""


class DataFormatError(ElderError):
    """A data file cannot be read at all (not JSON, unknown format, empty)."""


class EditRequestError(ElderError):
    """An edit or probe request is invalid (empty prompt, target too long, ...)."""


class StateFormatError(ElderError):
    """A saved engine state or bundle is unreadable or belongs to another model/config."""


class HistoryError(ElderError):
    """The edit history database cannot be used (locked, damaged, other model, ...)."""


def cause_line(error: BaseException) -> str:
    """One line of an underlying error, enough to search for, without a traceback."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text[:300]}" if text else type(error).__name__
