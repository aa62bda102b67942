"""Bad input: every failure gives a clear error and leaves the existing history untouched."""

from __future__ import annotations

import shutil
import sqlite3

import pytest

from elder_engine import EditRequest, HistoryError, StateFormatError
from elder_engine.elder import ElderLayer
from elder_engine.history import EditHistory, load_bundle
from history_helpers import FACTS, edit, open_tiny, run, same_state, state, tiny_editor
from tiny import tiny_loaded


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    path = tmp_path_factory.mktemp("template") / "h.elderdb"
    editor = tiny_editor()
    with open_tiny(path, editor, keyframe_budget_s=0.0) as history:
        for i in range(3):
            edit(history, i)
    return path, state(editor)


@pytest.fixture
def three(tmp_path, template):
    """A closed history of 3 edits (a keyframe for each): a fresh copy, and its final state."""
    shutil.copy(template[0], tmp_path / "h.elderdb")
    return tmp_path / "h.elderdb", template[1]


def untouched(path, before: bytes) -> bool:
    return path.read_bytes() == before


def test_locked_database(three):
    path, final = three
    editor = tiny_editor()
    history = open_tiny(path, editor, timeout=0.2)
    entries = history.entries()
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(HistoryError, match="locked by another program"):
            history.edit(EditRequest(*FACTS[3])).__next__()  # refused before training
        with pytest.raises(HistoryError, match="locked"):
            run(history.rollback_to(1))
        assert same_state(state(editor), final)
    finally:
        locker.rollback()
    gen = history.edit(EditRequest(*FACTS[3]))
    next(gen)  # training started; another program takes the lock before the commit
    locker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(HistoryError, match="locked"):
            run(gen)
    finally:
        locker.rollback()
        locker.close()
    assert same_state(state(editor), final) and history.entries() == entries
    edit(history, 3)  # works again once the lock is gone
    assert history.head == 4
    history.close()


def test_not_sqlite_and_foreign_sqlite_are_refused_unchanged(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("these are my notes, not a database\n" * 50)
    before = text.read_bytes()
    with pytest.raises(HistoryError, match="not an SQLite database"):
        EditHistory.open(text, tiny_editor())
    assert untouched(text, before)
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE things (x)")
    before = other.read_bytes()
    with pytest.raises(HistoryError, match="not an ELDER history"):
        EditHistory.open(other, tiny_editor())
    assert untouched(other, before)


def test_damaged_file_is_refused_unchanged(three):
    path, _ = three
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    data[page: 3 * page] = bytes(range(256)) * (2 * page // 256)  # pages 2-3: b-tree pages
    path.write_bytes(bytes(data))
    with pytest.raises(HistoryError, match="damaged"):
        EditHistory.open(path, tiny_editor())
    assert untouched(path, bytes(data))


def test_damaged_state_blob_is_detected(three):
    path, _ = three
    with sqlite3.connect(path) as db:
        db.execute("UPDATE tensor_blobs SET data = substr(data, 1, 100) || zeroblob(50)")
    before = path.read_bytes()
    with pytest.raises(HistoryError, match="damaged"):
        EditHistory.open(path, tiny_editor())
    assert untouched(path, before)


def test_newer_version_is_refused(three):
    path, _ = three
    with sqlite3.connect(path) as db:
        db.execute("UPDATE info SET value = 99 WHERE key = 'schema_version'")
    with pytest.raises(HistoryError, match="newer"):
        EditHistory.open(path, tiny_editor())


def test_full_disk_during_a_write(three):
    path, final = three
    editor = tiny_editor()
    history = open_tiny(path, editor, keyframe_budget_s=0.0)
    entries = history.entries()
    (pages,) = history._store._raw("PRAGMA page_count")[0][0]
    history._store._raw(f"PRAGMA max_page_count={pages}")  # SQLite answers SQLITE_FULL beyond this
    with pytest.raises(HistoryError, match="disk .* is full"):
        edit(history, 3)
    assert same_state(state(editor), final) and history.entries() == entries and history.head == 3
    assert history.integrity_check() == ["ok"]
    history._store._raw("PRAGMA max_page_count=1073741823")
    edit(history, 3)
    assert history.head == 4
    history.close()


def test_two_programs_on_one_history(three):
    path, final = three
    first, second = tiny_editor(), tiny_editor()
    a, b = open_tiny(path, first), open_tiny(path, second)
    edit(a, 3)
    with pytest.raises(HistoryError, match="changed by another program"):
        edit(b, 4)
    assert same_state(state(second), final)
    a.close(), b.close()


def test_engine_changed_outside_and_bad_sequence_numbers(three):
    path, _ = three
    editor = tiny_editor()
    history = open_tiny(path, editor)
    with pytest.raises(HistoryError, match="no edit 9"):
        history.rollback_to(9)
    with pytest.raises(HistoryError, match="no edit 9"):
        history.revert(9)
    editor.apply(EditRequest(*FACTS[4]))
    with pytest.raises(HistoryError, match="changed outside"):
        history.edit(EditRequest(*FACTS[5])).__next__()
    history.close()


def test_bad_bundles(three, tmp_path):
    path, final = three
    bundle = tmp_path / "b.elderbundle"
    with open_tiny(path, tiny_editor()) as history:
        history.export_bundle(bundle)
    target = tmp_path / "new.elderdb"
    other = tiny_loaded(seed=1)
    with pytest.raises(StateFormatError, match="made with the model"):
        load_bundle(bundle, other)
    assert not any(isinstance(m, ElderLayer) for m in other.model.modules())  # refused before attaching
    with pytest.raises(StateFormatError, match="made with the model"):
        EditHistory.import_bundle(bundle, target, tiny_editor(seed=1))
    data = bundle.read_bytes()
    for name, broken in (("truncated", data[: len(data) // 2]),
                         ("flipped", data[:-40] + bytes(b ^ 0xFF for b in data[-40:]))):
        bad = tmp_path / f"{name}.elderbundle"
        bad.write_bytes(broken)
        with pytest.raises(StateFormatError, match="truncated|damaged|not a readable"):
            EditHistory.import_bundle(bad, target, tiny_editor())
        with pytest.raises(StateFormatError):
            load_bundle(bad, tiny_loaded())
    assert not target.exists() and list(tmp_path.glob("new.elderdb*")) == []
    before = path.read_bytes()
    with pytest.raises(HistoryError, match="already exists"):
        EditHistory.import_bundle(bundle, path, tiny_editor())
    assert untouched(path, before)
