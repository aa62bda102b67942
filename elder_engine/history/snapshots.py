"""Keyframes and exact replay: how the history restores any point cheaply.

Why not one state per edit: ELDER's experts and routers are shared, so the state after edit k
depends on every edit before it, and an edit changes about 240k of the default model's 443k
state floats (the two experts per layer it routes to, and every router) by amounts that leave
~20 random mantissa bits each. A lossless per-edit delta therefore costs ~750 KB (measured,
XOR + byte planes + zlib), a full state ~1.35 MB compressed (1.77 MB raw): neither fits the
300 KB/edit budget.

What we store instead:
- the edits themselves (prompt, target, paraphrases, preset, settings, engine RNG after it),
  a few KB each;
- the base state (before any edit) and a *keyframe* (full compressed state) whenever the
  replay cost of the edits since the last keyframe on the current chain reaches a budget
  (default 10 s); so a keyframe holds ~10 s of replay, whatever the edits cost. The cost of an
  edit is the CPU time of its training thread, not wall time: on a machine shared with other
  jobs wall time doubles when they run, which would double the number of keyframes (storage)
  for nothing; CPU time is what a replay costs on an idle machine;
- the head state (the current one) so that reopening needs no replay.

Restoring a point = load the nearest stored state at or before it on its chain, then replay
the edits in between with their own preset, settings and torch thread count. On CPU a replay
of edit k+1 on the bit-identical state k is bit-identical (tests check it; the loss curve of a
same-chain replay is compared with the recorded one as a guard). Trade-offs: storage per edit
~ keyframe size x (edit seconds / budget), worst rollback ~ budget + one load; a larger budget
saves space and costs time linearly (and a busy machine stretches the replay's wall time). Replays are exact only with the same torch build and CPU
kind; on another machine they are re-trained faithfully but may differ in the last bits (the
history then warns).
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

from ..errors import HistoryError, StateFormatError
from ..state import STATE_FORMAT, STATE_VERSION, apply_state, state_tensors
from .schema import StateRow, TensorBlob

DEFAULT_KEYFRAME_BUDGET_S = 10.0
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


def digest(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def capture(editor) -> tuple[dict[str, tuple[str, bytes]], int]:
    """The engine's state, one encoded blob per tensor: ({name: (sha256, blob)}, raw bytes).

    Blobs are stored by content, so a tensor that did not change between two stored states is
    stored once: nothing for the paper profile (an edit touches every layer's tensors), but
    the keyed-experts profile freezes one expert set per edit, and without this every keyframe
    would repeat all of them."""
    return encode_all(state_tensors(editor))


def encode_all(tensors: dict[str, torch.Tensor]) -> tuple[dict[str, tuple[str, bytes]], int]:
    blobs = {name: encode_tensor(t) for name, t in tensors.items()}
    return ({name: (digest(b), b) for name, b in blobs.items()},
            sum(t.numel() * t.element_size() for t in tensors.values()))


def store_state(s, kind: str, key: str, chain: list[int], config: dict, captured) -> None:
    """Add a state row (in the caller's transaction), storing only the blobs not yet stored."""
    blobs, raw = captured
    digests = {d for d, _ in blobs.values()}
    present = set(s.scalars(select(TensorBlob.digest).where(TensorBlob.digest.in_(digests))))
    for d, blob in blobs.values():
        if d not in present:
            s.add(TensorBlob(digest=d, data=blob))
            present.add(d)
    s.add(StateRow(kind=kind, chain_key=key, chain=list(chain), meta={"config": config},
                   tensors={name: d for name, (d, _) in blobs.items()}, raw_bytes=raw))


def read_state(s, key: str) -> tuple[dict[str, torch.Tensor], dict]:
    """A stored state's tensors (checksums verified) and its meta."""
    row = s.scalar(select(StateRow).where(StateRow.chain_key == key))
    wanted = set(row.tensors.values())
    blobs = {b.digest: b.data for b in s.scalars(
        select(TensorBlob).where(TensorBlob.digest.in_(wanted)).options(undefer(TensorBlob.data)))}
    if wanted - set(blobs):
        raise HistoryError("A stored engine state in the history is incomplete (missing tensors); the file is damaged.")
    return {name: decode_checked(blobs[d], d) for name, d in row.tensors.items()}, row.meta


def collect_garbage(s) -> None:
    """Drop the blobs no state refers to any more (after states were deleted)."""
    used: set[str] = set()
    for (names,) in s.execute(select(StateRow.tensors)):
        used.update(names.values())
    s.execute(delete(TensorBlob).where(TensorBlob.digest.not_in(used)))


def decode_checked(blob: bytes, sha256: str) -> torch.Tensor:
    if digest(blob) != sha256:
        raise HistoryError("A stored engine state in the history is damaged (checksum mismatch). "
                           "Restore a backup; an exported bundle can be imported into a new history.")
    return decode_tensor(blob)


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
    """Everything a failed or cancelled history operation must put back: the engine's
    snapshot plus the settings a keyframe load may have replaced."""

    def __init__(self, editor) -> None:
        self.editor = editor
        self.snap = editor.snapshot()
        self.config = editor.tuner.config_elder
        self.layers = [(dict(layer.top_k), dict(layer.scale)) for layer in editor.tuner.elder_layers]

    def restore(self) -> None:
        self.editor.restore(self.snap)
        self.editor.tuner.config_elder = self.config
        for layer, (top_k, scale) in zip(self.editor.tuner.elder_layers, self.layers):
            layer.top_k.clear(); layer.top_k.update(top_k)
            layer.scale.clear(); layer.scale.update(scale)


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
