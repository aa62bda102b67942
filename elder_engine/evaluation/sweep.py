"""Evaluation sweeps without Ray: the grid of runs, one run on a loaded model, and the JSONL log
of finished runs (the table and report over them: `sweep_report.py`).

A sweep is many lifelong runs (`comparison.run_method`): data files x methods x profiles x
settings x data windows x seeds. Each run is a `RunSpec`; its id is a hash of everything that
decides its result (data bytes, method, profile, settings, records, seed, checkpoints, model),
so a restarted sweep knows which runs of its grid are already in the log. `sweep_cmd` schedules
the runs on Ray; nothing here imports Ray.

Rows of the log (one JSON object per line, appended as runs finish): the grid point, every
metric, seconds per edit, the data hash, the model fingerprint, the package version, and for a
failed run its error; see `run_one`.
"""

from __future__ import annotations

import copy
import fcntl
import gc
import hashlib
import itertools
import json
import math
import os
import random
import socket
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from ..errors import ElderError, cause_line
from .metrics import METRICS

# Records the tables in the README are measured on; settings are never chosen on them.
# (split name -> [first, end) by position in the file.) ZsRE 300-599 and COUNTERFACT 0-74 are
# the development records.
EVALUATION_RECORDS = {"zsre": (0, 300), "counterfact": (75, 175)}
SPLIT_TITLES = {"zsre": "ZsRE", "counterfact": "COUNTERFACT"}

# Row fields that differ between two runs of the same grid point (timing, where it ran).
VOLATILE = ("seconds_per_edit", "seconds_per_edit_median", "edit_seconds", "wall_s", "finished", "worker")
SUMMARY_KEYS = (*METRICS, "seconds_per_edit", "steps_per_edit_median")


class SweepError(ElderError):
    """A sweep cannot start as asked (bad grid, guard, log in use); one line for the user."""


# ------------------------------------------------------------------------------ the grid
def split_values(text: str) -> list[str]:
    """'1e-4,2e-4' -> ['1e-4', '2e-4']; commas inside [...], {...} or "..." do not split."""
    parts, depth, quoted, current = [], 0, False, ""
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in "[{":
            depth += 1
        elif not quoted and ch in "]}":
            depth -= 1
        if ch == "," and depth == 0 and not quoted:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p.strip() for p in parts]


def _value(raw: str):
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw  # a bare word is a string, as in `eval --set`


def parse_set_axes(items: Sequence[str], methods: Sequence[str]) -> dict[str, list[tuple[str, list]]]:
    """['elder.learning_rate=1e-4,2e-4'] -> {'elder': [('learning_rate', [0.0001, 0.0002])]}."""
    from .methods import METHODS

    axes: dict[str, list[tuple[str, list]]] = {}
    for item in items or ():
        key, sep, raw = item.partition("=")
        method, dot, name = key.strip().partition(".")
        if not sep or not dot or not name or method not in METHODS:
            raise SweepError(f"--set {item!r}: write METHOD.SETTING=V1,V2,..., METHOD one of {', '.join(METHODS)}.")
        if method not in methods:
            raise SweepError(f"--set {item!r}: {method} is not run here (--method gives {', '.join(methods)}); "
                             "add it to --method or drop the setting.")
        values = split_values(raw)
        if any(not v for v in values):
            raise SweepError(f"--set {item!r}: an empty value; give V1,V2,... (JSON or bare words).")
        if any(n == name for n, _ in axes.get(method, ())):
            raise SweepError(f"--set {method}.{name} is given twice; put all its values in one --set.")
        axes.setdefault(method, []).append((name, [_value(v) for v in values]))
    return axes


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in split_values(text) if s]
    except ValueError:
        raise SweepError(f"--seeds {text!r}: give whole numbers separated by commas, e.g. 0,1,2.") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise SweepError(f"--seeds {text!r}: give distinct whole numbers, e.g. 0,1,2.")
    return seeds


@dataclass(frozen=True)
class DataFile:
    path: str  # absolute
    name: str
    format: str
    sha256: str
    count: int  # valid records


@dataclass
class RunSpec:
    """One lifelong run of a sweep: the grid point and what it runs on."""

    data: str  # file name, for tables
    data_path: str
    data_sha256: str
    data_format: str
    method: str
    profile: str
    settings: dict  # the method's --set values at this grid point
    offset: int  # first record (counting valid records, as `eval --offset`)
    window: int  # number of records
    seed: int
    checkpoints: list[int] = field(default_factory=list)
    model: str = "default"
    device: str = "cpu"
    dtype: str = "float32"

    @property
    def run_id(self) -> str:
        key = {k: v for k, v in asdict(self).items() if k not in ("data", "data_path")}
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]

    def point(self) -> dict:
        return {"run": self.run_id, "data": self.data, "method": self.method, "profile": self.profile,
                "settings": self.settings, "offset": self.offset, "window": self.window, "seed": self.seed}

    def label(self) -> str:
        sets = " ".join(f"{k}={v}" for k, v in sorted(self.settings.items()))
        return f"{self.method}/{self.profile}{(' ' + sets) if sets else ''} @{self.offset}+{self.window} s{self.seed}"


def group_key(row: dict) -> tuple:
    """What the table averages over: windows (offset) and seeds."""
    return (row["data"], row["method"], row["profile"], json.dumps(row["settings"], sort_keys=True))


def build_grid(data_files: Sequence[DataFile], methods: Sequence[str], profiles: Sequence[str],
               set_axes: dict, *, offset: int, window: Optional[int], windows: int, seeds: Sequence[int],
               checkpoints: Sequence[int], model: str, device: str, dtype: str) -> list[RunSpec]:
    """Every run, in a fixed order (data, method, profile, settings, window, seed)."""
    runs = []
    for data in data_files:
        size = window if window is not None else data.count - offset
        if size < 1:
            raise SweepError(f"--offset {offset}: {data.name} has only {data.count} records.")
        for w in range(windows):
            start = offset + w * size
            if start + size > data.count:
                raise SweepError(f"--window {size} --windows {windows} from --offset {offset}: window {w + 1} "
                                 f"(records {start}-{start + size - 1}) is past the end of {data.name} "
                                 f"({data.count} records).")
        for method in methods:
            names = [n for n, _ in set_axes.get(method, [])]
            combos = itertools.product(*[values for _, values in set_axes.get(method, [])])
            for profile, combo in itertools.product(profiles, list(combos)):
                for w, seed in itertools.product(range(windows), seeds):
                    runs.append(RunSpec(data.name, data.path, data.sha256, data.format, method, profile,
                                        dict(zip(names, combo)), offset + w * size, size, seed, list(checkpoints),
                                        model, device, dtype))
    return runs


# --------------------------------------------------------------- the evaluation-records guard
def _dev_hashes() -> dict[str, str]:
    from .data import dev_split

    out = {}
    for name in EVALUATION_RECORDS:
        try:
            out[hashlib.sha256(dev_split(name).read_bytes()).hexdigest()] = name
        except (ElderError, OSError):
            pass
    return out


def known_split(path: str, sha256: str) -> Optional[str]:
    """'zsre' / 'counterfact' when the file is (a copy of) that development split, by name or bytes."""
    name = Path(path).name
    for split in EVALUATION_RECORDS:
        if name == f"{split}_dev.json":
            return split
    return _dev_hashes().get(sha256)


def check_evaluation_records(report, windows: Sequence[Sequence]) -> None:
    """SweepError when a window (a list of EditRecords of `report`) holds records the README's
    tables are measured on."""
    split = known_split(report.path, report.sha256)
    if split is None:
        return
    lo, hi = EVALUATION_RECORDS[split]
    used = [r.source_index for records in windows for r in records if lo <= r.source_index < hi]
    if used:
        raise SweepError(
            f"records {min(used)}-{max(used)} of {Path(report.path).name} are evaluation records "
            f"({SPLIT_TITLES[split]} {lo}-{hi - 1}: the README's tables are measured on them, settings are "
            f"never chosen on them); sweep other records (--offset), or pass --allow-eval to run on them "
            "on purpose (e.g. the ablation).")


# ------------------------------------------------------------------------------ one run
def package_version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("elder-workbench")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _clean(obj):
    if isinstance(obj, float) and (math.isnan(obj) or math.isinf(obj)):
        return None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def _seed_everything(seed: int) -> None:
    import numpy
    import torch

    random.seed(seed)
    numpy.random.seed(seed)
    torch.manual_seed(seed)


def run_one(pristine, spec: RunSpec, records: Sequence, *, threads: int = 1) -> dict:
    """One lifelong run on a private copy of `pristine` (a LoadedModel: the baselines change
    their model in place, ELDER attaches to it). Never raises: a failure is a row with
    status "failed", its error line and the traceback's tail."""
    from ..elder import get_profile
    from .comparison import run_method

    t0 = time.perf_counter()
    row = {**spec.point(), "status": "ok",
           "data_sha256": spec.data_sha256, "data_format": spec.data_format,
           "model": getattr(pristine, "display_name", spec.model),
           "model_fingerprint": getattr(pristine, "fingerprint", None),
           "version": package_version(), "device": spec.device, "dtype": spec.dtype, "threads": threads,
           "checkpoints": spec.checkpoints}
    loaded = None
    try:
        if pristine is None:
            raise ElderError("the worker has no model")
        _seed_everything(spec.seed)
        elder_config = get_profile(spec.profile)
        settings = dict(spec.settings)
        if spec.method == "elder":
            elder_config = elder_config.replace(seed=spec.seed)
        loaded = copy.deepcopy(pristine)
        event = None
        for event in run_method(spec.method, loaded, records, elder_config=elder_config, settings=settings,
                                checkpoints=spec.checkpoints):
            pass
        run = event.detail["run"]
        row.update(run.figures())
        row.update(edit_seconds=run.result.edit_seconds, edit_steps=run.result.edit_steps,
                   curve={str(n): {k: getattr(r, k) for k in METRICS} for n, r in sorted(run.curve.items())},
                   skipped_records=[list(s) for s in run.result.skipped], method_settings=run.settings)
    except Exception as error:  # noqa: BLE001 - one failed run must not end the sweep
        row.update(status="failed", error=cause_line(error), traceback=traceback.format_exc()[-3000:])
    finally:
        del loaded
        gc.collect()
    row.update(wall_s=time.perf_counter() - t0, worker=f"{socket.gethostname()}:{os.getpid()}",
               finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    return _clean(row)


def failed_row(spec: RunSpec, error: str) -> dict:
    """The row of a run whose worker died under it (no result came back)."""
    return {**spec.point(), "status": "failed", "data_sha256": spec.data_sha256, "data_format": spec.data_format,
            "version": package_version(), "device": spec.device, "dtype": spec.dtype,
            "checkpoints": spec.checkpoints, "error": error, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


class SweepWorker:
    """One worker process of a sweep: loads the model once, then runs any number of runs on
    private copies of it. `sweep_cmd` makes it a Ray actor; it is a plain class here."""

    def __init__(self, model: str, device: str, dtype: str, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        self.model, self.device, self.dtype, self.threads = model, device, dtype, threads
        self.loaded = None
        self.load_error: Optional[str] = None
        self.loads = 0  # models loaded by this process: 1, however many runs it has done

    def info(self) -> dict:
        """Loads the model (once); its name and fingerprint, or the load error."""
        if self.loaded is None and self.load_error is None:
            from ..models.loading import LoadSettings, load_model

            self.loads += 1
            try:
                self.loaded = load_model(self.model, LoadSettings(device=self.device, dtype=self.dtype,
                                                                   threads=self.threads))
            except Exception as error:  # noqa: BLE001 - reported once by the driver
                self.load_error = str(error) if isinstance(error, ElderError) else cause_line(error)
        if self.loaded is None:
            return {"error": self.load_error, "worker": f"{socket.gethostname()}:{os.getpid()}"}
        return {"model": self.loaded.display_name, "model_fingerprint": self.loaded.fingerprint,
                "worker": f"{socket.gethostname()}:{os.getpid()}"}

    def run(self, spec: RunSpec, records: Sequence) -> dict:
        self.info()
        return {**run_one(self.loaded, spec, records, threads=self.threads), "model_loads": self.loads}


# ------------------------------------------------------------------------------ the log
class RunLog:
    """The sweep's JSONL file, held with an exclusive lock while the sweep runs. A line cut
    short by a kill is dropped when the file is opened again, so a resumed sweep's file holds
    only whole rows."""

    def __init__(self, path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(self.path, "a+b")
        try:
            fcntl.flock(self.handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.close()
            raise SweepError(f"--out {path} is in use by another sweep; wait for it or give another file.") from None
        self.rows: list[dict] = []
        self.handle.seek(0)
        data = self.handle.read()
        good = 0
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break
            try:
                row = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                break
            if isinstance(row, dict) and "run" in row:
                self.rows.append(row)
            good += len(line)
        if good < len(data):  # a torn or broken tail: keep what is whole before it
            self.handle.truncate(good)
            self.handle.flush()
            os.fsync(self.handle.fileno())

    def latest(self) -> dict[str, dict]:
        """run id -> its last row."""
        return {row["run"]: row for row in self.rows}

    def append(self, row: dict) -> None:
        self.handle.seek(0, os.SEEK_END)
        self.handle.write((json.dumps(row, sort_keys=True) + "\n").encode())
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.rows.append(row)

    def close(self) -> None:
        self.handle.close()
