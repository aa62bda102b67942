"""Kill -9 a real subprocess in the middle of edits, several times: the file must stay
consistent (PRAGMA integrity_check), reopen, and hold exactly the committed edits with the
exact state they imply."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from elder_engine import EditRequest
from history_helpers import open_tiny, reference_state, run, same_state, state, tiny_editor


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


def start(mode: str, db: Path):
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
    with sqlite3.connect(db) as conn:
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
