"""`eval`: a lifelong evaluation run from the command line, for ELDER or the baselines.

One method (`--method elder`, the default) ends stdout with its summary; several
(`--method all` or a comma list) run one after another on fresh copies of the same model,
print a comparison table to stderr and end stdout with {"methods": {name: figures}, ...}.
`--checkpoints` adds lifelong curves (JSON, CSV, PNG); `--report` writes one HTML file.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

from .common import add_format_option, add_model_options, command, config_for, emit, open_model
from .progressbar import ProgressBar


def _clean(obj):
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    return obj


def _curves_prefix(args) -> Path:
    if args.curves:
        return Path(args.curves)
    base = args.report or args.out
    if base:
        return Path(base).with_suffix("").with_name(Path(base).stem + "-curves")
    return Path("runs") / time.strftime("eval-%Y%m%d-%H%M%S-curves")


@command("eval")
def run_eval(args) -> int:
    """Apply N edits from a data file in sequence, then measure every metric (any method)."""
    import torch

    from ..errors import EditRequestError
    from ..evaluation.comparison import compare
    from ..evaluation.curves import parse_checkpoints, write_curves
    from ..evaluation.data import load_edits
    from ..evaluation.methods import method_names, parse_settings
    from ..evaluation.report import text_table, write_report

    names = method_names(args.method)
    settings = parse_settings(args.set)
    try:
        checkpoints = parse_checkpoints(args.checkpoints)
    except ValueError as error:
        raise EditRequestError(str(error)) from None
    report = load_edits(args.data, format=args.format, limit=args.limit, offset=args.offset)
    for index, reason in report.skipped[:10]:
        print(f"skipped record {index}: {reason}", file=sys.stderr)
    elder_config = config_for(args)
    model_info: dict = {}

    def open_loaded():  # a fresh copy per method; only its name and fingerprint are kept here
        loaded = open_model(args)
        model_info.setdefault("model", loaded.display_name)
        model_info.setdefault("model_fingerprint", loaded.fingerprint)
        return loaded

    bars: dict[str, ProgressBar] = {}
    event = None
    for event in compare(names, open_loaded, report.records, elder_config=elder_config, settings=settings,
                         checkpoints=checkpoints):
        name = (event.detail or {}).get("method")
        if name and event.message != f"{name}: loading":
            if name not in bars:  # one bar per method, made once (a bar shows as soon as it exists)
                bars[name] = ProgressBar(f"{name:>5}")
            bar = bars[name]
            bar.update(event.done, event.total, event.message.split(": ", 1)[-1])
            if "run" in event.detail:
                bar.close()
    runs = event.detail["runs"]
    for name, run in runs.items():
        for index, reason in run.result.skipped:
            print(f"{name}: skipped record {index}: {reason}", file=sys.stderr)
    meta = {
        "threads": torch.get_num_threads(),
        **model_info,
        "profile": elder_config.profile, "prompt_format": elder_config.prompt_format,
        "data": str(report.path), "data_format": report.format, "data_sha256": report.sha256,
        "offset": args.offset, "skipped": len(report.skipped), "checkpoints": checkpoints,
        "command": " ".join(sys.argv[1:]) if sys.argv else "",
    }
    outputs = {}
    if checkpoints:
        outputs["curves"] = write_curves(runs, _curves_prefix(args), {**meta, "methods": list(runs)},
                                         title=f"{model_info.get('model')} on {Path(report.path).name}")
    if args.report:
        outputs["report"] = write_report(args.report, runs, {**meta, "methods": list(runs)})
    for kind, where in outputs.items():
        print(f"{kind}: {where}", file=sys.stderr)
    print(text_table(runs), file=sys.stderr)

    figures = {name: _clean(run.figures()) for name, run in runs.items()}
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        detail = {name: {"summary": figures[name], "settings": run.settings, "edit_seconds": run.result.edit_seconds,
                         "edit_steps": run.result.edit_steps,
                         "curve": _clean({str(n): r.summary() for n, r in run.curve.items()}),
                         "items": run.result.items} for name, run in runs.items()}
        if len(names) == 1:  # the single-method layout the app reads
            only = detail[names[0]]
            document = {"summary": {**meta, **only["summary"]}, "settings": only["settings"],
                        **{k: only[k] for k in ("edit_seconds", "edit_steps", "curve", "items")}}
        else:
            document = {"summary": meta, "methods": detail}
        out.write_text(json.dumps(document, indent=1))
    if len(names) == 1:
        emit({**figures[names[0]], "method": names[0], **meta, **outputs})
    else:
        emit({"methods": figures, **meta, **outputs})
    return 0


def _configure(p) -> None:
    p.add_argument("--data", required=True, help="ZsRE, COUNTERFACT, hallucination or plain JSON/JSONL/CSV file")
    p.add_argument("--format", default="auto", help="auto|zsre|counterfact|hallucination|plain")
    p.add_argument("--limit", type=int, default=None, help="number of edits (default: all records)")
    p.add_argument("--offset", type=int, default=0, help="skip this many valid records first")
    p.add_argument("--out", default=None, help="write raw outputs per item (JSON) here")
    p.add_argument("--method", default="elder", help="elder | lora | ft-l | grace | all, or a comma list")
    p.add_argument("--checkpoints", default=None,
                   help="edit counts to measure at, e.g. 10,20,50,100 (writes lifelong curves: JSON, CSV, PNG)")
    p.add_argument("--curves", default=None, help="path prefix of the curve files (default: beside --report/--out)")
    p.add_argument("--report", default=None, help="write a self-contained HTML report here")
    p.add_argument("--set", action="append", default=[], metavar="METHOD.SETTING=VALUE",
                   help="override a method setting, e.g. lora.learning_rate=1e-3 or elder.max_steps=20 (repeatable)")
    add_format_option(p)
    add_model_options(p)


run_eval.configure = _configure
