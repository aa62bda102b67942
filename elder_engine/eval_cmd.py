"""`eval`: a lifelong evaluation run from the command line."""

from __future__ import annotations

import json
import math
from pathlib import Path

from .cli import add_model_options, command, emit, open_editor
from .progressbar import ProgressBar


@command("eval")
def run_eval(args) -> int:
    """Apply N edits from a data file in sequence, then measure every metric."""
    import torch

    from .data import load_edits
    from .evaluate import lifelong_eval

    report = load_edits(args.data, format=args.format, limit=args.limit, offset=args.offset)
    for index, reason in report.skipped[:10]:
        print(f"skipped record {index}: {reason}", file=__import__("sys").stderr)
    editor = open_editor(args)
    bar = ProgressBar("eval")
    event = None
    for event in lifelong_eval(editor, report.records):
        bar.update(event.done, event.total, event.message)
    bar.close()
    result = event.detail["result"]
    summary = {
        **result.summary(),
        "threads": torch.get_num_threads(),
        "model": editor.loaded.display_name,
        "model_fingerprint": editor.loaded.fingerprint,
        "profile": editor.config.profile,
        "data": str(report.path), "data_format": report.format, "data_sha256": report.sha256,
        "offset": args.offset, "skipped": len(report.skipped),
    }
    summary = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in summary.items()}
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"summary": summary, "settings": editor.config.elder_fields(),
                                   "edit_seconds": result.edit_seconds, "items": result.items}, indent=1))
    emit(summary)
    return 0


def _configure(p) -> None:
    p.add_argument("--data", required=True, help="ZsRE, COUNTERFACT, hallucination or plain JSON/JSONL/CSV file")
    p.add_argument("--format", default="auto", help="auto|zsre|counterfact|hallucination|plain")
    p.add_argument("--limit", type=int, default=None, help="number of edits (default: all records)")
    p.add_argument("--offset", type=int, default=0, help="skip this many valid records first")
    p.add_argument("--out", default=None, help="write raw outputs per item (JSON) here")
    add_model_options(p)


run_eval.configure = _configure
