"""Kill -9 a real subprocess in the middle of edits, several times: the file must stay
consistent (PRAGMA integrity_check), reopen, and hold exactly the committed edits with the
exact state they imply."""

from __future__ import annotations

import multiprocessing
import os
import random
import shutil
import signal
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest

from elder_engine import EditRequest
from elder_engine.history import EditHistory
from history_helpers import edit, open_tiny, reference_state, run, same_state, state, tiny_editor


def child(conn, mode: str, db: str) -> None:
    """The subprocess: forked from the test (so it starts in milliseconds, with everything
    imported), it edits until it is killed, reporting on a pipe."""
    import torch

    from elder_engine import EditStep
    from elder_engine.history import history as history_mod
    from history_helpers import FACTS

    torch.set_num_threads(1)
    if mode == "committing":  # stop inside the open write transaction of the next edit
        put_head = history_mod.EditHistory._put_head

        def slow_put_head(self, *args):
            put_head(self, *args)
            conn.send("committing")
            time.sleep(60)
        history_mod.EditHistory._put_head = slow_put_head
    history = open_tiny(db, tiny_editor(), keyframe_budget_s=0.0)
    i = history.head
    while True:
        for event in history.edit(EditRequest(*FACTS[i % len(FACTS)])):
            if mode == "training" and isinstance(event, EditStep):
                conn.send("training")
                time.sleep(60)
        i += 1
        conn.send("committed")


def no_open_handles(db: Path) -> None:
    """The test process must hold no SQLite connection to the history when it forks. A forked
    child inherits SQLite's per-process lock bookkeeping: seeing the parent's connection there,
    it believes it already holds the file's locks and takes none. When the parent's connection
    is then closed (a garbage collection may do it at any moment), the parent finds no other
    process holding the file, checkpoints and deletes the -wal file, and every commit the child
    makes afterwards goes to the deleted file: acknowledged, then lost at the kill."""
    fd_dir = Path("/proc/self/fd")
    if not fd_dir.is_dir():
        return  # no /proc (macOS, Windows): nothing to check with
    real = os.path.realpath(db)
    names = {real, f"{real}-wal", f"{real}-shm", f"{real}-journal"}
    held = []
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target in names:
            held.append(target)
    assert not held, f"the test process still has the history open before forking: {held}"


def start(mode: str, db: Path):
    no_open_handles(db)
    ctx = multiprocessing.get_context("fork")
    ours, theirs = ctx.Pipe()
    proc = ctx.Process(target=child, args=(theirs, mode, str(db)), daemon=True)
    proc.start()
    return proc, ours


def wait_for(proc, conn, word: str) -> None:
    while conn.poll(60):
        if conn.recv() == word:
            return
    raise AssertionError(f"the child sent no '{word}' (exit code {proc.exitcode})")


def kill(proc) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(30)
    assert proc.exitcode == -signal.SIGKILL


def check(db: Path) -> int:
    """Integrity, reopen, and the head state equals the committed edits trained from scratch."""
    with closing(sqlite3.connect(db)) as conn:  # closed now, not when collected (see no_open_handles)
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    editor = tiny_editor()
    with open_tiny(db, editor) as history:
        entries = history.entries()
        assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
        assert history.chain == [e.seq for e in entries]
        assert same_state(state(editor), reference_state(history, history.chain))
    return len(entries)


@pytest.mark.slow
def test_kill_mid_edit_leaves_a_consistent_history(tmp_path):
    db = tmp_path / "h.elderdb"
    rng = random.Random(0)
    committed = 0
    for _ in range(4):  # killed at a random moment: in training, in the commit, in between
        proc, conn = start("loop", db)
        wait_for(proc, conn, "committed")
        time.sleep(rng.uniform(0.0, 0.4))
        kill(proc)
        n = check(db)
        assert n > committed
        committed = n
    for mode in ("training", "committing"):
        proc, conn = start(mode, db)
        wait_for(proc, conn, mode)
        kill(proc)
        assert check(db) == committed  # the edit in flight left no trace
    with open_tiny(db, tiny_editor()) as history:  # and the history goes on from there
        run(history.rollback_to(1))
        assert history.head == 1


# ------------------------------------------------ kills in rollback, revert and bundle import
def op_child(conn, op: str, db: str, arg: str) -> None:
    """Forked: open the history, say 'started', run one operation to its end, say 'done'."""
    import torch

    from elder_engine.history import EditHistory

    torch.set_num_threads(1)
    if op == "import":
        conn.send("started")
        EditHistory.import_bundle(arg, db, tiny_editor()).close()
    else:
        history = open_tiny(db, tiny_editor(), keyframe_budget_s=1e9)  # no keyframes: every rollback replays
        conn.send("started")
        run(history.rollback_to(int(arg)) if op == "rollback" else history.revert(int(arg)))
        history.close()
    conn.send("done")
    time.sleep(60)


def outcome(db: Path):
    """Integrity, then (head, state, probe outputs) of the reopened history."""
    from history_helpers import probes

    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    editor = tiny_editor()
    with open_tiny(db, editor) as history:
        return history.head, history.chain, state(editor), probes(editor)


def same(a, b) -> bool:
    return a[0] == b[0] and a[1] == b[1] and same_state(a[2], b[2]) and a[3] == b[3]


@pytest.fixture(scope="module")
def four(tmp_path_factory):
    """A closed history of 4 edits (replayed from the base: slow enough to be interrupted), its
    bundle, and for each operation the outcome before and after it (run without a kill)."""
    d = tmp_path_factory.mktemp("four")
    with open_tiny(d / "h.elderdb", tiny_editor(), keyframe_budget_s=1e9) as history:
        for i in range(4):
            edit(history, i)
        history.export_bundle(d / "b.elderbundle")
    before = outcome(d / "h.elderdb")
    after, seconds = {}, {}
    for op, arg in (("rollback", "1"), ("revert", "2")):
        shutil.copy(d / "h.elderdb", d / f"{op}.elderdb")
        t0 = time.perf_counter()
        with open_tiny(d / f"{op}.elderdb", tiny_editor(), keyframe_budget_s=1e9) as history:
            run(history.rollback_to(1) if op == "rollback" else history.revert(2))
        seconds[op] = time.perf_counter() - t0
        after[op] = outcome(d / f"{op}.elderdb")
    t0 = time.perf_counter()
    EditHistory.import_bundle(d / "b.elderbundle", d / "imported.elderdb", tiny_editor()).close()
    seconds["import"] = time.perf_counter() - t0
    after["import"] = outcome(d / "imported.elderdb")
    return d, before, after, seconds


KILLS = [("rollback", "1")] * 4 + [("revert", "2")] * 3 + [("import", "")] * 3


@pytest.mark.slow
def test_kill_mid_rollback_revert_and_import(four, tmp_path):
    """10 SIGKILLs at random moments of a rollback, a revert and a bundle import: the file stays
    consistent and reopens either as before the operation or as after it, exactly."""
    d, before, after, seconds = four
    rng = random.Random(1)
    ctx = multiprocessing.get_context("fork")
    landed = {"before": 0, "after": 0}
    for n, (op, arg) in enumerate(KILLS):
        db = tmp_path / f"{n}.elderdb"
        if op == "import":
            source = str(d / "b.elderbundle")
        else:
            shutil.copy(d / "h.elderdb", db)
            source = arg
        no_open_handles(db)
        ours, theirs = ctx.Pipe()
        proc = ctx.Process(target=op_child, args=(theirs, op, str(db), source), daemon=True)
        proc.start()
        wait_for(proc, ours, "started")
        time.sleep(rng.uniform(0.0, 1.2 * seconds[op]))  # mostly mid-way, sometimes just after the end
        kill(proc)
        if op == "import" and not (db.exists() and db.stat().st_size > 0):
            landed["before"] += 1  # nothing at the target: the import never happened
            continue
        got = outcome(db)
        if same(got, after[op]):
            landed["after"] += 1
        else:
            assert op != "import", "a half-imported history was left at the target"
            assert same(got, before), f"kill {n} ({op}) left neither the state before nor after it"
            landed["before"] += 1
        # and the history goes on from there
        with open_tiny(db, tiny_editor()) as history:
            edit(history, 5)
            assert history.chain[:-1] == got[1] and history.head == history.chain[-1]
    assert sum(landed.values()) == len(KILLS)
    # a killed import's temp files are removed by the next import once they are old
    from elder_engine.history import bundle as bundle_mod
    left = list(tmp_path.glob("*.importing*"))
    for p in left:
        os.utime(p, (time.time() - 2 * bundle_mod.STALE_IMPORT_S,) * 2)
    for p in {p.name.split(".elderdb")[0] + ".elderdb" for p in left}:
        (tmp_path / p).unlink(missing_ok=True)
        EditHistory.import_bundle(d / "b.elderbundle", tmp_path / p, tiny_editor()).close()
    assert list(tmp_path.glob("*.importing*")) == []
    print(f"kills survived: {len(KILLS)} ({landed['before']} before the operation's commit, {landed['after']} after)")
