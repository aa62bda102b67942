"""Grid search of ELDER training settings on development records only.

Splits a record range into windows of `--window` edits; each window is one lifelong run from a
fresh engine (edits in sequence, then all six metrics). Every setting of the grid runs on every
window; the table gives the mean over windows and the median iterations per edit (a speed
figure the machine's load does not change). Workers run in parallel, one torch thread each.

    .venv/bin/python benchmarks/sweep.py --profile paper --offset 300 --windows 3 --window 30 \
        --grid learning_rate=1e-4,3e-4 --grid early_stop_loss=0.1,0.5 --out runs/sweep.jsonl

Never point it at the evaluation records (ZsRE 0-299): it refuses unless --allow-eval is given.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from elder_engine.comparison import METRICS as KEYS  # noqa: E402 - after the path set-up


def _value(text: str):
    """'50' -> 50, '1e-4' -> 0.0001, 'none' -> None, anything else stays a string."""
    if text.lower() == "none":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_grid(items: list[str]) -> list[dict]:
    axes = []
    for item in items:
        name, _, values = item.partition("=")
        if not values:
            raise SystemExit(f"--grid wants NAME=V1,V2,..., got {item!r}")
        axes.append([(name, _value(v)) for v in values.split(",")])
    return [dict(combo) for combo in itertools.product(*axes)] or [{}]


def run_window(job: tuple) -> dict:
    profile, settings, data, offset, window = job
    import torch

    torch.set_num_threads(1)
    from elder_engine import ElderEditor, LoadSettings, get_profile, lifelong_eval, load_edits, load_model

    loaded = load_model("default", LoadSettings(threads=1))
    config = get_profile(profile, **settings)
    editor = ElderEditor(loaded, config)
    records = load_edits(data, offset=offset, limit=window).records
    event = None
    for event in lifelong_eval(editor, records):
        pass
    result = event.detail["result"]
    return {"profile": profile, "settings": settings, "offset": offset, "edits": result.edits,
            **{k: getattr(result, k) for k in KEYS},
            "steps": result.edit_steps, "seconds": result.edit_seconds}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="paper")
    p.add_argument("--grid", action="append", default=[], help="NAME=V1,V2 (an ElderConfig field); repeatable")
    p.add_argument("--data", default=str(ROOT.parent / "shared/data/zsre_dev.json"))
    p.add_argument("--offset", type=int, default=300)
    p.add_argument("--window", type=int, default=30)
    p.add_argument("--windows", type=int, default=3)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--allow-eval", action="store_true", help="permit records below 300 (evaluation split)")
    p.add_argument("--out", default="runs/sweep.jsonl")
    args = p.parse_args()
    if Path(args.data).name == "zsre_dev.json" and args.offset < 300 and not args.allow_eval:
        raise SystemExit("records 0-299 are the evaluation split; tune on 300-599 (or pass --allow-eval)")
    grid = parse_grid(args.grid)
    jobs = [(args.profile, s, args.data, args.offset + w * args.window, args.window)
            for s in grid for w in range(args.windows)]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[dict]] = {}
    with ProcessPoolExecutor(max_workers=args.jobs) as pool, out.open("a") as log:
        for row in pool.map(run_window, jobs):
            log.write(json.dumps(row) + "\n")
            log.flush()
            rows.setdefault(json.dumps(row["settings"], sort_keys=True), []).append(row)
            print(f"done {row['settings']} offset {row['offset']}: Rel {row['reliability']:.3f} "
                  f"Gen {row['generalization']:.3f} Loc {row['locality']:.3f}", file=sys.stderr, flush=True)
    print("| settings | windows | Rel | Gen | Loc | Rel EM | Gen EM | Loc EM | median steps |")
    print("|---|---|---|---|---|---|---|---|---|")
    for key, runs in rows.items():
        means = [statistics.mean(r[k] for r in runs) for k in KEYS]
        steps = statistics.median(s for r in runs for s in r["steps"])
        print(f"| {key} | {len(runs)} | " + " | ".join(f"{m:.3f}" for m in means) + f" | {steps} |")


if __name__ == "__main__":
    main()
