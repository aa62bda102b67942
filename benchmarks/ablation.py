"""Ablation of the ELDER profiles: the paper's method, each lever alone, the final profile.

A thin call of `python -m elder_engine sweep` (Ray; resumable): each profile runs over the same
sequence of ZsRE edits (evaluation records, never the ones the settings were tuned on, hence
--allow-eval), measured after each checkpoint and after all edits; prints the README's Markdown
table (s/edit: the median over the edits made so far; state: the edited state's size).

    .venv/bin/python benchmarks/ablation.py --edits 300 --checkpoints 30,100 --out runs/ablation

The same as `python -m elder_engine sweep --data ../shared/data/zsre_dev.json --profile
paper,paper+key-scope,own-experts,keyed-experts --window 300 --checkpoints 30,100 --allow-eval
--out runs/ablation/sweep.jsonl --report runs/ablation/report.html`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from elder_engine.evaluation.metrics import METRICS, SHORT_LABELS  # noqa: E402

PROFILES = ("paper", "paper+key-scope", "own-experts", "keyed-experts")


def table(rows: list[dict]) -> str:
    lines = ["| profile | edits | " + " | ".join(SHORT_LABELS.values()) + " | s/edit (median) | state |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        if row["status"] != "ok":
            lines.append(f"| {row['profile']} | failed: {row.get('error', '')} |")
            continue
        for n, metrics in sorted(row["curve"].items(), key=lambda item: int(item[0])):
            cells = " | ".join("–" if metrics.get(k) is None else f"{metrics[k]:.3f}" for k in METRICS)
            seconds = statistics.median(row["edit_seconds"][:int(n)])
            state = f"{row['state_bytes'] / 1e6:.1f} MB" if int(n) == row["edits"] else ""
            lines.append(f"| {row['profile']} | {n} | {cells} | {seconds:.2f} | {state} |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--edits", type=int, default=300)
    p.add_argument("--checkpoints", default="100")
    p.add_argument("--offset", type=int, default=0, help="first record (0-299: evaluation split)")
    p.add_argument("--data", default=str(ROOT.parent / "shared/data/zsre_dev.json"))
    p.add_argument("--profiles", default=",".join(PROFILES))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--jobs", type=int, default=None, help="Ray workers (default: one per core)")
    p.add_argument("--model", default="default", help="'default' (embedded SmolLM2-135M), a HF folder or a .gguf file")
    p.add_argument("--out", default="runs/ablation", help="folder: sweep.jsonl and report.html")
    args = p.parse_args()
    out = Path(args.out)
    log = out / "sweep.jsonl"
    command = [sys.executable, "-m", "elder_engine", "sweep", "--model", args.model, "--data", args.data, "--profile", args.profiles,
               "--offset", str(args.offset), "--window", str(args.edits), "--checkpoints", args.checkpoints,
               "--threads", str(args.threads), "--allow-eval", "--out", str(log), "--report", str(out / "report.html")]
    command += ["--workers", str(args.jobs)] if args.jobs else []
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True)  # progress and errors: straight to stderr
    lines = done.stdout.strip().splitlines()
    if not lines:
        return done.returncode
    summary = json.loads(lines[-1])
    latest = {}
    for line in log.read_text().splitlines():
        row = json.loads(line)
        latest[row["run"]] = row
    print(table([latest[i] for g in summary["groups"] for i in g["run_ids"] if i in latest]))
    print(lines[-1])
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
