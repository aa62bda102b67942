"""Files renamed into place are fsynced first (and their folder after); a bundle import folds
the journal into the file before the rename and removes nothing after it; the history's
per-connection PRAGMAs hold on every connection; a bundle's routing is part of its
architecture check."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from elder_engine import StateFormatError
from elder_engine.history import EditHistory
from elder_engine.history import store as store_mod
from elder_engine.editing.state import write_state_file
from history_helpers import edit, open_tiny, tiny_editor


@pytest.fixture
def calls(monkeypatch):
    """Every fsync (by path), rename and unlink, in order."""
    seen: list[tuple[str, str]] = []
    real_fsync, real_replace, real_rename, real_unlink = os.fsync, os.replace, os.rename, os.unlink

    def fsync(fd):
        seen.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(src, dst, *a, **k):
        seen.append(("rename", f"{os.path.abspath(src)} -> {os.path.abspath(dst)}"))
        return real_replace(src, dst, *a, **k)

    def rename(src, dst, *a, **k):
        seen.append(("rename", f"{os.path.abspath(src)} -> {os.path.abspath(dst)}"))
        return real_rename(src, dst, *a, **k)

    def unlink(path, *a, **k):
        seen.append(("unlink", os.path.abspath(path)))
        return real_unlink(path, *a, **k)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(os, "unlink", unlink)
    monkeypatch.setattr(Path, "unlink", lambda self, missing_ok=False: unlink(self) if self.exists() or not missing_ok
                        else None)
    return seen


def _renames(seen, target: Path):
    return [i for i, (kind, what) in enumerate(seen) if kind == "rename" and what.endswith(f"-> {target}")]


def test_state_file_is_fsynced_before_the_rename(tmp_path, calls):
    import torch

    path = tmp_path / "state.safetensors"
    write_state_file(path, {"x": torch.arange(4.0)}, {"format": "test"})
    (i,) = _renames(calls, path)
    tmp = calls[i][1].split(" -> ")[0]
    assert ("fsync", tmp) in calls[:i], calls  # the data, before the name points at it
    assert ("fsync", str(tmp_path)) in calls[i + 1:], calls  # the rename, after it


def test_bundle_import_syncs_and_removes_nothing_after_the_rename(tmp_path, calls):
    with open_tiny(tmp_path / "h.elderdb", tiny_editor()) as history:
        edit(history, 0)
        history.export_bundle(tmp_path / "b.elderbundle")
    calls.clear()
    target = tmp_path / "new.elderdb"
    EditHistory.import_bundle(tmp_path / "b.elderbundle", target, tiny_editor()).close()
    (i,) = _renames(calls, target)
    tmp = calls[i][1].split(" -> ")[0]
    assert ("fsync", tmp) in calls[:i] and ("fsync", str(tmp_path)) in calls[i + 1:], calls
    assert not any(kind == "unlink" and what.startswith(tmp) for kind, what in calls[i + 1:]), calls
    assert not os.path.exists(f"{tmp}-wal") and not os.path.exists(tmp)
    with sqlite3.connect(target) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("SELECT count(*) FROM edits").fetchone()[0] == 1


def test_gguf_cache_is_fsynced_before_it_gets_its_name(tmp_path, calls):
    from elder_engine.models.loading import LoadSettings, load_model
    from test_loading import write_tiny_gguf

    gguf = write_tiny_gguf(tmp_path / "tiny.gguf")
    load_model(gguf, LoadSettings(cache_dir=str(tmp_path / "cache")))
    (i,) = [i for i, (kind, what) in enumerate(calls) if kind == "rename" and ".tmp-" in what]
    tmp, folder = calls[i][1].split(" -> ")
    synced = {what for kind, what in calls[:i] if kind == "fsync"}
    written = {str(p).replace(folder, tmp) for p in Path(folder).iterdir()}
    assert written and written <= synced, (written - synced)
    assert tmp in synced and ("fsync", str(Path(folder).parent)) in calls[i + 1:]


def test_per_connection_pragmas_hold_on_every_connection(tmp_path):
    history = EditHistory.open(tmp_path / "h.elderdb", tiny_editor())
    engine = history._store.engine
    for _ in range(2):  # the first connection, then a new one after the pool dropped it
        raw = engine.raw_connection()
        try:
            cur = raw.cursor()
            assert cur.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
            assert cur.execute("PRAGMA journal_size_limit").fetchone()[0] == store_mod.WAL_LIMIT
            assert cur.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        finally:
            raw.close()
        engine.dispose()
    history.close()


def test_foreign_sqlite_file_is_still_refused_untouched(tmp_path):
    other = tmp_path / "other.sqlite"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE things (x)")
    db.commit()
    db.close()
    before = other.read_bytes()
    with pytest.raises(Exception, match="not an ELDER history"):
        EditHistory.open(other, tiny_editor())
    assert other.read_bytes() == before and not Path(f"{other}-wal").exists()


def test_bundle_with_other_routing_is_refused(tmp_path):
    keyed = tiny_editor(profile="keyed-experts", rank=8)  # the paper's layer shape, keyed routing
    with open_tiny(tmp_path / "k.elderdb", keyed) as history:
        edit(history, 0)
        history.export_bundle(tmp_path / "k.elderbundle")
    with pytest.raises(StateFormatError, match="routing"):
        EditHistory.import_bundle(tmp_path / "k.elderbundle", tmp_path / "p.elderdb", tiny_editor(profile="paper"))
    assert list(tmp_path.glob("p.elderdb*")) == []
