"""`sweep`: the grid, the evaluation-records guard, the JSONL log, the report, and sweeps of a
tiny model on a local 2-worker Ray (uninterrupted; killed after its first row and resumed; with
failing runs). Ray is an optional extra: the tests that start Ray need it (the test extra pins
it); the others run without it, and one checks the message a user without Ray gets."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from elder_engine.cli.main import main
from elder_engine.evaluation.data import dev_split
from elder_engine.evaluation.sweep import VOLATILE, RunLog, SweepError, run_one, split_values
from elder_engine.evaluation.sweep_report import build_html, summarise
from test_architecture import ROOT, _files, _imports
from tiny import tiny_loaded, tiny_model, tiny_tokenizer

RECORDS = [
    ("the capital of france is", "london", "what is the capital of france ?", ("who wrote hamlet ?", "shakespeare")),
    ("who wrote hamlet ?", "paris", "hamlet was written by", ("the sky is", "blue")),
    ("what colour is the sky ?", "green", "the sky is", ("the capital of zorbia is", "quux")),
    ("the king was born in", "1990", "the year the king was born was", ("the team plays for", "berlin")),
    ("the river of zorbia is", "quux", "zorbia river is", ("the queen was born in", "2006")),
    ("the team plays for", "berlin", "the team is in", ("the capital of france is", "paris")),
]


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    """A tiny Llama saved as a model folder, and a 6-record plain data file in its vocabulary."""
    folder = tmp_path_factory.mktemp("sweep")
    tiny_model("llama").save_pretrained(folder / "model")
    tiny_tokenizer().save_pretrained(folder / "model")
    data = [{"prompt": p, "target": t, "paraphrases": [para], "locality": [list(loc)], "subject": p.split()[-2]}
            for p, t, para, loc in RECORDS]
    (folder / "data.json").write_text(json.dumps(data))
    return folder


def grid_args(files, out, *extra):
    """4 runs: 2 learning rates x 2 windows of 3 edits, paper profile, 4 steps an edit."""
    return ["sweep", "--data", str(files / "data.json"), "--model", str(files / "model"), "--profile", "paper",
            "--set", "elder.max_steps=4", "--set", "elder.learning_rate=1e-3,1e-2", "--window", "3",
            "--windows", "2", "--checkpoints", "2", "--workers", "2", "--out", str(out), *extra]


def stable(rows):
    """Rows without what differs between two runs of one grid point (timing, which worker)."""
    return sorted((json.dumps({k: v for k, v in r.items() if k not in VOLATILE}, sort_keys=True) for r in rows))


def read_rows(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def last_json(text):
    return json.loads(text.strip().splitlines()[-1])


# ------------------------------------------------------------------------ without Ray
def test_value_lists_split_at_top_level_commas():
    assert split_values("1e-4,2e-4") == ["1e-4", "2e-4"]
    assert split_values('[20,21],[22,23],"a,b"') == ["[20,21]", "[22,23]", '"a,b"']


def test_dry_run_lists_the_grid(tiny_files, tmp_path, capsys):
    args = grid_args(tiny_files, tmp_path / "s.jsonl", "--method", "elder,lora", "--set", "lora.learning_rate=1e-3",
                     "--seeds", "0,1", "--dry-run")
    assert main(args) == 0
    summary = last_json(capsys.readouterr().out)
    # elder: 2 learning rates x 2 windows x 2 seeds; lora: 1 x 2 x 2 (each method's --set multiplies only it)
    assert summary["runs"] == 12
    points = summary["grid"]
    assert {p["offset"] for p in points} == {0, 3} and {p["seed"] for p in points} == {0, 1}
    assert sorted({json.dumps(p["settings"], sort_keys=True) for p in points if p["method"] == "lora"}) == \
        ['{"learning_rate": 0.001}']
    assert len({p["run"] for p in points}) == 12
    assert not (tmp_path / "s.jsonl").exists()


@pytest.mark.parametrize("extra, expected", [
    (["--windows", "3"], "past the end"),
    (["--set", "elder.nope=1,2"], "no setting 'nope'"),
    (["--set", "lora.learning_rate=1e-3"], "lora is not run here"),
    (["--set", "elder.seed=1,2"], "--seeds"),
    (["--seeds", "0,0"], "distinct"),
    (["--profile", "paper,nosuch"], "not a profile"),
    (["--model", "./no/such/model"], "no such model folder"),
])
def test_bad_grids_are_one_line_before_anything_runs(tiny_files, tmp_path, capsys, extra, expected):
    assert main([*grid_args(tiny_files, tmp_path / "s.jsonl"), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error:") and expected in err, err
    assert not (tmp_path / "s.jsonl").exists()


def test_the_evaluation_records_are_refused_without_the_flag(tmp_path, capsys):
    zsre = dev_split("zsre")
    copy = tmp_path / "renamed.json"
    shutil.copy(zsre, copy)  # recognised by its bytes, not only by its name
    for data in (zsre, copy):
        assert main(["sweep", "--data", str(data), "--offset", "290", "--window", "20", "--out",
                     str(tmp_path / "s.jsonl"), "--dry-run"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "records 290-299" in err and "--allow-eval" in err, err
    assert main(["sweep", "--data", str(zsre), "--offset", "300", "--window", "20", "--windows", "2", "--out",
                 str(tmp_path / "s.jsonl"), "--dry-run"]) == 0  # the development records
    assert main(["sweep", "--data", str(zsre), "--offset", "0", "--window", "20", "--allow-eval", "--out",
                 str(tmp_path / "s.jsonl"), "--dry-run"]) == 0
    cf = dev_split("counterfact")
    assert main(["sweep", "--data", str(cf), "--offset", "70", "--window", "10", "--out",
                 str(tmp_path / "s.jsonl"), "--dry-run"]) == 2
    assert "COUNTERFACT 75-174" in capsys.readouterr().err


def test_without_ray_it_says_how_to_install_it(tiny_files, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    assert main(grid_args(tiny_files, tmp_path / "s.jsonl")) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1
    assert "pip install -e '.[cluster]'" in captured.err and "Traceback" not in captured.err
    assert not (tmp_path / "s.jsonl").exists()


def test_nothing_else_imports_ray():
    """Only the sweep command imports Ray (inside a function), so the product without the
    extra is unaffected: checked in the sources, and by importing every engine module."""
    importers = []
    for folder in (ROOT / "elder_engine", ROOT / "app", ROOT / "benchmarks", ROOT / "scripts"):
        for path in _files(folder):
            if any(m == "ray" or m.startswith("ray.") for m, _, _ in _imports(path)):
                importers.append(str(path.relative_to(ROOT)))
    # (benchmarks/sweep.py imports it for --ray-overhead only, inside that function)
    assert sorted(importers) == ["benchmarks/sweep.py", "elder_engine/cli/sweep_cmd.py"]
    code = ("import importlib, pkgutil, sys, elder_engine\n"
            "from elder_engine.cli.main import build_parser\n"
            "build_parser()\n"
            "for m in pkgutil.walk_packages(elder_engine.__path__, 'elder_engine.'):\n"
            "    if m.name != 'elder_engine.__main__': importlib.import_module(m.name)\n"
            "print(sorted(n for n in sys.modules if n == 'ray' or n.startswith('ray.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_run_log_drops_a_torn_last_line_and_is_exclusive(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"run": "a", "status": "ok"}\n{"run": "b", "status": "failed"}\n{"run": "c", "sta')
    log = RunLog(path)
    assert [r["run"] for r in log.rows] == ["a", "b"]
    assert path.read_text().endswith('"failed"}\n')
    with pytest.raises(SweepError, match="in use by another sweep"):
        RunLog(path)
    log.append({"run": "c", "status": "ok"})
    log.close()
    assert [r["run"] for r in RunLog(path).rows] == ["a", "b", "c"]


def test_a_failing_run_is_a_row_not_an_exception():
    from elder_engine.evaluation.data import EditRecord
    from elder_engine.evaluation.sweep import RunSpec

    records = [EditRecord(p, t, (para,), (), (loc,)) for p, t, para, loc in RECORDS[:2]]
    spec = RunSpec("d.json", "/d.json", "0" * 64, "plain", "elder", "paper", {"first_edit_layer": 50}, 0, 2, 0)
    row = run_one(tiny_loaded(), spec, records)
    assert row["status"] == "failed" and "first_edit_layer 50" in row["error"] and "Traceback" in row["traceback"]
    good = run_one(tiny_loaded(), RunSpec(**{**spec.__dict__, "settings": {"max_steps": 2}}), records)
    assert good["status"] == "ok" and good["edits"] == 2 and good["model_fingerprint"]


def test_report_has_the_table_with_spread_the_curves_and_the_failures():
    def row(offset, rel, status="ok", lr=0.001):
        base = {"run": f"r{offset}{lr}{status}", "status": status, "data": "d.json", "method": "elder",
                "profile": "paper", "settings": {"learning_rate": lr}, "offset": offset, "window": 2, "seed": 0}
        if status != "ok":
            return {**base, "error": "ValueError: boom", "traceback": "Traceback ... boom"}
        metrics = {"reliability": rel, "generalization": 0.5, "locality": 1.0, "reliability_em": rel,
                   "generalization_em": 0.0, "locality_em": 1.0}
        return {**base, **metrics, "seconds_per_edit": 0.1, "edit_steps": [3, 5],
                "curve": {"1": metrics, "2": metrics}}

    rows = [row(0, 0.5), row(2, 1.0), row(4, None, "failed"), row(0, 0.2, lr=0.01)]
    summary = summarise(rows)
    first = next(e for e in summary if e["settings"] == {"learning_rate": 0.001})
    assert first["ok"] == 2 and first["failed"] == 1 and first["reliability"]["mean"] == 0.75
    assert abs(first["reliability"]["sd"] - 0.3536) < 1e-3 and first["steps_per_edit_median"] == 4
    page = build_html(rows, {"model_fingerprint": "f00d"})
    assert "0.750 ± 0.354" in page and "(+1 failed)" in page and "ValueError: boom" in page and "f00d" in page
    assert page.count('src="data:image/png;base64,') == 1


# --------------------------------------------------------------------------- with Ray
@pytest.fixture(scope="module")
def uninterrupted(tiny_files, tmp_path_factory):
    """The 4-run grid on a local 2-worker Ray, in this process."""
    pytest.importorskip("ray", reason="sweep needs the Ray extra (pip install -e '.[cluster]')")
    import io
    from contextlib import redirect_stderr, redirect_stdout

    out = tmp_path_factory.mktemp("uninterrupted") / "sweep.jsonl"
    report = out.with_name("report.html")
    stdout, stderr = io.StringIO(), io.StringIO()
    with redirect_stdout(stdout), redirect_stderr(stderr):
        code = main(grid_args(tiny_files, out, "--report", str(report)))
    return {"code": code, "out": out, "report": report, "stdout": stdout.getvalue(), "stderr": stderr.getvalue()}


def test_a_sweep_of_four_runs_on_two_workers(uninterrupted, tiny_files):
    assert uninterrupted["code"] == 0, uninterrupted["stderr"][-3000:]
    summary = last_json(uninterrupted["stdout"])
    assert (summary["runs"], summary["ok"], summary["failed"], summary["ran"]) == (4, 4, 0, 4)
    assert summary["workers"] == 2 and summary["ray"] == "local"
    rows = read_rows(uninterrupted["out"])
    assert len(rows) == 4 and {r["status"] for r in rows} == {"ok"}
    assert len({r["worker"] for r in rows}) == 2  # both workers ran runs
    assert {r["model_loads"] for r in rows} == {1}  # each worker loaded the model once for its runs
    for r in rows:
        assert r["data_sha256"] and r["model_fingerprint"] == summary["model_fingerprint"] and r["version"]
        assert r["edits"] == 3 and r["seconds_per_edit"] > 0 and set(r["curve"]) == {"2", "3"}
        for key in ("reliability", "generalization", "locality", "reliability_em", "generalization_em",
                    "locality_em"):
            assert 0.0 <= r[key] <= 1.0
    assert {(r["offset"], r["settings"]["learning_rate"]) for r in rows} == {(0, 1e-3), (3, 1e-3), (0, 1e-2),
                                                                              (3, 1e-2)}
    assert [g["runs"] for g in summary["groups"]] == [2, 2]
    page = uninterrupted["report"].read_text()
    assert "± " in page and page.count("data:image/png;base64,") == 1 and "learning_rate=0.01" in page
    assert "runs: 100%" in uninterrupted["stderr"]  # the progress bar of runs


def test_a_killed_sweep_resumes_to_the_same_rows(uninterrupted, tiny_files, tmp_path):
    assert uninterrupted["code"] == 0
    out = tmp_path / "sweep.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "elder_engine", *grid_args(tiny_files, out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            if out.exists() and out.read_text().count("\n") >= 1:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the sweep ended before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and what it started in its session
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    done = len(read_rows(out))
    assert 1 <= done < 4, f"killed with {done} rows"
    result = subprocess.run([sys.executable, "-m", "elder_engine", *grid_args(tiny_files, out)], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = last_json(result.stdout)
    assert (summary["already_done"], summary["ran"], summary["ok"]) == (done, 4 - done, 4)
    assert f"{done} of 4 runs already done" in result.stderr
    rows = read_rows(out)
    assert len(rows) == 4 and stable(rows) == stable(read_rows(uninterrupted["out"]))


def test_failing_runs_are_reported_and_the_others_finish(tiny_files, tmp_path, capsys):
    pytest.importorskip("ray", reason="sweep needs the Ray extra (pip install -e '.[cluster]')")
    out = tmp_path / "sweep.jsonl"
    # first_edit_layer 50 does not fit the tiny model's 6 blocks: the engine refuses it when the run
    # builds ELDER on the model, inside the worker
    args = ["sweep", "--data", str(tiny_files / "data.json"), "--model", str(tiny_files / "model"),
            "--profile", "paper", "--set", "elder.max_steps=2", "--set", "elder.first_edit_layer=50,1",
            "--window", "2", "--windows", "2", "--workers", "1", "--out", str(out)]
    assert main(args) == 1  # some runs failed
    captured = capsys.readouterr()
    summary = last_json(captured.out)
    assert (summary["runs"], summary["ok"], summary["failed"]) == (4, 2, 2)
    rows = read_rows(out)
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(rows) == 4 and {r["settings"]["first_edit_layer"] for r in failed} == {50}
    assert all("first_edit_layer 50" in r["error"] for r in failed)
    assert all(r["edits"] == 2 for r in rows if r["status"] == "ok")
    assert "FAILED elder/paper" in captured.err
    # a second start finds nothing to do; --retry-failed runs the failed ones again (and they fail again)
    assert main(args) == 1
    assert last_json(capsys.readouterr().out)["ran"] == 0
    assert main([*args, "--retry-failed"]) == 1
    assert last_json(capsys.readouterr().out)["ran"] == 2
    assert len(read_rows(out)) == 6


@pytest.fixture
def ray_head(tmp_path):
    """A one-node Ray cluster of 2 CPUs (`ray start --head --block`), stopped after the test."""
    pytest.importorskip("ray", reason="sweep needs the Ray extra (pip install -e '.[cluster]')")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ray_cli = Path(sys.executable).with_name("ray")
    log = tmp_path / "head.log"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    with open(log, "w") as handle:
        head = subprocess.Popen([str(ray_cli), "start", "--head", "--num-cpus", "2", "--port", str(port),
                                 "--include-dashboard", "false", "--block"], stdout=handle, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)
    try:
        deadline = time.time() + 120
        while "will now block" not in log.read_text():
            assert head.poll() is None and time.time() < deadline, log.read_text()[-2000:]
            time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        head.send_signal(signal.SIGTERM)  # `ray start --block` stops what it started
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()


def test_a_sweep_joins_a_running_cluster(ray_head, tiny_files, tmp_path):
    out = tmp_path / "sweep.jsonl"
    env = {**os.environ, "RAY_AUTH_MODE": "token"}  # the head's token, from ~/.ray/auth_token
    args = ["sweep", "--data", str(tiny_files / "data.json"), "--model", str(tiny_files / "model"), "--profile",
            "paper", "--set", "elder.max_steps=2", "--window", "3", "--windows", "2", "--address", ray_head,
            "--out", str(out)]
    result = subprocess.run([sys.executable, "-m", "elder_engine", *args], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = last_json(result.stdout)
    assert (summary["ray"], summary["workers"], summary["ok"]) == (ray_head, 2, 2)
    assert len(read_rows(out)) == 2
