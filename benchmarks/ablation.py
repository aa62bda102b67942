"""Ablation of the ELDER profiles: the paper's method, each lever alone, the final profile.

Runs each profile over the same sequence of ZsRE edits (evaluation records, never the ones the
settings were tuned on), measures the six metrics after 100 and after 300 edits, and writes a
Markdown table plus the raw JSON. One process per profile, run one after another.

    .venv/bin/python benchmarks/ablation.py --edits 300 --checkpoints 100 --out runs/ablation
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROFILES = ("paper", "paper+key-scope", "own-experts", "keyed-experts")
from elder_engine.comparison import METRICS as KEYS  # noqa: E402 - after the path set-up


def run_profile(profile: str, edits: int, checkpoints: list[int], offset: int, data: str, threads: int) -> dict:
    import torch

    from elder_engine import ElderEditor, LoadSettings, get_profile, lifelong_eval, load_edits, load_model
    from elder_engine.state import state_tensors

    torch.set_num_threads(threads)
    loaded = load_model("default", LoadSettings(threads=threads))
    editor = ElderEditor(loaded, get_profile(profile))
    report = load_edits(data, offset=offset, limit=edits)
    event = None
    for event in lifelong_eval(editor, report.records, checkpoints=checkpoints):
        if event.done % 25 == 0 and event.message.startswith("edit"):
            print(f"{profile}: {event.message}", file=sys.stderr, flush=True)
    final = event.detail["result"]
    rows = {n: r for n, r in event.detail["checkpoints"].items()}
    rows[final.edits] = final
    size = sum(t.numel() * t.element_size() for t in state_tensors(editor).values())
    out = {}
    for n, r in sorted(rows.items()):
        secs = final.edit_seconds[:n]
        out[str(n)] = {**{k: getattr(r, k) for k in KEYS}, "seconds_per_edit_median": statistics.median(secs)}
    out["state_bytes"] = size
    out["data_sha256"] = report.sha256
    out["threads"] = threads
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--edits", type=int, default=300)
    p.add_argument("--checkpoints", default="100")
    p.add_argument("--offset", type=int, default=0, help="first record (0-299: evaluation split)")
    p.add_argument("--data", default=str(ROOT.parent / "shared/data/zsre_dev.json"))
    p.add_argument("--profiles", default=",".join(PROFILES))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="runs/ablation")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)  # child process: one profile
    args = p.parse_args()
    checkpoints = [int(c) for c in args.checkpoints.split(",") if c]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.one:
        result = run_profile(args.one, args.edits, checkpoints, args.offset, args.data, args.threads)
        (out / f"{args.one}.json").write_text(json.dumps(result, indent=1))
        return
    for profile in args.profiles.split(","):
        t0 = time.time()
        subprocess.run([sys.executable, __file__, "--one", profile, "--edits", str(args.edits), "--checkpoints",
                        args.checkpoints, "--offset", str(args.offset), "--data", args.data, "--threads",
                        str(args.threads), "--out", str(out)], check=True)
        print(f"{profile} done in {time.time() - t0:.0f}s", file=sys.stderr, flush=True)
    print(table(out, args.profiles.split(",")))


def table(out: Path, profiles: list[str]) -> str:
    lines = ["| profile | edits | Rel | Gen | Loc | Rel EM | Gen EM | Loc EM | s/edit (median) | state |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for profile in profiles:
        path = out / f"{profile}.json"
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        for n, row in data.items():
            if not n.isdigit():
                continue
            cells = " | ".join(f"{row[k]:.3f}" for k in KEYS)
            lines.append(f"| {profile} | {n} | {cells} | {row['seconds_per_edit_median']:.2f} | "
                         f"{data['state_bytes'] / 1e6:.1f} MB |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
