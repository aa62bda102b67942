"""`history`, `edit`, `probe`: the edit history from the command line.

    python -m elder_engine history --db FILE list | rollback K | revert J | redo | export PATH | import PATH
    python -m elder_engine history --db FILE watch add|list|run|remove|export ...   (see watch_cmd.py)
    python -m elder_engine edit --db FILE --prompt TEXT --target TEXT [--paraphrase TEXT ...]
    python -m elder_engine probe --db FILE --query TEXT [--target TEXT] [--keep]

The history file is created on first use (bound to the model given by --model). Progress goes
to stderr; the last stdout line is one JSON object.
"""

from __future__ import annotations

import sys

from .common import add_format_option, add_model_options, command, emit, open_editor
from .progressbar import ProgressBar


def _open(args):
    from ..history import EditHistory

    editor = open_editor(args)
    # texts the tokenizer must accept (length, context), checked before a history file is made
    text = getattr(args, "prompt", None) or getattr(args, "query", None)
    if text is not None:
        editor.validate(text, getattr(args, "target", None))
    return EditHistory.open(args.db, editor)


def _drive(label: str, events) -> list[str]:
    """Run a history generator with a progress bar; returns its warnings."""
    bar, warnings = ProgressBar(label), []
    for event in events:
        bar.update(event.done, event.total, event.message)
        detail = event.detail or {}
        warnings = detail.get("warnings", warnings)
        if detail.get("cancelled"):
            break
    bar.close()
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    return warnings


def _add_db_option(p) -> None:
    p.add_argument("--db", required=True, help="history file (SQLite); created on first use")


def _listing(history) -> dict:
    return {"db": str(history.path), "head": history.head, "model": history.model_info.get("display_name"),
            "edits": [e.to_dict() for e in history.entries()]}


@command("history")
def run_history(args) -> int:
    """List, roll back, revert, redo, export or import an edit history; its watch list."""
    if args.action == "watch":
        from . import watch_cmd
        return watch_cmd.run(args, _open)
    if args.action == "import":
        from ..history import EditHistory

        history = EditHistory.import_bundle(args.path, args.db, open_editor(args))
    else:
        history = _open(args)
    with history:  # closed whatever happens
        if args.action == "rollback":
            _drive(f"rollback to {args.seq}", history.rollback_to(args.seq))
        elif args.action == "revert":
            _drive(f"revert {args.seq}", history.revert(args.seq))
        elif args.action == "redo":
            _drive("redo", history.redo(count=args.count))
        elif args.action == "export":
            history.export_bundle(args.path)
            print(f"exported the state after edit {history.head} to {args.path}", file=sys.stderr)
        emit(_listing(history))
    return 0


def _configure_history(p) -> None:
    _add_db_option(p)
    add_model_options(p)
    sub = p.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="every edit with its status")
    sub.add_parser("rollback", help="bring the engine back to just after edit K (0: before any)").add_argument(
        "seq", type=int, metavar="K")
    sub.add_parser("revert", help="remove edit J, keeping (re-training) the later ones").add_argument(
        "seq", type=int, metavar="J")
    sub.add_parser("redo", help="re-apply the rolled-back edits").add_argument(
        "--count", type=int, default=None, help="only the next N")
    sub.add_parser("export", help="write the current state and edit list to one bundle file").add_argument("path")
    sub.add_parser("import", help="create the history (--db, must not exist) from a bundle").add_argument("path")
    from . import watch_cmd
    watch_cmd.configure(sub)


run_history.configure = _configure_history


@command("edit")
def run_edit(args) -> int:
    """Apply one edit and record it in a history."""
    from ..editing.events import EditFinished, EditStep
    from ..editing.request import EditRequest

    with _open(args) as history:
        request = EditRequest(args.prompt, args.target, tuple(args.paraphrase or ()), subject=args.subject or "")
        bar, finished = ProgressBar("edit"), None
        for event in history.edit(request, locality_prompts=tuple(args.locality or ())):
            if isinstance(event, EditStep):
                bar.update(event.step, event.total_steps, f"loss {event.loss:.3f}")
            elif isinstance(event, EditFinished):
                finished = event
        bar.close()
        entry = history.entries()[-1]
        emit({"seq": entry.seq, "head": history.head, "stopped_early": bool(finished and finished.stopped_early),
              "edit": entry.to_dict()})
    return 0


def _configure_edit(p) -> None:
    _add_db_option(p)
    p.add_argument("--prompt", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--paraphrase", action="append", help="training paraphrase (repeatable)")
    p.add_argument("--locality", action="append", help="unrelated prompt to keep with the edit (repeatable)")
    p.add_argument("--subject", default="", help="the entity the edit is about, as it appears in the prompt "
                                                 "(e.g. 'France'); the scoped router keys on it (default: a guess)")
    add_format_option(p, history=True)
    add_model_options(p)


run_edit.configure = _configure_edit


@command("probe")
def run_probe(args) -> int:
    """Compare the edited and the original model on a query, in a history's current state."""
    with _open(args) as history:
        result = history.editor.probe(args.query, args.target, max_new_tokens=args.max_new_tokens)
        if args.keep:
            history.keep_probe(result)
        if not result.original_output.strip() and result.prompt_format == "plain" \
                and getattr(history.editor.tokenizer, "chat_template", None):
            print("note: the model answered nothing as plain text; it has a chat template: a history made "
                  "with --chat runs prompts as the user's turn", file=sys.stderr)
        emit({**result.to_dict(), "nearest_seq": history.nearest_seq(result), "head": history.head,
              "kept": bool(args.keep)})
    return 0


def _configure_probe(p) -> None:
    _add_db_option(p)
    p.add_argument("--query", required=True)
    p.add_argument("--target", default=None, help="also score this answer")
    p.add_argument("--keep", action="store_true", help="store the result in the history")
    p.add_argument("--max-new-tokens", type=int, default=24, help="greedy tokens generated per output")
    add_format_option(p, history=True)
    add_model_options(p)


run_probe.configure = _configure_probe
