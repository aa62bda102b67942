"""Bundles: one portable file with the current engine state, its edit list and model fingerprint.

A bundle is an ELDER state file (safetensors, JSON in the header; see `state.py`) with extras:
- tensors `base/<name>`: the history's base state, so an imported history can roll back and
  replay down to "before any edit";
- tensors `rng_after/<seq>`: each edit's engine RNG, needed for exact replays;
- header key `bundle`: model identity, every edit's full record, the applied chain, and a
  SHA-256 over all tensor bytes (safetensors checks sizes, not contents).

Importing builds the new history in a temporary file next to the target and renames it into
place at the end, so a failed import leaves nothing behind and never touches an existing file.
"""

from __future__ import annotations

import glob
import hashlib
import os
import sqlite3
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from ..durable import fsync_dir, fsync_file
from ..editing.state import apply_state, read_state_file, state_meta, state_tensors, write_state_file
from ..elder.config import ARCHITECTURE_FIELDS
from ..errors import HistoryError, StateFormatError
from . import snapshots as snap
from .schema import EditRow, Info, ModelRow
from .store import Store

BUNDLE_FORMAT = "elder-bundle"
BUNDLE_VERSION = 1
_ROW_FIELDS = ("seq", "prompt", "target", "train_paraphrases", "locality_prompts", "preset", "settings", "profile",
               "engine", "status", "old_answer", "chain_key", "code", "steps", "duration_s", "cost_s", "final_loss",
               "loss_curve")


def _tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        h.update(name.encode())
        h.update(tensors[name].contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def export_bundle(history, path: Path) -> None:
    from sqlalchemy import select
    editor = history.editor
    tensors = dict(state_tensors(editor))
    with history._store.read() as s:
        base_tensors, base_meta = snap.read_state(s, snap.BASE_KEY)
        base_config = base_meta["config"]
        rows = list(s.scalars(select(EditRow).order_by(EditRow.seq)))
    tensors.update({f"base/{k}": v for k, v in base_tensors.items()})
    records = []
    for r in rows:
        tensors[f"rng_after/{r.seq}"] = torch.frombuffer(bytearray(r.rng_after), dtype=torch.uint8)
        rec = {k: getattr(r, k) for k in _ROW_FIELDS}
        rec["subject"] = r.subject or ""   # absent from bundles written before schema 2
        rec["created_at"] = r.created_at.isoformat()
        records.append(rec)
    meta = state_meta(editor)
    meta["bundle"] = {
        "format": BUNDLE_FORMAT, "version": BUNDLE_VERSION, "model": dict(history.model_info),
        "exported_at": datetime.now(timezone.utc).isoformat(), "chain": history.chain, "edits": records,
        "base_edits": list(history._base_edits), "base_config": base_config,
        "keyframe_budget_s": history.keyframe_budget_s, "sha256": _tensor_digest(tensors),
    }
    try:
        write_state_file(path, tensors, meta)
    except OSError as exc:
        raise HistoryError(f"Cannot write the bundle {path}: {exc.strerror or exc}. Nothing was written.") from None


def read_bundle(path: Path, fingerprint: str | None = None) -> tuple[dict, dict]:
    """Read and verify a bundle: (tensors, meta). Refuses damaged files and other models'."""
    tensors, meta = read_state_file(path)  # StateFormatError for truncated / non-state files
    info = meta.get("bundle")
    if not isinstance(info, dict) or info.get("format") != BUNDLE_FORMAT:
        raise StateFormatError(f"{path} is an ELDER state but not a history bundle; load it with ElderEditor.from_state.")
    if int(info.get("version", 0)) > BUNDLE_VERSION:
        raise StateFormatError(f"{path} was written by a newer ELDER Workbench (bundle format {info.get('version')}).")
    if _tensor_digest(tensors) != info.get("sha256"):
        raise StateFormatError(f"{path} is damaged: its contents do not match its checksum.")
    theirs = info.get("model", {}).get("fingerprint") or meta.get("model_fingerprint")
    if fingerprint and theirs != fingerprint:
        name = info.get("model", {}).get("display_name", "another model")
        raise StateFormatError(f"{path} was made with the model '{name}' (fingerprint {str(theirs)[:12]}…), not the "
                               f"loaded one ({fingerprint[:12]}…). Load that model to use this bundle.")
    return tensors, meta


def _state_part(tensors: dict) -> dict:
    return {k: v for k, v in tensors.items() if "/" not in k}


def load_bundle(path, loaded):
    """A fresh ElderEditor on `loaded` with the bundle's state; no database involved."""
    from ..editing.editor import ElderEditor
    from ..elder import ElderConfig

    tensors, meta = read_bundle(Path(path), loaded.fingerprint)
    editor = ElderEditor(loaded, ElderConfig.from_dict(meta["config"]))
    apply_state(editor, _state_part(tensors), meta)
    return editor


def import_bundle(cls, bundle_path: Path, db_path: Path, editor, **open_kwargs):
    """A new history at `db_path` holding the bundle's edits, its engine at the bundle's state."""
    tensors, meta = read_bundle(bundle_path, editor.loaded.fingerprint)
    info = meta["bundle"]
    mismatch = [k for k in ARCHITECTURE_FIELDS if meta["config"].get(k) != getattr(editor.config, k)]
    if mismatch:
        raise StateFormatError(f"{bundle_path} was made with other ELDER layer settings ({', '.join(mismatch)}).")
    db_path = db_path.expanduser().absolute()
    if db_path.exists() and db_path.stat().st_size > 0:
        raise HistoryError(f"{db_path} already exists; import the bundle into a new history file.")
    chain = [int(q) for q in info["chain"]]
    keys = snap.prefix_keys(chain)
    state = _state_part(tensors)
    base = {k.split("/", 1)[1]: v for k, v in tensors.items() if k.startswith("base/")}

    def fill(s) -> None:
        model = info["model"]
        s.add(ModelRow(id=1, fingerprint=model["fingerprint"], source=model.get("source", ""),
                       display_name=model.get("display_name", ""), model_type=model.get("model_type", ""),
                       config=info["base_config"]))
        s.add(Info(key="keyframe_budget_s", value=info.get("keyframe_budget_s", snap.DEFAULT_KEYFRAME_BUDGET_S)))
        s.add(Info(key="base_edits", value=info.get("base_edits", [])))
        for rec in info["edits"]:
            rng = tensors[f"rng_after/{rec['seq']}"].numpy().tobytes()
            created = datetime.fromisoformat(rec["created_at"])
            s.add(EditRow(**{k: rec[k] for k in _ROW_FIELDS}, subject=str(rec.get("subject") or ""),
                          rng_after=rng, created_at=created))
        snap.store_state(s, "base", snap.BASE_KEY, [], info["base_config"], snap.from_tensors(base))
        if chain:  # the bundle's state, kept as a keyframe (with no edits applied it is the base)
            snap.store_state(s, "keyframe", keys[-1], chain, meta["config"], snap.from_tensors(state))

    try:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_imports(db_path)
        fd, tmp = tempfile.mkstemp(dir=db_path.parent, prefix=db_path.name, suffix=".importing")
        os.close(fd)
    except OSError as exc:
        raise HistoryError(f"Cannot create {db_path}: {exc.strerror or exc}.") from None
    tmp = Path(tmp)
    renamed = False
    try:
        store, _ = Store.open(tmp, open_kwargs.get("timeout", 5.0), fill)
        store.close()  # checkpoints the WAL into the file
        _fold_wal(tmp)  # every committed page is in the main file now: nothing stays behind in tmp-wal
        if db_path.exists() and db_path.stat().st_size > 0:
            raise HistoryError(f"{db_path} appeared while importing; import into a new history file.")
        fsync_file(tmp)  # on disk before it gets its name
        os.replace(tmp, db_path)
        renamed = True
        fsync_dir(db_path.parent)
    except OSError as exc:
        raise HistoryError(f"Cannot import into {db_path}: {exc.strerror or exc}. Nothing was written.") from None
    finally:
        if not renamed:  # a failed import leaves nothing behind
            for p in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
                if p.exists():
                    p.unlink()
    return cls.open(db_path, editor, **open_kwargs)


STALE_IMPORT_S = 3600  # a temp file this old belongs to an import that was killed


def _remove_stale_imports(db_path: Path) -> None:
    """Temp files of imports into `db_path` that were killed (no cleanup runs on SIGKILL)."""
    now = time.time()
    for stale in db_path.parent.glob(f"{glob.escape(db_path.name)}*.importing*"):
        try:
            if now - stale.stat().st_mtime > STALE_IMPORT_S:
                stale.unlink()
        except OSError:
            pass


def _fold_wal(db: Path) -> None:
    """Make sure the database file alone holds every commit (its -wal file empty and removed)
    before the file is renamed: a -wal file does not follow a rename, and removing one that
    still holds commits would lose them."""
    wal, shm = Path(f"{db}-wal"), Path(f"{db}-shm")
    if wal.exists() and wal.stat().st_size > 0:
        conn = sqlite3.connect(db)
        try:
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            conn.close()
        if busy or (wal.exists() and wal.stat().st_size > 0):
            raise HistoryError(f"Cannot finish the import into {db.name}: its journal could not be folded into "
                               "the file (is another program using it?). Nothing was written.")
    for p in (wal, shm):  # empty now: they hold nothing
        if p.exists():
            p.unlink()
