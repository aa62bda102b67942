"""Grid search of ELDER training settings on development records: a thin call of
`python -m elder_engine sweep` (Ray; resumable; see the README's "Sweeps"), which prints the
Markdown table the README uses (mean over windows, median iterations per edit).

    .venv/bin/python benchmarks/sweep.py --profile paper --offset 300 --windows 3 --window 30 \
        --grid learning_rate=1e-4,3e-4 --grid early_stop_loss=0.1,0.5 --out runs/sweep.jsonl

The same as `python -m elder_engine sweep --data ../shared/data/zsre_dev.json --profile paper
--offset 300 --windows 3 --window 30 --set elder.learning_rate=1e-4,3e-4 --set
elder.early_stop_loss=0.1,0.5 --out runs/sweep.jsonl`. Like `sweep`, it refuses the evaluation
records (ZsRE 0-299) unless --allow-eval is given. `--ray-overhead` measures Ray's cost per task
on this machine instead (an empty task's round trip).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from elder_engine.evaluation.metrics import METRICS, SHORT_LABELS  # noqa: E402


def markdown(groups: list[dict]) -> str:
    lines = ["| settings | windows | " + " | ".join(SHORT_LABELS.values()) + " | median steps |",
             "|---|---|---|---|---|---|---|---|---|"]
    for g in groups:
        cells = " | ".join("–" if g.get(k) is None else f"{g[k]:.3f}" for k in METRICS)
        lines.append(f"| {json.dumps(g['settings'], sort_keys=True)} | {g['ok']} | {cells} | "
                     f"{g['steps_per_edit_median']} |")
    return "\n".join(lines)


def ray_overhead(count: int = 200) -> dict:
    """Seconds for Ray's start on this machine and for the round trip of an empty task and of an
    empty actor call (what `sweep` pays per run on top of the run), median and 90th percentile."""
    import os
    import statistics
    import time

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=os.cpu_count(), num_gpus=0, include_dashboard=False, log_to_driver=False)
    started = time.perf_counter() - t0

    @ray.remote(num_cpus=1)
    def empty():
        return None

    @ray.remote(num_cpus=1)
    class Empty:
        def call(self):
            return None

    def timed(fn) -> list[float]:
        fn()  # the first call starts a worker process
        out = []
        for _ in range(count):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
        return sorted(out)

    actor = Empty.remote()
    tasks = timed(lambda: ray.get(empty.remote()))
    calls = timed(lambda: ray.get(actor.call.remote()))
    ray.shutdown()
    pct = lambda xs, q: xs[min(len(xs) - 1, int(q * len(xs)))]  # noqa: E731
    return {"ray_init_s": round(started, 2), "count": count,
            "task_round_trip_ms": {"median": round(statistics.median(tasks) * 1e3, 2), "p90": round(pct(tasks, 0.9) * 1e3, 2)},
            "actor_call_round_trip_ms": {"median": round(statistics.median(calls) * 1e3, 2),
                                         "p90": round(pct(calls, 0.9) * 1e3, 2)}}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="paper")
    p.add_argument("--grid", action="append", default=[], help="NAME=V1,V2 (an ElderConfig field); repeatable")
    p.add_argument("--data", default=str(ROOT.parent / "shared/data/zsre_dev.json"))
    p.add_argument("--offset", type=int, default=300)
    p.add_argument("--window", type=int, default=30)
    p.add_argument("--windows", type=int, default=3)
    p.add_argument("--jobs", type=int, default=None, help="Ray workers (default: one per core)")
    p.add_argument("--allow-eval", action="store_true", help="permit the evaluation records (ZsRE 0-299)")
    p.add_argument("--model", default="default", help="'default' (embedded SmolLM2-135M), a HF folder or a .gguf file")
    p.add_argument("--out", default="runs/sweep.jsonl")
    p.add_argument("--report", default=None)
    p.add_argument("--ray-overhead", action="store_true",
                   help="measure only Ray's per-task overhead here (an empty task's round trip) and exit")
    args = p.parse_args()
    if args.ray_overhead:
        print(json.dumps(ray_overhead()))
        return 0
    command = [sys.executable, "-m", "elder_engine", "sweep", "--model", args.model, "--data", args.data, "--profile", args.profile,
               "--offset", str(args.offset), "--window", str(args.window), "--windows", str(args.windows),
               "--out", args.out]
    for item in args.grid:
        command += ["--set", f"elder.{item}"]
    command += ["--workers", str(args.jobs)] if args.jobs else []
    command += ["--allow-eval"] if args.allow_eval else []
    command += ["--report", args.report] if args.report else []
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True)  # progress and errors: straight to stderr
    lines = done.stdout.strip().splitlines()
    if not lines:
        return done.returncode
    summary = json.loads(lines[-1])
    print(markdown(summary["groups"]))
    print(lines[-1])
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
