"""Keyframes and exact replay: how the history restores any point cheaply.

Why not one state per edit: with the paper's profile ELDER's experts and routers are shared,
so the state after edit k depends on every edit before it, and an edit changes about 240k of
the default model's 443k state floats (the two experts per layer it routes to, and every
router) by amounts that leave ~20 random mantissa bits each. A lossless per-edit delta
therefore costs ~750 KB (measured: XOR + byte planes + zlib), a full state ~1.35 MB compressed
(1.77 MB raw): neither fits a 300 KB/edit budget.

What we store instead:
- the edits themselves (prompt, target, paraphrases, preset, settings, the engine RNG after
  the edit, the torch thread count it was trained with), a few KB each;
- the base state (before any edit) and a *keyframe* whenever the replay cost of the edits
  since the last keyframe on the current chain reaches a budget (10 s for the paper's shared
  experts), so that no point is more than ~10 s of replay away from a stored state, whatever
  the edits cost. Keyed-routing profiles use 3 s (`default_keyframe_budget`): their keyframes
  add little beyond the edits' own experts, stored anyway, so short replays are cheap there. The
  cost of an edit is the CPU time of its training thread, not wall time: on a machine shared
  with other jobs wall time doubles when they run, which would double the keyframes (storage)
  for nothing; CPU time is what a replay costs on an idle machine;
- the head state (the current one), so that reopening needs no replay.

States are stored as one compressed blob per tensor, addressed by content (SHA-256, checked on
load): a tensor that two states share is stored once. That saves nothing for the paper
profile (every edit touches every layer's tensors) but everything for the keyed-experts
profile, whose state grows by one frozen expert set per edit: a keyframe there only adds the
tensors that changed since the previous one.

Restoring a point = load the nearest stored state at or before it on its chain, then replay
the edits in between with their own preset, settings and thread count. On CPU a replay of
edit k+1 on the bit-identical state k is bit-identical (tests check it on the tiny and the
default model; a same-chain replay's loss curve is also compared with the recorded one).

Trade-offs: storage per edit ~ keyframe size x (edit CPU seconds / budget) + what the profile
itself adds per edit; worst rollback ~ budget x (wall/CPU slowdown of a busy machine) plus one
load; a larger budget saves space and costs rollback time linearly. A revert must re-train
every later edit (inherent: later edits were trained on a state that included the reverted
one). Replays are exact with the same torch build and CPU kind; elsewhere they re-train
faithfully but may differ in the last bits, and the history warns.

Measured (benchmarks/history_bench.py: 100 ZsRE edits, default model, 1 torch thread, 2 shared
cores; every rollback checked bit-identical):
- keyed-experts (the default profile): ~208 KB/edit, of which ~170 KB are the edit's own
  frozen experts (inherent to the profile); rollback <= 10.6 s CPU;
- paper: 263-277 KB/edit (18 keyframes of ~1.34 MB; the count follows the measured CPU cost,
  which a busy machine inflates a little); rollback <= 10.4 s CPU, 15.3 s wall at load 2.7.
On a busy machine the wall time of a rollback is its CPU time times the slowdown (x2 at
load 7-8 on these 2 cores).
"""

from __future__ import annotations

import hashlib
import json
import struct
import time
import zlib
from contextlib import contextmanager
from typing import Iterator, Optional

import numpy as np
import torch
from sqlalchemy import delete, select
from sqlalchemy.orm import undefer

from ..editing.state import STATE_FORMAT, STATE_VERSION, apply_state, state_meta, state_tensors
from ..errors import HistoryError, StateFormatError
from .schema import StateRow, TensorBlob

DEFAULT_KEYFRAME_BUDGET_S = 10.0


KEYED_KEYFRAME_BUDGET_S = 3.0


def default_keyframe_budget(config) -> float:
    """Replay seconds between keyframes for a new history.

    Keyed and scoped routing freeze one expert set per edit and change little else (the scoped
    router only appends the edit's key and threshold), so a keyframe there
    costs only its manifest (one digest per tensor: it grows with the number of edits) on top
    of the new experts, which are stored anyway. A short budget then buys ~3 s rollbacks
    cheaply; keyframing every edit would make the manifests grow quadratically with the
    history (measured: +47 KB per edit at 100 edits). Shared experts (the paper) change
    wholesale, so each keyframe is a whole state: DEFAULT_KEYFRAME_BUDGET_S."""
    own_experts = getattr(config, "routing", "router") in ("keyed", "scoped")
    return KEYED_KEYFRAME_BUDGET_S if own_experts else DEFAULT_KEYFRAME_BUDGET_S


_MAGIC = b"ELDRST1\n"
_LEVEL = 6  # zlib: level 6 is ~1% smaller than 1 for ~50 ms more per state; space is the tighter budget

BASE_KEY = hashlib.sha256(b"elder-history-base").hexdigest()[:32]


# ------------------------------------------------------------------ chain keys
def child_key(parent: str, seq: int) -> str:
    """Key of a chain of applied edits, built edit by edit, so every prefix has one cheaply."""
    return hashlib.sha256(f"{parent}:{seq}".encode()).hexdigest()[:32]


def prefix_keys(chain: list[int]) -> list[str]:
    keys = [BASE_KEY]
    for seq in chain:
        keys.append(child_key(keys[-1], seq))
    return keys


# ------------------------------------------------------------------- the codec
def encode_tensor(t: torch.Tensor) -> bytes:
    """Lossless, compact: the tensor's bytes split into byte planes (all first bytes, then all
    second bytes, ...) so that float exponents line up and zlib finds them; then zlib."""
    t = t.detach().cpu().contiguous()
    raw = t.reshape(-1).view(torch.uint8).numpy()
    if t.element_size() > 1:
        raw = raw.reshape(-1, t.element_size()).T
    head = json.dumps([str(t.dtype).removeprefix("torch."), list(t.shape)]).encode()
    return _MAGIC + struct.pack("<I", len(head)) + head + zlib.compress(raw.tobytes(), _LEVEL)


def decode_tensor(blob: bytes) -> torch.Tensor:
    try:
        if blob[: len(_MAGIC)] != _MAGIC:
            raise ValueError("bad magic")
        (n,) = struct.unpack_from("<I", blob, len(_MAGIC))
        start = len(_MAGIC) + 4
        dtype, shape = json.loads(blob[start: start + n])
        body = zlib.decompress(blob[start + n:])
        dt = getattr(torch, dtype)
        size = torch.empty(0, dtype=dt).element_size()
        if len(body) != int(np.prod(shape, dtype=np.int64)) * size:
            raise ValueError("size does not match the header")
    except (ValueError, TypeError, AttributeError, struct.error, zlib.error) as exc:
        raise StateFormatError(f"A stored engine state is unreadable ({exc}); it is damaged.") from None
    if not body:
        return torch.empty(shape, dtype=dt)
    raw = np.frombuffer(body, dtype=np.uint8)
    if size > 1:
        raw = raw.reshape(size, -1).T
    return torch.from_numpy(raw.reshape(-1).copy()).view(dt).reshape(shape)


def tensor_digest(t: torch.Tensor) -> str:
    """Content address of a tensor: SHA-256 of its dtype, shape and bytes (~0.5 GB/s, so a
    whole state is hashed in milliseconds, and only tensors not stored yet get compressed)."""
    t = t.detach().cpu().contiguous()
    h = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().data)
    return h.hexdigest()[:32]  # 128 bits: plenty against collisions, and manifests stay small


Captured = tuple[dict[str, tuple[str, Optional[torch.Tensor]]], int]


def capture(editor, present: Optional[set] = None) -> Captured:
    """The engine's state as ({name: (digest, copy of the tensor)}, raw bytes). Tensors whose
    digest is in `present` (already stored) are not copied.

    Tensors are stored by content, so one that did not change between two stored states is
    stored once: nothing gained for the paper profile (an edit touches every layer's tensors),
    but the keyed-experts profile freezes one expert set per edit, and without this every
    keyframe would repeat all of them."""
    return from_tensors(state_tensors(editor), present)


def from_tensors(tensors: dict[str, torch.Tensor], present: Optional[set] = None) -> Captured:
    out = {}
    for name, t in tensors.items():
        d = tensor_digest(t)
        out[name] = (d, None if present is not None and d in present else t.detach().cpu().clone())
    return out, sum(t.numel() * t.element_size() for t in tensors.values())


def stored_digests(s) -> set[str]:
    return set(s.scalars(select(TensorBlob.digest)))


def store_state(s, kind: str, key: str, chain: list[int], config: dict, captured: Captured) -> None:
    """Add a state row (in the caller's transaction), compressing only the tensors not stored."""
    tensors, raw = captured
    present = set(s.scalars(select(TensorBlob.digest).where(TensorBlob.digest.in_({d for d, _ in tensors.values()}))))
    for d, t in tensors.values():
        if d not in present:
            if t is None:
                raise HistoryError("A tensor that was stored a moment ago is gone from the history file.")
            s.add(TensorBlob(digest=d, data=encode_tensor(t)))
            present.add(d)
    s.add(StateRow(kind=kind, chain_key=key, chain=list(chain), meta={"config": config},
                   tensors={name: d for name, (d, _) in tensors.items()}, raw_bytes=raw))


def read_state(s, key: str) -> tuple[dict[str, torch.Tensor], dict]:
    """A stored state's tensors (content checked against their digests) and its meta."""
    row = s.scalar(select(StateRow).where(StateRow.chain_key == key))
    wanted = set(row.tensors.values())
    blobs = {b.digest: b.data for b in s.scalars(
        select(TensorBlob).where(TensorBlob.digest.in_(wanted)).options(undefer(TensorBlob.data)))}
    if wanted - set(blobs):
        raise HistoryError("A stored engine state in the history is incomplete (missing tensors); the file is damaged.")
    try:
        decoded = {d: decode_tensor(blob) for d, blob in blobs.items()}
    except StateFormatError as exc:
        raise HistoryError(f"The history file is damaged: {exc}") from None
    if any(tensor_digest(t) != d for d, t in decoded.items()):
        raise HistoryError("A stored engine state in the history is damaged (checksum mismatch). "
                           "Restore a backup; an exported bundle can be imported into a new history.")
    out, used = {}, set()
    for name, d in row.tensors.items():  # equal tensors (zeros...) share a blob, not memory
        out[name] = decoded[d].clone() if d in used else decoded[d]
        used.add(d)
    return out, row.meta


def collect_garbage(s) -> None:
    """Drop the blobs no state refers to any more (after states were deleted)."""
    used: set[str] = set()
    for (names,) in s.execute(select(StateRow.tensors)):
        used.update(names.values())
    s.execute(delete(TensorBlob).where(TensorBlob.digest.not_in(used)))


def apply_tensors(editor, tensors: dict[str, torch.Tensor], config: dict, edits: list[dict]) -> None:
    meta = {"format": STATE_FORMAT, "version": STATE_VERSION, "config": config, "edits": edits,
            "model_fingerprint": getattr(editor.loaded, "fingerprint", None),
            "model_type": editor.model.config.model_type}
    apply_state(editor, tensors, meta)


class CpuClock:
    """Adds up the CPU time of this thread spent inside a generator (an edit's training), not
    the time its consumer spends between events."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def run(self, events: Iterator) -> Iterator:
        try:
            while True:
                t = time.thread_time()
                try:
                    event = next(events)
                except StopIteration:
                    return
                finally:
                    self.seconds += time.thread_time() - t
                yield event
        finally:
            events.close()


# ---------------------------------------------------------------- engine guard
class EngineGuard:
    """The engine's whole state (tensors, settings, edit list), to put back when a history
    operation fails or is cancelled. It goes through the state API rather than
    `ElderEditor.snapshot()`, which only undoes appends: a rollback may also load an earlier
    state (a shorter expert pool for keyed profiles)."""

    def __init__(self, editor) -> None:
        self.editor = editor
        self.tensors = {k: v.clone() for k, v in state_tensors(editor).items()}
        self.meta = state_meta(editor)
        self.edits = list(editor.edits)

    def restore(self) -> None:
        apply_state(self.editor, self.tensors, self.meta)
        self.editor.edits = list(self.edits)


@contextmanager
def replay_conditions(editor, engine: dict) -> Iterator[None]:
    """Train as the edit was first trained: its torch thread count and lower-block caching."""
    threads = int(engine.get("threads") or 0)
    old_threads = torch.get_num_threads()
    old_cache = editor.cache_lower_blocks
    if threads and threads != old_threads:
        torch.set_num_threads(threads)
    editor.cache_lower_blocks = bool(engine.get("cache_lower_blocks", old_cache))
    try:
        yield
    finally:
        editor.cache_lower_blocks = old_cache
        if torch.get_num_threads() != old_threads:
            torch.set_num_threads(old_threads)


def engine_conditions(editor) -> dict:
    """What a replay must reproduce, recorded with every edit."""
    p = next(iter(editor.parameters()), None)
    return {"threads": torch.get_num_threads(), "cache_lower_blocks": bool(editor.cache_lower_blocks),
            "device": str(editor.device), "dtype": str(p.dtype).removeprefix("torch.") if p is not None else "",
            "torch": torch.__version__}


def rng_bytes(editor) -> bytes:
    return bytes(editor.tuner.generator.get_state().numpy().tobytes())


def set_rng(editor, blob: Optional[bytes]) -> None:
    if blob:
        editor.tuner.generator.set_state(torch.frombuffer(bytearray(blob), dtype=torch.uint8))
