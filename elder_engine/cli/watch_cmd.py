"""`history --db F watch ...`: the watch list from the command line.

    python -m elder_engine history --db F watch add PROMPT [--expected TEXT] | add --file F.txt|F.csv
    python -m elder_engine history --db F watch list | remove ID ... | export F.txt|F.csv
    python -m elder_engine history --db F watch run [--tokens N]

Only `run` loads the model; the others work on the file alone. `run` re-probes every prompt in
the history's current state and prints one JSON line: per row the prompt, expected answer,
original and edited answers, fired, changed; and the counts.
"""

from __future__ import annotations

import sys

from .checks import ArgumentError
from .common import emit
from .progressbar import ProgressBar


def configure(sub) -> None:
    p = sub.add_parser("watch", help="prompts re-probed after every change: add, list, run, remove, export")
    actions = p.add_subparsers(dest="watch_action", required=True)
    add = actions.add_parser("add", help="watch prompts (an expected answer is optional)")
    add.add_argument("prompts", nargs="*", metavar="PROMPT")
    add.add_argument("--expected", default="", help="expected answer (with exactly one PROMPT)")
    add.add_argument("--file", default=None, help="import prompts from a .txt (one per line, an expected answer "
                                                 "after a tab or ' -> ') or .csv (prompt,expected) file")
    actions.add_parser("list", help="the watched prompts with their last answers (no model needed)")
    run = actions.add_parser("run", help="re-probe every prompt now; prints one JSON line")
    run.add_argument("--tokens", type=int, default=None, help="greedy tokens per answer (default 16)")
    actions.add_parser("remove", help="stop watching prompts, by id (see `watch list`)").add_argument(
        "ids", nargs="+", type=int, metavar="ID")
    actions.add_parser("export", help="write the prompts to a .txt or .csv file").add_argument("path")


def run(args, open_history) -> int:
    from ..history import WATCH_TOKENS, WatchList

    action = args.watch_action
    if action == "run":
        history = open_history(args)
        try:
            bar, report = ProgressBar("watch"), None
            for event in history.run_watch(max_new_tokens=args.tokens or WATCH_TOKENS):
                bar.update(event.done, event.total, event.message)
                report = (event.detail or {}).get("report", report)
            bar.close()
            emit({"db": str(history.path), **_rows(report.to_dict())})
        finally:
            history.close()
        return 0
    with WatchList.open(args.db) as watch:
        out = {}
        if action == "add":
            from ..history.watch_io import read_file
            items = read_file(args.file) if args.file else [(p, args.expected) for p in args.prompts]
            added, kept = watch.add(items)
            out = {"added": added, "already_watched": kept}
            print(f"watching {added} new prompt{'s' if added != 1 else ''}"
                  + (f" ({kept} already watched)" if kept else ""), file=sys.stderr)
        elif action == "remove":
            known = {i.id for i in watch.items()}
            missing = sorted(set(args.ids) - known)
            if missing:
                raise ArgumentError(f"watch remove: no watched prompt with id {', '.join(map(str, missing))} "
                                    f"(ids: {', '.join(map(str, sorted(known))) or 'none'}; see `watch list`).")
            out = {"removed": watch.remove(args.ids)}
        elif action == "export":
            path = watch.export_file(args.path)
            print(f"exported {len(watch.items())} prompts to {path}", file=sys.stderr)
        emit({"db": str(args.db), **out, **_rows(watch.report().to_dict())})
    return 0


def _rows(report: dict) -> dict:
    keep = ("id", "prompt", "expected", "original", "before", "edited", "fired", "fired_seq", "changed", "moved",
            "meets_expected", "error")
    return {"head": report["head"], "complete": report["complete"], "counts": report["counts"],
            "rows": [{k: r[k] for k in keep} for r in report["rows"]]}
