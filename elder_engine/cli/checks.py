"""Argument checks of the command line, run before any model is loaded.

`check_args(args)` looks at whatever options the parsed command has (profile, --set, data,
--db, bundle and output paths, counts) and raises `ArgumentError` with one line that says what
is wrong and what is accepted. The CLI prints it and exits 2. Each check only reads: no file is
created or changed here.
"""

from __future__ import annotations

import typing
from pathlib import Path

from ..errors import ElderError


class ArgumentError(ElderError):
    """A command-line argument is invalid; the message names it and what is accepted."""


# ------------------------------------------------------------------ profiles and settings
def check_profile(name):
    """The profile's config; ArgumentError for an unknown name."""
    from ..elder import DEFAULT_PROFILE, get_profile, profile_names

    name = DEFAULT_PROFILE if name is None else name
    if name not in profile_names():
        raise ArgumentError(f"--profile {name!r} is not a profile; choose one of: {', '.join(profile_names())}.")
    return get_profile(name)


def _type_name(hint) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _fits(value, hint) -> bool:
    """Whether a value parsed from --set (JSON) fits a dataclass field's type hint."""
    if hint is typing.Any:
        return True
    origin = typing.get_origin(hint)
    if origin is typing.Union or type(hint).__name__ == "UnionType":
        return any(_fits(value, h) for h in typing.get_args(hint))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if origin in (list, tuple):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return isinstance(value, (list, tuple)) and all(any(_fits(v, a) for a in args) for v in value) if args \
            else isinstance(value, (list, tuple))
    if origin is dict:
        return isinstance(value, dict)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True  # a hint this check does not know: leave it to the config's own validation


def _hints(config) -> dict:
    try:
        return typing.get_type_hints(type(config))
    except Exception:  # unresolvable annotations: check the names only
        return {}


def _check_fields(method: str, config, known: dict, changes: dict) -> None:
    unknown = sorted(set(changes) - set(known))
    if unknown:
        raise ArgumentError(f"--set {method}.{unknown[0]}: {method} has no setting {unknown[0]!r}; "
                            f"its settings are: {', '.join(sorted(known))}.")
    hints = _hints(config)
    for name, value in changes.items():
        hint = hints.get(name)
        if hint is not None and not _fits(value, hint):
            raise ArgumentError(f"--set {method}.{name}={value!r}: {name} takes {_type_name(hint)} "
                                f"(now {known[name]!r}), not {type(value).__name__}.")


def check_settings(names: list[str], settings: dict[str, dict], elder_config) -> None:
    """Builds every method's config with its --set overrides, so a bad key or value is
    reported now instead of after the model has loaded."""
    from ..baselines import BASELINES
    from ..baselines.common import budget_of

    for method, changes in settings.items():
        if method not in names:
            raise ArgumentError(f"--set {method}.…: {method} is not run here (--method gives {', '.join(names)}); "
                                f"add it to --method or drop the setting.")
        if method == "elder":
            config, known = elder_config, elder_config.elder_fields()
        else:
            config = BASELINES[method].config_cls(**budget_of(elder_config))
            known = config.to_dict()
        _check_fields(method, config, known, changes)
        try:
            config.replace(**changes)
        except (ValueError, TypeError) as error:
            raise ArgumentError(f"--set {_joined(method, changes)}: {_sentence(error)}") from None


def _sentence(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if text.endswith(".") else text + "."


def _joined(method: str, changes: dict) -> str:
    return " ".join(f"{method}.{k}={v!r}" for k, v in changes.items())


# ------------------------------------------------------------------------------- paths
def check_input_file(path, option: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise ArgumentError(f"{option} {path}: no such file.")
    if p.is_dir():
        raise ArgumentError(f"{option} {path} is a folder; give a file.")
    try:
        with open(p, "rb") as f:
            f.read(1)
    except OSError as exc:
        raise ArgumentError(f"{option} {path}: cannot be read ({exc.strerror or exc}).") from None
    return p


def check_output_file(path, option: str) -> Path:
    p = Path(path).expanduser()
    if p.is_dir():
        raise ArgumentError(f"{option} {path} is a folder; give a file name.")
    parent = p.absolute().parent
    # a missing folder is created by the writers, but not one under a file
    for up in (parent, *parent.parents):
        if up.exists():
            if not up.is_dir():
                raise ArgumentError(f"{option} {path}: {up} is a file, not a folder.")
            break
    return p


def check_history_file(path, *, must_exist: bool = False, must_be_new: bool = False, writing: bool = False,
                       chat=None) -> None:
    """An existing --db must be an ELDER history this version can read (checked with the
    history's own opening code, which needs no model and changes nothing on a refusal), and
    in the format --chat/--no-chat asks for, if given."""
    from ..history.schema import ModelRow
    from ..history.store import SQLITE_MAGIC, Store

    p = Path(path).expanduser()
    if p.is_dir():
        raise ArgumentError(f"--db {path} is a folder; give a history file (e.g. history.elderdb).")
    exists = p.exists() and p.stat().st_size > 0
    if must_be_new:
        if exists:
            raise ArgumentError(f"--db {path} already exists; import the bundle into a new history file.")
        return
    if not exists:
        if must_exist:
            raise ArgumentError(f"--db {path}: no history there; give an existing history file.")
        return
    try:
        with open(p, "rb") as f:
            magic = f.read(16)
    except OSError as exc:
        raise ArgumentError(f"--db {path}: cannot be read ({exc.strerror or exc}).") from None
    if magic != SQLITE_MAGIC:
        raise ArgumentError(f"--db {path} is not an ELDER history (not an SQLite database); "
                            "give a history file, or a new name to create one.")
    store, _ = Store.open(p)  # HistoryError: another program's SQLite file, newer format, damaged, locked
    try:
        if writing:  # locked by another program (or read-only): say so now, not after loading the model
            store.check_writable("change the history")
        if chat is not None:
            with store.read() as s:
                model = s.get(ModelRow, 1)
                have = ((model.config if model is not None else None) or {}).get("prompt_format", "plain")
            if have != ("chat" if chat else "plain"):
                raise ArgumentError(f"--{'chat' if chat else 'no-chat'}: the history {path} is in the {have} format, "
                                    "and every edit of a history uses its format; leave the option out, or give a "
                                    "new --db file to start a history in the other format.")
    finally:
        store.engine.dispose()


def check_bundle(path) -> None:
    """A readable, intact history bundle (its model is checked once the model is loaded)."""
    from ..history.bundle import read_bundle

    p = check_input_file(path, "bundle")
    read_bundle(p)  # StateFormatError: not a state file, truncated, not a bundle, newer, damaged


# ------------------------------------------------------------------------- dispatcher
_AT_LEAST = {"threads": 1, "edits": 1, "prompts": 1, "tokens": 1, "max_new_tokens": 1, "window": 1,
             "limit": 0, "offset": 0, "count": 1}


def check_args(args) -> None:
    """Every check that applies to the parsed arguments of any command."""
    for name, low in _AT_LEAST.items():
        value = getattr(args, name, None)
        if isinstance(value, int) and value < low:
            raise ArgumentError(f"--{name.replace('_', '-')} {value}: must be at least {low}.")
    if hasattr(args, "profile"):
        elder_config = check_profile(args.profile)
        if hasattr(args, "set"):
            from ..errors import EditRequestError
            from ..evaluation.methods import method_names, parse_settings

            try:
                names = method_names(args.method)
                settings = parse_settings(args.set)
            except EditRequestError as error:
                raise ArgumentError(str(error)) from None
            check_settings(names, settings, elder_config)
    if getattr(args, "data", None):
        check_input_file(args.data, "--data")
    for option in ("out", "report"):
        if getattr(args, option, None):
            check_output_file(getattr(args, option), f"--{option}")
    for option in ("prompt", "target", "query"):  # a text the engine needs; its length is checked with the tokenizer
        value = getattr(args, option, None)
        if value is not None and not value.strip():
            raise ArgumentError(f"--{option} is empty; give the text (see --help).")
    for option in ("paraphrase", "locality"):
        for value in getattr(args, option, None) or ():
            if not value.strip():
                raise ArgumentError(f"--{option} is empty; give the text or leave the option out.")
    command, action = getattr(args, "command", None), getattr(args, "action", None)
    if getattr(args, "db", None):
        if command == "history" and action == "import":
            check_history_file(args.db, must_be_new=True)
        else:
            writing = command == "edit" or action in ("rollback", "revert", "redo") or bool(getattr(args, "keep", False)) \
                or getattr(args, "watch_action", None) in ("add", "remove", "run")
            check_history_file(args.db, must_exist=command == "history", writing=writing,
                               chat=getattr(args, "chat", None))
    if command == "history" and action == "watch":
        check_watch_args(args)
        if getattr(args, "file", None):
            check_input_file(args.file, "--file")
        if args.watch_action == "export":
            check_output_file(args.path, "export")
    if command == "history" and action == "import":
        check_bundle(args.path)
    if command == "history" and action == "export":
        check_output_file(args.path, "export")
    if command == "history" and action in ("rollback", "revert") and args.seq < (0 if action == "rollback" else 1):
        raise ArgumentError(f"history {action} {args.seq}: give an edit number "
                            f"({'0 or more' if action == 'rollback' else '1 or more'}; see `history list`).")


def check_watch_args(args) -> None:
    """`history watch`: what can be told without the file or the model."""
    if args.watch_action == "add":
        if not args.prompts and not args.file:
            raise ArgumentError("watch add: give a PROMPT or --file (see --help).")
        if args.expected and len(args.prompts) != 1:
            raise ArgumentError("watch add: --expected goes with exactly one PROMPT.")
        if args.file and args.prompts:
            raise ArgumentError("watch add: give PROMPTs or --file, not both.")
