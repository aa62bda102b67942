"""Edit-history benchmark: storage per edit, rollback time, and what a revert does.

    ELDER_CACHE_DIR=~/.cache/elder_workbench .venv/bin/python benchmarks/history_bench.py \
        [--profile NAME] [--edits 100] [--revert-at 50] [--revert J ...] [--budget CPU_SECONDS] [--out FILE]

1. Applies `--edits` real ZsRE edits (dev split, records 0..N-1) through an EditHistory on the
   default model at default settings, keeping the exact state after each in memory.
2. Storage: the history file's size after closing, per edit, with a breakdown by kind of row,
   and what the alternatives would cost (a full state per edit; a lossless per-edit delta).
3. Rollback: reopens the history (a restart), then rolls back to the hardest points (just
   before each keyframe: the longest replays), some random ones and 0, timing each and checking
   that the engine is bit-identical to the state kept in step 1.
4. Revert: rolls back to `--revert-at` edits, then reverts each `--revert` edit in turn and
   measures whether the reverted prompt gives the original model's answer again and whether
   the other edits still hold (teacher-forced accuracy and exact match, before vs after).

One torch thread (the machine is shared; say so with the figures). The last stdout line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import sys
import tempfile
import time
import zlib
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from elder_engine import EditRequest, ElderEditor, dev_split, get_profile, load_edits, load_model  # noqa: E402
from elder_engine.history import EditHistory  # noqa: E402
from elder_engine.history.snapshots import encode_tensor  # noqa: E402
from elder_engine.evaluation.metrics import exact_match, mean, token_accuracy  # noqa: E402
from elder_engine.editing.state import state_tensors  # noqa: E402


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def snapshot(editor) -> dict:
    return {k: v.clone() for k, v in state_tensors(editor).items()}


def identical(editor, saved: dict) -> bool:
    now = state_tensors(editor)
    return now.keys() == saved.keys() and all(torch.equal(now[k], saved[k]) for k in now)


def xor_delta_bytes(a: dict, b: dict) -> int:
    """Lossless per-edit delta: XOR of the float bits, byte planes, zlib (the best we found)."""
    parts = []
    for k in sorted(b):
        x, y = a.get(k), b[k]
        if x is None or x.shape != y.shape or x.dtype != torch.float32:
            parts.append(y.contiguous().view(torch.uint8).numpy().tobytes())
            continue
        d = (x.view(torch.int32) ^ y.view(torch.int32)).contiguous().view(torch.uint8).numpy()
        parts.append(d.reshape(-1, 4).T.tobytes())
    return len(zlib.compress(b"".join(parts), 6))


def build(args, editor, db: Path, records) -> tuple[list[dict], list[float]]:
    history = EditHistory.open(db, editor, keyframe_budget_s=args.budget)
    states, seconds = [snapshot(editor)], []
    for i, r in enumerate(records, 1):
        t0 = time.perf_counter()
        for _ in history.edit(EditRequest(r.prompt, r.target, r.train_paraphrases)):
            pass
        seconds.append(time.perf_counter() - t0)
        states.append(snapshot(editor))
        if i % 10 == 0:
            log(f"  {i} edits, {history.storage_bytes() / 1e6:.1f} MB, last edit {seconds[-1]:.1f}s")
    history.close()
    return states, seconds


def storage(db: Path, n: int, states: list[dict]) -> dict:
    with sqlite3.connect(db) as conn:
        kinds = conn.execute("SELECT kind, count(*) FROM states GROUP BY kind").fetchall()
        blobs = conn.execute("SELECT count(*), sum(length(data)) FROM tensor_blobs").fetchone()
        edits_bytes = conn.execute("SELECT sum(length(rng_after)) + sum(length(loss_curve)) + sum(length(code)) "
                                   "+ sum(length(prompt)) FROM edits").fetchone()[0]
    size = db.stat().st_size
    full = [sum(len(encode_tensor(t)) for t in s.values()) for s in states[1::10]]
    deltas = [xor_delta_bytes(states[i - 1], states[i]) for i in range(1, len(states), 10)]
    return {
        "file_bytes": size, "edits": n, "kb_per_edit": size / n / 1e3,
        "states": dict(kinds), "tensor_blobs": {"count": blobs[0], "bytes": blobs[1]},
        "edit_rows_payload_bytes": edits_bytes,
        "raw_state_bytes": sum(t.numel() * t.element_size() for t in states[-1].values()),
        "compressed_state_bytes_mean": mean(full), "xor_delta_bytes_per_edit_mean": mean(deltas),
    }


def rollbacks(args, editor, db: Path, states: list[dict]) -> dict:
    t0 = time.perf_counter()
    history = EditHistory.open(db, editor)
    reopen_s = time.perf_counter() - t0
    assert identical(editor, states[-1]), "reopen did not restore the head exactly"
    with sqlite3.connect(db) as conn:
        keyframes = sorted(len(json.loads(c)) for (c,) in conn.execute("SELECT chain FROM states WHERE kind='keyframe'"))
    n = len(states) - 1
    hardest = [k - 1 for k in keyframes if k - 1 > 0] + ([n - 1] if n - 1 not in keyframes else [])
    rng = random.Random(0)
    targets = hardest + rng.sample(range(1, n), min(args.random_rollbacks, n - 1)) + [0, n]
    timings = []
    for k in targets:
        t0, c0 = time.perf_counter(), time.thread_time()
        for _ in history.rollback_to(k):
            pass
        dt, cpu = time.perf_counter() - t0, time.thread_time() - c0
        exact = identical(editor, states[k])
        timings.append({"to": k, "seconds": dt, "cpu_seconds": cpu, "exact": exact, "load": os.getloadavg()[0]})
        log(f"  rollback to {k:3d}: {dt:5.1f}s (cpu {cpu:4.1f}s, load {os.getloadavg()[0]:.1f}) "
            f"{'exact' if exact else 'NOT EXACT'}")
    history.close()
    secs = [t["seconds"] for t in timings]
    cpus = [t["cpu_seconds"] for t in timings]
    return {"reopen_seconds": reopen_s, "keyframes_at": keyframes, "max_seconds": max(secs),
            "mean_seconds": mean(secs), "max_cpu_seconds": max(cpus), "mean_cpu_seconds": mean(cpus), "all_exact": all(t["exact"] for t in timings), "rollbacks": timings}


def holds(editor, records) -> dict:
    pairs = [(r.prompt, r.target) for r in records]
    acc, _ = token_accuracy(editor, pairs)
    em, _ = exact_match(editor, pairs)
    return {"accuracy": acc, "em": em}


def reverts(args, editor, db: Path, records) -> dict:
    history = EditHistory.open(db, editor)
    for _ in history.rollback_to(args.revert_at):
        pass
    results = []
    for j in args.revert:
        live = [s for s in history.chain]
        before = holds(editor, [records[s - 1] for s in live])
        r = records[j - 1]
        t0 = time.perf_counter()
        for _ in history.revert(j):
            pass
        dt = time.perf_counter() - t0
        probe = editor.probe(r.prompt, r.target, max_new_tokens=16)
        others = [s for s in live if s != j]
        after = holds(editor, [records[s - 1] for s in others])
        # ZsRE asks about one fact several times in a row (e.g. records 47-49: Kyrre Nakkim's
        # mother). While another edit of the same subject is live, the reverted prompt is a
        # paraphrase of a fact that is still edited: it should keep that edit's answer, and only a
        # reverted edit with no such sibling can be expected to give the original answer.
        siblings = [s for s in others if r.subject and records[s - 1].subject == r.subject]
        sibling_targets = [records[s - 1].target for s in siblings]
        idx = {s: i for i, s in enumerate(live)}
        b_acc = [before["accuracy"][idx[s]] for s in others]
        b_em = [before["em"][idx[s]] for s in others]
        kept = sum(1 for a, b in zip(after["em"], b_em) if b == 1.0 and a == 1.0)
        res = {
            "reverted": j, "replayed_edits": len([s for s in live if s > j]), "seconds": dt,
            "reverted_prompt": r.prompt, "reverted_target": r.target,
            "reverted_gives_original_answer": probe.edited_output == probe.original_output,
            "live_edits_of_same_subject": siblings,
            "gives_a_live_sibling_answer": any(probe.edited_output.strip().startswith(t.strip()) for t in sibling_targets),
            "reverted_output": probe.edited_output, "original_output": probe.original_output,
            "reverted_fired": probe.fired, "reverted_nearest_prompt": probe.nearest_prompt,
            "reverted_target_accuracy_before": before["accuracy"][idx[j]],
            "reverted_target_em_before": before["em"][idx[j]],
            **{f"reverted_target_{k}_after": v[0] for k, v in holds(editor, [r]).items()},
            "others": len(others),
            "others_accuracy_before": mean(b_acc), "others_accuracy_after": mean(after["accuracy"]),
            "others_em_before": mean(b_em), "others_em_after": mean(after["em"]),
            "others_em_held": f"{kept}/{int(sum(b_em))}",
        }
        log("  " + json.dumps({k: v for k, v in res.items() if k not in ("reverted_prompt",)}))
        results.append(res)
    history.close()
    n = len(results)
    alone = [r for r in results if not r["live_edits_of_same_subject"]]
    summary = {
        "reverts": n, "original_answer_back": sum(r["reverted_gives_original_answer"] for r in results),
        "no_live_edit_of_same_subject": len(alone),
        "original_answer_back_when_no_sibling": sum(r["reverted_gives_original_answer"] for r in alone),
        "sibling_answer_when_sibling": sum(r["gives_a_live_sibling_answer"] for r in results
                                           if r["live_edits_of_same_subject"]),
        "deferred": sum(not r["reverted_fired"] for r in results),
        "target_em_gone": sum(r["reverted_target_em_after"] == 0.0 for r in results),
        "others_em_held": f"{sum(int(r['others_em_held'].split('/')[0]) for r in results)}/"
                          f"{sum(int(r['others_em_held'].split('/')[1]) for r in results)}",
    }
    return {"at": args.revert_at, "summary": summary, "reverts": results}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--edits", type=int, default=100)
    p.add_argument("--profile", default=None, help="ELDER profile (default: the engine's default profile)")
    p.add_argument("--budget", type=float, default=None, help="keyframe budget in seconds (default: the history's)")
    p.add_argument("--random-rollbacks", type=int, default=5)
    p.add_argument("--revert-at", type=int, default=50)
    # Two reverts that re-train later edits (40 and 10 of them), then the last ten edits one by
    # one (nothing to re-train: cheap, and more reverted prompts to look at).
    p.add_argument("--revert", type=int, nargs="*", default=[10, 40, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41])
    p.add_argument("--db", default=None, help="history file (default: a temporary one)")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    records = load_edits(dev_split("zsre"), limit=args.edits).records
    loaded = load_model("default")
    editor = ElderEditor(loaded, get_profile(args.profile) if args.profile else get_profile())
    db = Path(args.db or Path(tempfile.mkdtemp()) / "bench.elderdb")
    log(f"{len(records)} ZsRE edits, profile {editor.config.profile}, 1 torch thread, history {db}")
    t0 = time.perf_counter()
    states, seconds = build(args, editor, db, records)
    result = {"threads": torch.get_num_threads(), "profile": editor.config.profile, "load_at_start": os.getloadavg(),
              "edit_seconds_mean": mean(seconds), "build_seconds": time.perf_counter() - t0}
    result["storage"] = storage(db, len(records), states)
    log(f"storage: {result['storage']['kb_per_edit']:.0f} KB per edit ({result['storage']['file_bytes'] / 1e6:.1f} MB)")
    result["rollback"] = rollbacks(args, editor, db, states)
    log(f"rollback: max {result['rollback']['max_seconds']:.1f}s, mean {result['rollback']['mean_seconds']:.1f}s "
        f"(CPU max {result['rollback']['max_cpu_seconds']:.1f}s)")
    del states
    if args.revert:
        result["revert"] = reverts(args, editor, db, records)
    print(f"storage per edit: {result['storage']['kb_per_edit']:.0f} KB; "
          f"rollback max {result['rollback']['max_seconds']:.1f} s wall, {result['rollback']['max_cpu_seconds']:.1f} s CPU "
          "(1 torch thread)")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
