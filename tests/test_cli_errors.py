"""The command line never prints a traceback for bad input: each bad argument or file gives one
line on stderr that says what is wrong, exit code 2, and leaves every existing file
byte-identical. Argument and file-type errors are found before any model loads.

Each case runs in its own process: forked from the test (everything already imported, so a
case takes milliseconds instead of the ~10 s of a fresh interpreter), with its own stdout and
stderr, and an uncaught exception printed as the interpreter would print it. Two cases also run
through a real `python -m elder_engine` to show the entry point behaves the same.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import traceback
from contextlib import closing
from pathlib import Path

import pytest

from history_helpers import edit, open_tiny, tiny_editor

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "resources" / "samples" / "zsre_sample.json"
MODEL_LOADED = "MODEL WAS LOADED"


def run_forked(argv: list[str], cwd: Path, block_model: bool, as_nobody: bool = False,
               cache: str | None = None) -> tuple[int, str, str]:
    """`python -m elder_engine ARGV` in a forked child: (exit code, stdout, stderr)."""
    import tempfile

    out_fd, out_name = tempfile.mkstemp(prefix="cli-case-", suffix=".out")
    err_fd, err_name = tempfile.mkstemp(prefix="cli-case-", suffix=".err")
    out_path, err_path = Path(out_name), Path(err_name)
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.chdir(cwd)
            if cache:
                os.environ["ELDER_CACHE_DIR"] = cache
            os.dup2(out_fd, 1), os.dup2(err_fd, 2)
            if as_nobody:  # an unprivileged user: root would write a read-only file anyway
                os.setgid(65534), os.setuid(65534)
            sys.stdout, sys.stderr = open(1, "w", closefd=False), open(2, "w", closefd=False)
            from elder_engine.cli import common, main as cli
            from elder_engine.models import loading

            if block_model:  # any attempt to load a model is a failure of the case
                def refuse(*_a, **_k):
                    print(MODEL_LOADED, file=sys.stderr)
                    sys.stderr.flush()
                    os._exit(99)
                loading.load_model = refuse
                common.open_model = refuse
            try:
                code = cli.main(argv)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                traceback.print_exc()  # what the interpreter would print
                code = 1
        finally:
            try:
                sys.stdout.flush(), sys.stderr.flush()
            finally:
                os._exit(code)
    os.close(out_fd), os.close(err_fd)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    try:
        return code, out_path.read_text(errors="replace"), err_path.read_text(errors="replace")
    finally:
        out_path.unlink(), err_path.unlink()


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"


@pytest.fixture(scope="module")
def files():
    """Every bad file the cases use, plus a good tiny history and its bundle; in a folder every
    user may read (the read-only case runs as an unprivileged user) but only its owner write."""
    import shutil
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="cli_bad-"))
    os.chmod(d, 0o755)
    try:
        yield _make_files(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _make_files(d: Path) -> Path:
    (d / "notsqlite.db").write_text("these are my notes, not a database\n" * 20)
    with closing(sqlite3.connect(d / "other.sqlite")) as db, db:
        db.execute("CREATE TABLE things (x)")
    (d / "nonutf8.json").write_bytes(b'[{"prompt": "caf\xe9 \xff\xfe", "target": "x"}]')
    (d / "wrongtypes.json").write_text(json.dumps([{"prompt": 1, "target": ["x"]}, {"prompt": None}]))
    (d / "notalist.json").write_text(json.dumps({"prompt": {"a": 1}, "target": 3}))
    (d / "missing_columns.csv").write_text("prompt,answer\nthe sky is,blue\n")
    (d / "empty.json").write_text("")
    (d / "folder").mkdir()
    (d / "folder" / "tokenizer.json").write_text("{}")  # a folder without config.json
    (d / "not_a_model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}" + b"\0" * 8)
    from test_loading import truncate, write_tiny_gguf
    half = write_tiny_gguf(d / "half.gguf")
    truncate(half)
    good = d / "good.elderdb"
    with open_tiny(good, tiny_editor()) as history:
        edit(history, 0)
        history.export_bundle(d / "good.elderbundle")
    data = (d / "good.elderbundle").read_bytes()
    (d / "truncated.elderbundle").write_bytes(data[: len(data) // 2])
    newer = d / "newer.elderdb"
    newer.write_bytes(good.read_bytes())
    with closing(sqlite3.connect(newer)) as db, db:
        db.execute("UPDATE info SET value = 99 WHERE key = 'schema_version'")
    (d / "locked.elderdb").write_bytes(good.read_bytes())
    from test_loading import save_tiny
    save_tiny(d / "truncated_model")
    truncate(d / "truncated_model" / "model.safetensors")
    for p in d.rglob("*"):  # readable by all, writable by the owner only
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    return d


EVAL = ["eval", "--data", str(SAMPLE), "--limit", "1"]

# (id, argv, words the one line must contain, whether it must be refused before a model loads)
CASES = [
    ("unknown-profile", EVAL + ["--profile", "nope"], ["nope", "paper"], True),
    ("set-value-out-of-range", EVAL + ["--set", "elder.top_k=9"], ["top_k", "9"], True),
    ("set-unknown-key", EVAL + ["--set", "elder.nonsense=1"], ["nonsense", "max_steps"], True),
    ("set-wrong-type", EVAL + ["--set", "elder.top_k=abc"], ["top_k", "int"], True),
    ("set-without-equals", EVAL + ["--set", "elder.top_k"], ["METHOD.SETTING=VALUE"], True),
    ("set-unknown-method", EVAL + ["--set", "rome.x=1"], ["METHOD.SETTING=VALUE"], True),
    ("set-baseline-wrong-type", EVAL + ["--method", "all", "--set", "lora.learning_rate=fast"],
     ["learning_rate", "float"], True),
    ("set-method-not-run", EVAL + ["--set", "grace.eps_init=2"], ["grace", "--method"], True),
    ("unknown-method", EVAL + ["--method", "rome"], ["rome", "grace"], True),
    ("bad-checkpoints", EVAL + ["--checkpoints", "ten"], ["checkpoints", "10,20"], True),
    ("threads-zero", EVAL + ["--threads", "0"], ["threads", "at least 1"], True),
    ("threads-not-int", EVAL + ["--threads", "two"], ["threads", "int"], True),
    ("limit-negative", EVAL[:3] + ["--limit", "-1"], ["limit", "at least 0"], True),
    ("unknown-device", EVAL + ["--device", "tpu"], ["device", "cpu"], True),
    ("data-missing", ["eval", "--data", "missing.json"], ["missing.json", "no such file"], True),
    ("data-folder", ["eval", "--data", "folder"], ["folder", "is a folder"], True),
    ("data-not-utf8", ["eval", "--data", "nonutf8.json"], ["nonutf8.json"], True),
    ("data-json-wrong-types", ["eval", "--data", "wrongtypes.json"], ["wrongtypes.json"], True),
    ("data-json-not-a-list", ["eval", "--data", "notalist.json"], ["notalist.json"], True),
    ("data-csv-missing-columns", ["eval", "--data", "missing_columns.csv"], ["missing_columns.csv"], True),
    ("data-empty", ["eval", "--data", "empty.json"], ["empty.json"], True),
    ("out-under-a-file", EVAL + ["--out", "notsqlite.db/raw.json"], ["notsqlite.db", "not a folder"], True),
    ("bench-zero-edits", ["bench", "--edits", "0"], ["edits", "at least 1"], True),
    ("history-not-sqlite", ["history", "--db", "notsqlite.db", "list"], ["notsqlite.db", "not an ELDER history"], True),
    ("history-foreign-sqlite", ["history", "--db", "other.sqlite", "list"], ["other.sqlite", "not an ELDER history"],
     True),
    ("history-newer-schema", ["history", "--db", "newer.elderdb", "list"], ["newer", "format 99"], True),
    ("history-locked", ["history", "--db", "locked.elderdb", "rollback", "0"], ["locked"], True),
    ("edit-locked", ["edit", "--db", "locked.elderdb", "--prompt", "a", "--target", "b"], ["locked"], True),
    ("history-missing", ["history", "--db", "nothing.elderdb", "list"], ["nothing.elderdb", "no history"], True),
    ("history-folder", ["history", "--db", "folder", "list"], ["folder", "is a folder"], True),
    ("history-rollback-not-int", ["history", "--db", "good.elderdb", "rollback", "one"], ["K", "int"], True),
    ("history-rollback-negative", ["history", "--db", "good.elderdb", "rollback", "-3"], ["-3", "edit number"], True),
    ("history-revert-zero", ["history", "--db", "good.elderdb", "revert", "0"], ["revert 0", "1 or more"], True),
    ("history-unknown-action", ["history", "--db", "good.elderdb", "undo"], ["undo", "rollback"], True),
    ("import-missing-bundle", ["history", "--db", "new.elderdb", "import", "nothing.elderbundle"],
     ["nothing.elderbundle", "no such file"], True),
    ("import-truncated-bundle", ["history", "--db", "new.elderdb", "import", "truncated.elderbundle"],
     ["truncated.elderbundle"], True),
    ("import-not-a-bundle", ["history", "--db", "new.elderdb", "import", "notsqlite.db"], ["notsqlite.db"], True),
    ("import-into-existing", ["history", "--db", "good.elderdb", "import", "good.elderbundle"],
     ["good.elderdb", "already exists"], True),
    ("export-to-folder", ["history", "--db", "good.elderdb", "export", "folder"], ["folder", "is a folder"], True),
    ("edit-empty-prompt", ["edit", "--db", "new.elderdb", "--prompt", "", "--target", "x"], ["--prompt", "empty"],
     True),
    ("edit-whitespace-target", ["edit", "--db", "new.elderdb", "--prompt", "the sky is", "--target", " \t "],
     ["--target", "empty"], True),
    ("edit-empty-paraphrase", ["edit", "--db", "new.elderdb", "--prompt", "a", "--target", "b", "--paraphrase", ""],
     ["--paraphrase", "empty"], True),
    ("edit-not-sqlite", ["edit", "--db", "notsqlite.db", "--prompt", "a", "--target", "b"], ["not an ELDER history"],
     True),
    ("probe-empty-query", ["probe", "--db", "good.elderdb", "--query", "   "], ["--query", "empty"], True),
    ("probe-zero-tokens", ["probe", "--db", "good.elderdb", "--query", "q", "--max-new-tokens", "0"],
     ["max-new-tokens"], True),
    ("unknown-command", ["train"], ["train", "eval"], True),
    ("missing-required", ["edit", "--db", "new.elderdb"], ["--prompt"], True),
    # these reach the model loader, which refuses them before reading any weights
    ("model-missing-path", EVAL + ["--model", "no/such/model.gguf"], ["does not exist"], False),
    ("model-folder-without-config", EVAL + ["--model", "folder"], ["config.json"], False),
    ("model-gguf-cut-in-half", EVAL + ["--model", "half.gguf"], ["truncated or corrupt"], False),
    ("model-not-a-model-file", EVAL + ["--model", "not_a_model.safetensors"], ["neither a model folder"], False),
    ("model-truncated-safetensors", EVAL + ["--model", "truncated_model"], ["truncated or corrupt"], False),
    # these need the model's tokenizer: refused after it loads, before any history file is made
    ("edit-100k-prompt", ["edit", "--db", "new.elderdb", "--prompt", "The capital of France is " * 4000,
                          "--target", "Rome"], ["context"], False),
    ("edit-65-token-target", ["edit", "--db", "new.elderdb", "--prompt", "The capital of France is",
                              "--target", " ".join(["word"] * 66)], ["tokens long"], False),
    ("probe-100k-query", ["probe", "--db", "new.elderdb", "--query", "Water boils at " * 6700], ["context"], False),
    ("import-bundle-for-another-model", ["history", "--db", "new.elderdb", "import", "good.elderbundle"],
     ["made with the model"], False),
    ("history-read-only", ["history", "--db", "good.elderdb", "rollback", "0"], ["cannot be written or read"], True),
]
AS_NOBODY = {"history-read-only"}


@pytest.mark.parametrize("argv, words, before_load, as_nobody", [(*c[1:], c[0] in AS_NOBODY) for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2(request, files, argv, words, before_load, as_nobody):
    cache = None
    if not before_load:  # the child loads the default model: from the session's conversion cache
        if "--model" not in argv:
            request.getfixturevalue("default_model")  # converted once, here
        cache = request.getfixturevalue("default_model_cache_dir")
    hashes = {p.name: sha(p) for p in files.iterdir()}
    if as_nobody:  # read-only for everyone (root is also switched to an unprivileged user)
        os.chmod(files / "good.elderdb", 0o444)
        os.chmod(files, 0o555)
    locker = None
    if "locked.elderdb" in argv:
        locker = sqlite3.connect(files / "locked.elderdb", isolation_level=None)
        locker.execute("BEGIN IMMEDIATE")  # another program's write transaction
    try:
        code, out, err = run_forked(argv, files, block_model=before_load, as_nobody=as_nobody and os.geteuid() == 0,
                                    cache=cache)
    finally:
        if as_nobody:
            os.chmod(files, 0o755)
            os.chmod(files / "good.elderdb", 0o644)
        if locker is not None:
            locker.rollback()
            locker.close()
    lines = err.strip().splitlines()
    assert MODEL_LOADED not in err, f"a model was loaded before the error: {err}"
    assert "Traceback" not in err, err
    assert code == 2, (code, err)
    if not before_load:  # the loader's progress lines ("Loading ...") may come first
        assert all(not line.startswith("error") for line in lines[:-1]), err
        lines = lines[-1:]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert all(w.lower() in lines[0].lower() for w in words), (words, lines[0])
    assert out == ""
    assert {p.name: sha(p) for p in files.iterdir()} == hashes  # nothing created, nothing changed


@pytest.mark.parametrize("argv", [["eval", "--data", str(SAMPLE), "--profile", "nope"],
                                  ["eval", "--data", str(SAMPLE), "--set", "elder.top_k=9"]],
                         ids=["unknown-profile", "set-top-k-9"])
def test_the_real_entry_point_says_the_same(argv):
    proc = subprocess.run([sys.executable, "-m", "elder_engine", *argv], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("error:")
