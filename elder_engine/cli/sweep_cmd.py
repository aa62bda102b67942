"""`sweep`: a grid of lifelong evaluations run as Ray tasks, resumable, with one report.

The grid is data files x methods x profiles x `--set` values x data windows x seeds; every
point is one run of `eval` (edits in sequence from a fresh engine, then every metric). With no
`--address` Ray starts on this machine with one worker per core (`--workers`); `--address
auto|HOST:PORT` joins a running cluster (every node needs this package and the model). Each
worker is a Ray actor that declares its resources (`--threads` CPUs, one GPU with `--device
cuda`), loads the model once, and runs one task after another on private copies of it.

Rows go to `--out` (JSONL) as runs finish; a restarted sweep with the same file runs only the
runs not in it (`--retry-failed` also re-runs failed ones). A run that fails is a row with
status "failed" and its error; the others go on. Progress on stderr, the table (mean ± sd over
windows and seeds) on stderr, one JSON summary as the last stdout line, `--report` one HTML.

Ray is an optional extra (`pip install -e '.[cluster]'`): nothing outside this command imports it.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .common import command, emit

RAY_VERSION = "2.60.0"
INSTALL_HINT = f"pip install -e '.[cluster]' in the repository (or pip install 'ray=={RAY_VERSION}')"


def require_ray():
    """The ray module, or SweepError with how to install it (one line, exit 2)."""
    from ..evaluation.sweep import SweepError

    try:
        import ray
    except ImportError:
        raise SweepError(f"sweep runs its grid on Ray, an optional extra that is not installed: {INSTALL_HINT}.") \
            from None
    return ray


# ------------------------------------------------------------------------------ planning
@dataclass
class Plan:
    runs: list  # RunSpec, in grid order
    records: dict  # (data sha256, offset, window) -> that window's EditRecords
    data_files: list  # DataFile
    notes: list  # lines for stderr (skipped records)


def plan_sweep(args) -> Plan:
    """Every check and the whole grid, before Ray or a model: SweepError / ArgumentError."""
    import itertools

    from ..elder import DEFAULT_PROFILE
    from ..errors import EditRequestError
    from ..evaluation.curves import parse_checkpoints
    from ..evaluation.data import load_edits
    from ..evaluation.methods import method_names
    from ..evaluation.sweep import (
        DataFile,
        SweepError,
        build_grid,
        check_evaluation_records,
        parse_seeds,
        parse_set_axes,
        split_values,
    )
    from ..models.loading import _looks_like_path
    from .checks import ArgumentError, check_input_file, check_profile, check_settings

    for name in ("windows", "workers"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ArgumentError(f"--{name} {value}: must be at least 1.")
    try:
        methods = method_names(args.methods)
    except EditRequestError as error:
        raise ArgumentError(str(error)) from None
    profiles = [p for p in split_values(args.profiles or DEFAULT_PROFILE) if p]
    if len(set(profiles)) != len(profiles):
        raise ArgumentError(f"--profile {args.profiles!r} names a profile twice.")
    configs = {p: check_profile(p) for p in profiles}
    axes = parse_set_axes(args.sets, methods)
    if any(name == "seed" for name, _ in axes.get("elder", [])):
        raise ArgumentError("--set elder.seed: give seeds with --seeds (they also seed the baselines).")
    for method in methods:
        names = [n for n, _ in axes.get(method, [])]
        for combo in itertools.product(*[values for _, values in axes.get(method, [])]):
            for profile, config in configs.items():
                check_settings([method], {method: dict(zip(names, combo))} if names else {}, config)
    seeds = parse_seeds(args.seeds)
    try:
        checkpoints = parse_checkpoints(args.checkpoints)
    except ValueError as error:
        raise ArgumentError(str(error)) from None

    data_files, reports, notes = [], {}, []
    for given in args.data_files:
        path = check_input_file(given, "--data")
        report = load_edits(path, format=args.format)
        if report.sha256 in reports:
            raise ArgumentError(f"--data {given}: the same file (by content) is given twice.")
        reports[report.sha256] = report
        data_files.append(DataFile(report.path, Path(report.path).name, report.format, report.sha256,
                                   len(report.records)))
        notes += [f"{Path(report.path).name}: skipped record {i}: {why}" for i, why in report.skipped[:10]]
    model = args.model
    if model != "default" and Path(model).expanduser().exists():
        model = str(Path(model).expanduser().resolve())  # the workers get an absolute path
    elif model != "default" and _looks_like_path(model):
        raise ArgumentError(f"--model {model}: no such model folder or .gguf file.")
    runs = build_grid(data_files, methods, profiles, axes, offset=args.offset, window=args.window,
                      windows=args.windows, seeds=seeds, checkpoints=checkpoints, model=model,
                      device=args.device, dtype=args.dtype)
    records = {}
    for run in runs:
        key = (run.data_sha256, run.offset, run.window)
        if key not in records:
            records[key] = reports[run.data_sha256].records[run.offset:run.offset + run.window]
    if not args.allow_eval:
        for data in data_files:
            check_evaluation_records(reports[data.sha256], [v for k, v in records.items() if k[0] == data.sha256])
    ids = [r.run_id for r in runs]
    if len(set(ids)) != len(ids):
        raise SweepError("the grid names some runs twice (a value repeated in --set?); give each value once.")
    return Plan(runs, records, data_files, notes)


# ------------------------------------------------------------------------------ running
def _start_ray(ray, args, pending: int) -> tuple[int, str]:
    """ray.init (a new local instance, or the cluster at --address); the number of workers."""
    from ..errors import cause_line
    from ..evaluation.sweep import SweepError

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report to the network unless asked for
    common = dict(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    cuda = args.device == "cuda"
    if args.address:
        try:
            ray.init(address=args.address, **common)
        except Exception as error:  # ConnectionError, ValueError, RuntimeError: nothing to join there
            raise SweepError(f"--address {args.address}: cannot join a Ray cluster ({cause_line(error)}); "
                             "start one with `ray start --head`, or leave --address out to run on this machine "
                             "(a cluster with token authentication, Ray's default, also needs RAY_AUTH_MODE=token "
                             "and its token in ~/.ray/auth_token or RAY_AUTH_TOKEN when given HOST:PORT).") from None
        where = args.address
    else:
        # Ray turns token authentication on for a new local instance and says so on every start
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
        cores = os.cpu_count() or 1
        workers = args.workers or max(1, cores // args.threads)
        ray.init(address="local", num_cpus=max(cores, workers * args.threads) if cuda else workers * args.threads,
                 **({} if cuda else {"num_gpus": 0}), **common)
        where = "local"
    resources = ray.cluster_resources()
    if cuda:
        capacity = int(resources.get("GPU", 0))
        if capacity < 1:
            raise SweepError("--device cuda: Ray sees no GPU on " + ("this machine" if where == "local" else where) + ".")
    else:
        capacity = int(resources.get("CPU", 0) // args.threads)
    if capacity < 1:
        raise SweepError(f"--threads {args.threads}: no Ray node has that many CPUs.")
    if args.workers and args.workers > capacity:
        print(f"--workers {args.workers}: the cluster has room for {capacity}; using {capacity}.", file=sys.stderr)
    return max(1, min(args.workers or capacity, capacity, pending)), where


def _execute(ray, args, plan: Plan, todo, log, bar) -> dict:
    """Runs `todo` on Ray workers, appending each row to `log` as it arrives."""
    from collections import deque

    from ..errors import cause_line
    from ..evaluation.sweep import SweepError, SweepWorker, failed_row

    workers, where = _start_ray(ray, args, len(todo))
    remote = ray.remote(num_cpus=args.threads, num_gpus=1 if args.device == "cuda" else 0,
                        max_restarts=0)(SweepWorker)
    model = todo[0].model

    def new_worker():
        return remote.remote(model, args.device, args.dtype, args.threads)

    bar.set_postfix_str(f"loading the model on {workers} worker(s)")
    actors = [new_worker() for _ in range(workers)]
    try:
        infos = ray.get([a.info.remote() for a in actors])
    except Exception as error:  # a worker process died while loading (out of memory, a crash)
        raise SweepError(f"a Ray worker died while loading --model {args.model} ({cause_line(error)}).") from None
    errors = [i["error"] for i in infos if i.get("error")]
    if errors:
        raise SweepError(f"--model {args.model}: {' '.join(errors[0].split())}")
    if len({i["model_fingerprint"] for i in infos}) > 1:
        raise SweepError(f"--model {args.model}: the workers loaded different models (fingerprints differ); "
                         "give every node the same model.")
    info = infos[0]
    queue = deque(todo)
    inflight = {}
    failed = 0

    def submit(actor):
        spec = queue.popleft()
        ref = actor.run.remote(spec, plan.records[(spec.data_sha256, spec.offset, spec.window)])
        inflight[ref] = (actor, spec)

    for actor in actors:
        if queue:
            submit(actor)
    bar.set_postfix_str(f"{workers} worker(s)")
    while inflight:
        ready, _ = ray.wait(list(inflight), num_returns=1)
        actor, spec = inflight.pop(ready[0])
        try:
            row = ray.get(ready[0])
        except Exception as error:  # the worker process died under the run (OOM, a crash): a new one
            row = failed_row(spec, f"worker died: {cause_line(error)}")
            try:
                ray.kill(actor)
            except Exception:  # noqa: BLE001 - already gone
                pass
            actor = new_worker()
        log.append(row)
        if row["status"] == "ok":
            bar.write(f"done {spec.label()}: Rel {_f(row['reliability'])} Gen {_f(row['generalization'])} "
                      f"Loc {_f(row['locality'])} ({row['wall_s']:.1f} s)", file=sys.stderr)
        else:
            failed += 1
            bar.write(f"FAILED {spec.label()}: {row['error']}", file=sys.stderr)
        bar.update(1)
        bar.set_postfix_str(f"{workers} worker(s)" + (f", {failed} failed" if failed else ""))
        if queue:
            submit(actor)
    return {"workers": workers, "ray": where, **{k: info[k] for k in ("model", "model_fingerprint")}}


def _f(value) -> str:
    return "–" if value is None else f"{value:.3f}"


@command("sweep")
def run_sweep(args) -> int:
    """Run a grid of lifelong evaluations on Ray (this machine or a cluster); resumable JSONL, one report."""
    from tqdm import tqdm

    from ..evaluation.sweep import RunLog, package_version
    from ..evaluation.sweep_report import summarise, text_table, write_report

    t0 = time.perf_counter()
    plan = plan_sweep(args)
    if args.dry_run:
        for run in plan.runs:
            print(f"{run.run_id}  {run.label()}  on {run.data}", file=sys.stderr)
        emit({"runs": len(plan.runs), "grid": [run.point() for run in plan.runs]})
        return 0
    ray = require_ray()
    for note in plan.notes:
        print(note, file=sys.stderr)
    log = RunLog(args.out)
    ray_info: dict = {}
    try:
        done = log.latest()
        todo = [r for r in plan.runs if r.run_id not in done
                or (args.retry_failed and done[r.run_id].get("status") != "ok")]
        already = len(plan.runs) - len(todo)
        if already:
            print(f"{args.out}: {already} of {len(plan.runs)} runs already done; running the other {len(todo)}",
                  file=sys.stderr)
        if todo:
            with tqdm(total=len(plan.runs), initial=already, desc="runs", unit="run", file=sys.stderr,
                      dynamic_ncols=True) as bar:
                try:
                    ray_info = _execute(ray, args, plan, todo, log, bar)
                finally:
                    if ray.is_initialized():
                        ray.shutdown()
        latest = log.latest()
        rows = [latest[r.run_id] for r in plan.runs if r.run_id in latest]
    finally:
        log.close()
    summary = summarise(rows)
    ok = sum(r["status"] == "ok" for r in rows)
    first = next((r for r in rows if r.get("model_fingerprint")), {})
    meta = {"out": str(args.out), "runs": len(plan.runs), "ok": ok, "failed": len(rows) - ok, "ran": len(todo),
            "already_done": already, "wall_s": round(time.perf_counter() - t0, 2),
            "model": ray_info.get("model", first.get("model")),
            "model_fingerprint": ray_info.get("model_fingerprint", first.get("model_fingerprint")),
            "version": package_version(), "device": args.device, "threads": args.threads,
            "workers": ray_info.get("workers", 0), "ray": ray_info.get("ray"),
            "data": {d.name: d.sha256 for d in plan.data_files},
            "command": " ".join(sys.argv[1:]) if sys.argv else ""}
    print(text_table(summary), file=sys.stderr)
    if args.report:
        meta["report"] = write_report(args.report, rows, meta)
        print(f"report: {meta['report']}", file=sys.stderr)
    groups = []
    for entry in summary:
        compact = {k: entry[k] for k in ("data", "method", "profile", "settings", "runs", "ok", "failed", "run_ids")}
        for key, stats in entry.items():
            if isinstance(stats, dict) and "mean" in stats:
                compact[key], compact[f"{key}_sd"] = stats["mean"], stats["sd"]
        compact["steps_per_edit_median"] = entry["steps_per_edit_median"]
        groups.append(compact)
    emit({**meta, "groups": groups})
    return 1 if meta["failed"] else 0


def _configure(p) -> None:
    p.add_argument("--data", dest="data_files", action="extend", nargs="+", required=True, metavar="FILE",
                   help="one or more data files (ZsRE, COUNTERFACT, hallucination, plain); each gets every window")
    p.add_argument("--format", default="auto", help="auto|zsre|counterfact|hallucination|plain")
    p.add_argument("--method", dest="methods", default="elder", help="elder | lora | ft-l | grace | all, or a comma list")
    p.add_argument("--profile", dest="profiles", default=None,
                   help="one or more ELDER profiles, comma-separated (default: the engine's default profile)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="METHOD.SETTING=V1,V2",
                   help="a grid axis of one method's setting, e.g. elder.learning_rate=1e-4,3e-4 (repeatable; "
                        "values are JSON or bare words; commas inside [..] do not split)")
    p.add_argument("--offset", type=int, default=0, help="first record of the first window (valid records)")
    p.add_argument("--window", type=int, default=None, help="edits per run (default: every record from --offset)")
    p.add_argument("--windows", type=int, default=1, help="consecutive windows of --window records (default 1)")
    p.add_argument("--seeds", default="0", help="comma list of seeds; each seeds the engine and torch (default 0)")
    p.add_argument("--checkpoints", default=None, help="edit counts to measure at too (lifelong curves), e.g. 10,30")
    p.add_argument("--allow-eval", action="store_true",
                   help="permit runs on the evaluation records (ZsRE 0-299, COUNTERFACT 75-174), e.g. for the "
                        "ablation; without it such a grid is refused, so settings are never tuned on them")
    p.add_argument("--out", required=True, help="the sweep's JSONL file: rows are appended; an existing file resumes")
    p.add_argument("--retry-failed", action="store_true", help="also re-run the runs whose row in --out failed")
    p.add_argument("--report", default=None, help="write one self-contained HTML report (table and curves) here")
    p.add_argument("--address", default=None,
                   help="join a running Ray cluster: auto or HOST:PORT (default: start Ray on this machine)")
    p.add_argument("--workers", type=int, default=None,
                   help="Ray workers (default: one per core here, or as many as the cluster's CPUs / GPUs hold)")
    p.add_argument("--dry-run", action="store_true", help="list the grid's runs and exit (needs no Ray)")
    p.add_argument("--model", default="default", help="'default' (embedded SmolLM2-135M), a HF folder or a .gguf file")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                   help="cuda: each worker takes one GPU (its Ray resource)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16", "auto"])
    p.add_argument("--threads", type=int, default=int(os.environ.get("ELDER_THREADS", "1")),
                   help="torch CPU threads per run (and the CPUs each worker declares to Ray); default 1")


run_sweep.configure = _configure
