"""The edit history's mechanism on tiny models: commit, exact rollback/redo/revert, reopen,
keyframes, probes, eval runs, bundles, migrations."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sqlite3

import pytest
import torch

from elder_engine import CancelToken, EditFinished, EditRequest, EditStarted, HistoryError, Progress
from elder_engine.history import EditHistory, HistoryChanged, load_bundle
from elder_engine.history import schema, store as store_mod
from elder_engine.history.snapshots import decode_tensor, encode_tensor
from history_helpers import FACTS, edit, open_tiny, probes, reference_state, run, same_state, state, tiny_editor
from tiny import tiny_loaded


@pytest.fixture(scope="module")
def templates(tmp_path_factory):
    """Histories of 4 edits built once per keyframe budget, with the exact state and probe
    outputs after each edit (index 0: before any edit); tests work on copies."""
    cache = {}

    def get(budget):
        if budget not in cache:
            path = tmp_path_factory.mktemp("template") / "h.elderdb"
            editor = tiny_editor()
            with open_tiny(path, editor, keyframe_budget_s=budget) as history:
                states, outs = [state(editor)], [probes(editor)]
                for i in range(4):
                    edit(history, i)
                    states.append(state(editor))
                    outs.append(probes(editor))
            cache[budget] = path, states, outs
        return cache[budget]
    return get


@pytest.fixture
def built(request, tmp_path, templates):
    """(history, editor, states, outs): a copy of a template history, opened (restored) with a
    fresh engine. Keyframe budget: the test's `built` parameter, else none (all replayed)."""
    budget = getattr(request, "param", 1e9)
    path, states, outs = templates(budget)
    shutil.copy(path, tmp_path / "h.elderdb")
    editor = tiny_editor()
    history = open_tiny(tmp_path / "h.elderdb", editor, keyframe_budget_s=budget)
    yield history, editor, states, outs
    history.close()


both_budgets = pytest.mark.parametrize("built", [0.0, 1e9], ids=["keyframe-every-edit", "replay-from-base"],
                                       indirect=True)


def statuses(history) -> dict[int, str]:
    return {e.seq: e.status for e in history.entries()}


def test_codec_is_lossless():
    g = torch.Generator().manual_seed(0)
    for t in (torch.randn(3, 5, generator=g), torch.arange(7, dtype=torch.uint8), torch.zeros(0, 24, dtype=torch.uint8),
              torch.randn(4, generator=g).to(torch.bfloat16), torch.zeros(0, dtype=torch.long), torch.arange(5)):
        back = decode_tensor(encode_tensor(t))
        assert back.dtype == t.dtype and back.shape == t.shape and torch.equal(back, t)


def test_edit_events_entries_and_commit(tmp_path):
    editor = tiny_editor()
    history = EditHistory.open(tmp_path / "h.elderdb", editor)
    events = edit(history, 0, locality_prompts=("the sky is",))
    assert isinstance(events[0], EditStarted)
    assert isinstance(events[-2], EditFinished) and isinstance(events[-1], HistoryChanged)
    (entry,) = events[-1].entries
    assert (entry.seq, entry.status, entry.prompt, entry.target) == (1, "applied", *FACTS[0])
    assert entry.locality_prompts == ("the sky is",) and entry.loss_curve and entry.settings["max_steps"] == 4
    assert entry.created_at.tzinfo is not None and isinstance(entry.old_answer, str)
    assert len(entry.preset) == editor.config.num_edit_layers and history.head == 1
    with sqlite3.connect(history.path) as db:
        engine = db.execute("SELECT engine FROM edits").fetchone()[0]
    assert f'"threads": {torch.get_num_threads()}' in engine
    history.close()


@both_budgets
def test_rollback_any_point_is_bit_exact_then_redo(built):
    history, editor, states, outs = built
    for k in (2, 0, 3, 1):
        last = run(history.rollback_to(k))[-1]
        assert isinstance(last, Progress) and last.detail["head"] == k
        assert same_state(state(editor), states[k]) and probes(editor) == outs[k]
    assert statuses(history) == {1: "applied", 2: "rolled_back", 3: "rolled_back", 4: "rolled_back"}
    run(history.redo(count=1))
    assert history.head == 2 and same_state(state(editor), states[2])
    run(history.redo())
    assert history.head == 4 and same_state(state(editor), states[4]) and probes(editor) == outs[4]
    run(history.undo())
    assert history.head == 3 and same_state(state(editor), states[3])
    run(history.rollback_to(4))  # forward rollback = redo up to there
    assert same_state(state(editor), states[4])


def test_replay_uses_recorded_thread_count(built):
    history, editor, states, _ = built
    with sqlite3.connect(history.path) as db:
        recorded = json.loads(db.execute("SELECT engine FROM edits WHERE seq = 1").fetchone()[0])["threads"]
    now = recorded + 1  # anything but the recorded count
    seen = []  # torch's thread count at every training step of the replay
    train = editor.edit

    def spy(*args, **kwargs):
        for event in train(*args, **kwargs):
            seen.append(torch.get_num_threads())
            yield event
    editor.edit = spy
    old = torch.get_num_threads()
    torch.set_num_threads(now)
    try:
        run(history.rollback_to(1))  # no keyframe: edit 1 is replayed from the base state
        assert torch.get_num_threads() == now  # put back after the replay
    finally:
        torch.set_num_threads(old)
        del editor.edit
    assert seen and set(seen) == {recorded}  # during the replay: the count the edit was trained with
    assert same_state(state(editor), states[1])


@both_budgets
def test_revert_equals_training_without_the_edit(built):
    history, editor, states, _ = built
    run(history.revert(2))
    after = state(editor)
    assert statuses(history) == {1: "applied", 2: "reverted", 3: "applied", 4: "applied"}
    assert history.chain == [1, 3, 4] and same_state(after, reference_state(history, [1, 3, 4]))
    entries = {e.seq: e for e in history.entries()}
    assert entries[3].code == tuple(int(b) for b in editor.tuner.stored_codes[1])  # its record is the new one
    with pytest.raises(HistoryError, match="already reverted"):
        history.revert(2)
    run(history.rollback_to(1))
    run(history.redo())
    assert history.chain == [1, 3, 4] and same_state(state(editor), after)


def test_revert_rolled_back_edit_changes_nothing_in_engine(built):
    history, editor, states, _ = built
    run(history.rollback_to(2))
    run(history.revert(4))
    assert same_state(state(editor), states[2]) and statuses(history)[4] == "reverted"
    run(history.redo())
    assert same_state(state(editor), states[3]) and history.chain == [1, 2, 3]


def test_new_edit_after_rollback_keeps_rolled_back_entries(built):
    history, editor, states, _ = built
    run(history.rollback_to(1))
    edit(history, 5)
    assert history.chain == [1, 5] and statuses(history)[2] == "rolled_back"
    after5 = state(editor)
    run(history.rollback_to(1))
    assert same_state(state(editor), states[1])
    run(history.rollback_to(5))  # re-applies 2, 3, 4, 5 in order: a new chain for 5
    assert history.chain == [1, 2, 3, 4, 5] and not same_state(state(editor), after5)


@pytest.mark.parametrize("how", ["token", "close"])
def test_cancelled_rollback_changes_nothing(built, how):
    history, editor, states, _ = built
    before, entries, revision = state(editor), history.entries(), history._store.revision
    cancel = CancelToken()
    gen = history.revert(1, cancel=cancel)
    next(gen), next(gen)
    if how == "token":
        cancel.cancel()
        assert run(gen)[-1].detail["cancelled"]
    else:
        gen.close()
    assert same_state(state(editor), before) and history.entries() == entries
    assert history._store.revision == revision


def test_cancelled_edit_stores_nothing(tmp_path):
    editor = tiny_editor()
    history = EditHistory.open(tmp_path / "h.elderdb", editor)
    before = state(editor)
    cancel = CancelToken()
    gen = history.edit(EditRequest(*FACTS[0]), cancel=cancel)
    next(gen), next(gen)
    cancel.cancel()
    run(gen)
    assert history.entries() == [] and same_state(state(editor), before)
    history.close()


def test_reopen_restores_exactly_and_refuses_other_model(built, tmp_path):
    history, editor, states, outs = built
    run(history.rollback_to(3))
    history.close()
    again = tiny_editor()  # a new process would build exactly this
    with EditHistory.open(history.path, again) as reopened:
        assert reopened.head == 3 and same_state(state(again), states[3]) and probes(again) == outs[3]
    with pytest.raises(HistoryError, match="belongs to the model"):
        EditHistory.open(history.path, tiny_editor(seed=1))


def test_lost_head_state_is_rebuilt_by_replay(built):
    history, editor, states, outs = built
    history.close()
    with sqlite3.connect(history.path) as db:
        db.execute("DELETE FROM states WHERE kind = 'head'")
    again = tiny_editor()
    with EditHistory.open(history.path, again) as reopened:
        assert reopened.head == 4 and same_state(state(again), states[4])


def test_keyframe_budget_decides_what_is_stored(tmp_path):
    def kinds(budget):
        with EditHistory.open(tmp_path / f"{budget}.elderdb", tiny_editor(), keyframe_budget_s=budget) as h:
            for i in range(3):
                edit(h, i)
        with sqlite3.connect(tmp_path / f"{budget}.elderdb") as db:
            return sorted(k for (k,) in db.execute("SELECT kind FROM states"))
    assert kinds(0.0) == ["base", "keyframe", "keyframe", "keyframe"]
    assert kinds(1e9) == ["base", "head"]


def test_probes_and_eval_runs_are_kept(built):
    history, editor, _, _ = built
    result = editor.probe(FACTS[1][0], FACTS[1][1], max_new_tokens=2)
    history.keep_probe(result)
    (kept,) = history.probes()
    assert result.nearest_edit is not None  # four edits exist: there is a nearest one
    assert kept["edited_output"] == result.edited_output and kept["head"] == 4
    assert kept["nearest_seq"] == [1, 2, 3, 4][result.nearest_edit]
    history.record_eval_run({"reliability": 0.5}, {"epsilon": 12})
    (ev,) = history.eval_runs()
    assert ev["summary"] == {"reliability": 0.5} and ev["settings"] == {"epsilon": 12} and ev["head"] == 4


def test_bundle_round_trip(built, tmp_path):
    history, editor, states, outs = built
    run(history.revert(3))
    now, now_out = state(editor), probes(editor)
    bundle = tmp_path / "x.elderbundle"
    history.export_bundle(bundle)
    loaded = load_bundle(bundle, tiny_loaded())
    assert same_state(state(loaded), now) and probes(loaded) == now_out
    fresh = tiny_editor()
    imported = EditHistory.import_bundle(bundle, tmp_path / "imported.elderdb", fresh)
    assert same_state(state(fresh), now) and probes(fresh) == now_out
    assert [(e.seq, e.status) for e in imported.entries()] == [(e.seq, e.status) for e in history.entries()]
    run(imported.rollback_to(1))  # replays from the bundle's base state
    assert same_state(state(fresh), states[1])
    imported.close()


def test_migration_runner(tmp_path, monkeypatch):
    path = tmp_path / "h.elderdb"
    EditHistory.open(path, tiny_editor()).close()

    def add_note_column(conn):
        conn.exec_driver_sql("ALTER TABLE edits ADD COLUMN note TEXT")

    def version() -> int:  # read as the history reads it (the store's constructor checks nothing)
        store = store_mod.Store(path, 5.0)
        try:
            return store.read_info("schema_version")
        finally:
            store.engine.dispose()

    now = schema.SCHEMA_VERSION
    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", now + 1)
    monkeypatch.setattr(schema, "MIGRATIONS", {now: add_note_column})
    EditHistory.open(path, tiny_editor()).close()
    with sqlite3.connect(path) as db:
        assert "note" in [r[1] for r in db.execute("PRAGMA table_info(edits)")]
    assert version() == now + 1 and type(version()) is int

    def broken(conn):
        conn.exec_driver_sql("ALTER TABLE edits ADD COLUMN other TEXT")
        raise RuntimeError("step failed")

    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", now + 2)
    monkeypatch.setattr(schema, "MIGRATIONS", {now + 1: broken})
    with pytest.raises(HistoryError, match="step failed"):
        EditHistory.open(path, tiny_editor())
    with sqlite3.connect(path) as db:  # the failed step left the file at its version, unchanged
        assert "other" not in [r[1] for r in db.execute("PRAGMA table_info(edits)")]
    assert version() == now + 1


def test_a_version_1_history_opens_and_gains_subjects(tmp_path):
    """Histories written before edits had a subject (schema 1) open, keep their edits, and
    take new edits with a subject."""
    path = tmp_path / "old.elderdb"
    history = EditHistory.open(path, tiny_editor())
    run(history.edit(EditRequest("The capital of Zorbia is", "Quux")))
    history.close()
    with sqlite3.connect(path) as db:  # make it a version-1 file: no subject column
        db.execute("ALTER TABLE edits DROP COLUMN subject")
        db.execute("UPDATE info SET value = 1 WHERE key = 'schema_version'")
    history = EditHistory.open(path, tiny_editor())
    assert [e.prompt for e in history.entries()] == ["The capital of Zorbia is"]
    assert history.entries()[0].subject == ""
    run(history.edit(EditRequest("The capital of Blarg is", "Foo", subject="Blarg")))
    assert [e.subject for e in history.entries()] == ["", "Blarg"]
    history.close()


def test_keyed_profile_shares_frozen_experts_and_stays_exact(tmp_path):
    from elder_engine import profile_names

    if "keyed-experts" not in profile_names():
        pytest.skip("no keyed-experts profile")
    editor = tiny_editor(profile="keyed-experts", max_steps=3)
    history = open_tiny(tmp_path / "k.elderdb", editor, keyframe_budget_s=0.0)
    states = [state(editor)]
    for i in range(4):
        edit(history, i)
        states.append(state(editor))
    with sqlite3.connect(history.path) as db:
        blobs = db.execute("SELECT count(*) FROM tensor_blobs").fetchone()[0]
        refs = sum(len(json.loads(t)) for (t,) in db.execute("SELECT tensors FROM states"))
    assert blobs < 0.6 * refs  # each edit's frozen experts are stored once, not in every keyframe
    for k in (2, 0, 4):
        run(history.rollback_to(k))
        assert same_state(state(editor), states[k])
    cancel = CancelToken()
    gen = history.revert(2, cancel=cancel)
    next(gen)  # the state after edit 1 is loaded (a shorter expert pool); stop before replaying 3
    cancel.cancel()
    assert run(gen)[-1].detail["cancelled"] and same_state(state(editor), states[4])
    run(history.revert(2))
    assert same_state(state(editor), reference_state(history, [1, 3, 4], profile="keyed-experts"))
    history.close()


def test_keyed_keyframes_cost_little_beyond_the_new_experts(tmp_path):
    # Keyed routing only adds frozen experts, and the training slot is emptied after each edit,
    # so a keyframe adds almost nothing beyond the new experts: keyed histories default to a
    # short replay budget, and even a keyframe at every edit stores little.
    from elder_engine.history import snapshots

    editor = tiny_editor(profile="keyed-experts", max_steps=3)
    assert snapshots.default_keyframe_budget(editor.config) < snapshots.default_keyframe_budget(tiny_editor().config)
    scoped = tiny_editor(profile="scoped-router").config   # own experts too (the default profile)
    assert snapshots.default_keyframe_budget(scoped) == snapshots.default_keyframe_budget(editor.config)
    history = open_tiny(tmp_path / "k.elderdb", editor, keyframe_budget_s=0.0)

    def blobs():
        with sqlite3.connect(history.path) as db:
            return db.execute("SELECT count(*) FROM tensor_blobs").fetchone()[0]

    for i in range(2):
        edit(history, i)
    after_two = blobs()
    for i in range(2, 4):
        edit(history, i)
    with sqlite3.connect(history.path) as db:
        kinds = sorted(k for (k,) in db.execute("SELECT kind FROM states"))
    assert kinds == ["base"] + ["keyframe"] * 4
    # per edit: its own A and B in each layer, plus the small key index and RNG tensors
    layers = len(editor.tuner.elder_layers)
    assert (blobs() - after_two) / 2 <= 2 * layers + 4
    history.close()


def test_history_started_on_an_edited_engine_keeps_those_edits_as_its_base(tmp_path):
    editor = tiny_editor()
    editor.apply(EditRequest(*FACTS[5]))  # made before the history existed
    base = state(editor)
    history = open_tiny(tmp_path / "h.elderdb", editor)
    edit(history, 0)
    result = editor.probe(FACTS[0][0], max_new_tokens=1)
    # index 0 is the pre-history edit (no sequence number), index 1 the history's edit 1
    assert result.nearest_edit in (0, 1)
    assert history.nearest_seq(result) == {0: None, 1: 1}[result.nearest_edit]
    for index, seq in ((0, None), (1, 1), (2, None), (None, None)):
        assert history.nearest_seq(dataclasses.replace(result, nearest_edit=index)) == seq
    run(history.rollback_to(0))
    assert same_state(state(editor), base) and len(editor.edits) == 1
    history.close()
    again = tiny_editor()
    with EditHistory.open(history.path, again) as reopened:
        assert reopened.head == 0 and same_state(state(again), base) and again.edits[0].prompt == FACTS[5][0]


def test_scoped_profile_histories_are_exact_and_keep_subjects(tmp_path):
    """The default profile's router (keys, thresholds) is part of every stored state: rollback
    is bit-exact, a revert equals an engine that never had the edit (subjects and locality
    prompts replayed), and bundles carry the subjects."""
    subjects = ["france", "hamlet", "sky", "king"]
    editor = tiny_editor(profile="scoped-router", max_steps=3)
    history = open_tiny(tmp_path / "s.elderdb", editor, keyframe_budget_s=0.0)
    states = [state(editor)]
    for i, subject in enumerate(subjects):
        run(history.edit(EditRequest(*FACTS[i], subject=subject), locality_prompts=("the team plays for",)))
        states.append(state(editor))
    assert [e.subject for e in history.entries()] == subjects
    assert any(k.startswith("scope.") for k in states[-1])
    for k in (2, 0, 4):
        run(history.rollback_to(k))
        assert same_state(state(editor), states[k])
    run(history.revert(2))
    with sqlite3.connect(history.path) as db:
        rows = {seq: (json.loads(preset), json.loads(settings), rng) for seq, preset, settings, rng in
                db.execute("SELECT seq, preset, settings, rng_after FROM edits")}
    reference = tiny_editor(profile="scoped-router", max_steps=3)
    for seq in (1, 3, 4):
        preset, settings, rng = rows[seq]
        reference.apply(EditRequest(*FACTS[seq - 1], preset=preset, settings=settings, subject=subjects[seq - 1],
                                    locality_prompts=("the team plays for",)))
        reference.tuner.generator.set_state(torch.frombuffer(bytearray(rng), dtype=torch.uint8))
    assert same_state(state(editor), state(reference))
    bundle = tmp_path / "s.elderbundle"
    history.export_bundle(bundle)
    history.close()
    fresh = tiny_editor(profile="scoped-router", max_steps=3)
    imported = EditHistory.import_bundle(bundle, tmp_path / "copy.elderdb", fresh)
    assert [e.subject for e in imported.entries()] == subjects
    assert same_state(state(fresh), state(editor))
    imported.close()
