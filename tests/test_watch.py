"""The watch list: storage in the history file (schema 3 and its migration), text and CSV
files, re-probing after history actions, and bad input. Tiny random models for the mechanics;
one test on the default model for what a user reads off the table."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest

from elder_engine import DataFormatError, EditRequest, EditRequestError, HistoryError
from elder_engine.history import EditHistory, WatchList, parse_watch_text, schema
from elder_engine.history.watch_io import parse_csv, read_file, write_file
from history_helpers import FACTS, open_tiny, run, tiny_editor

PROMPTS = [("the capital of france is", "london"), ("who wrote hamlet ?", ""), ("what colour is the sky ?", "blue")]


def report_of(events):
    events = list(events)
    assert events, "the run yielded nothing"
    return events[-1].detail["report"], events


def table_info(path, table="watch"):
    with closing(sqlite3.connect(path)) as db:
        return [tuple(r) for r in db.execute(f"PRAGMA table_info({table})")]


# ------------------------------------------------------------------ storage and migration
def test_a_version_2_history_migrates_and_keeps_its_data(tmp_path):
    path = tmp_path / "old.elderdb"
    fresh = tmp_path / "new.elderdb"
    EditHistory.open(fresh, tiny_editor()).close()
    history = open_tiny(path, tiny_editor())
    run(history.edit(EditRequest(*FACTS[0], subject="france")))
    history.keep_probe(history.editor.probe(FACTS[1][0], max_new_tokens=2))
    history.close()
    with closing(sqlite3.connect(path)) as db, db:   # make it what version 2 wrote: no watch table
        db.execute("DROP TABLE watch")
        db.execute("UPDATE info SET value = 2 WHERE key = 'schema_version'")
    assert table_info(path) == []

    history = open_tiny(path, tiny_editor())
    assert [(e.prompt, e.target, e.subject) for e in history.entries()] == [(*FACTS[0], "france")]
    assert [p["query"] for p in history.probes()] == [FACTS[1][0]]
    assert history.head == 1
    assert history.watch.items() == []
    assert history.watch.add(PROMPTS) == (3, 0)
    history.close()
    with closing(sqlite3.connect(path)) as db:
        version = db.execute("SELECT value FROM info WHERE key = 'schema_version'").fetchone()[0]
    assert int(version) == schema.SCHEMA_VERSION == 3
    # the migration's own DDL makes the same table as a new file's models
    assert table_info(path) == table_info(fresh)
    with WatchList.open(path) as watch:
        assert [(i.prompt, i.expected) for i in watch.items()] == PROMPTS


def test_add_remove_and_duplicates(tmp_path):
    with open_tiny(tmp_path / "h.elderdb", tiny_editor()) as history:
        watch = history.watch
        assert watch.add(PROMPTS) == (3, 0)
        assert watch.add(["  who wrote hamlet ?  ", ("the capital of france is", "paris")]) == (0, 2)
        items = watch.items()
        assert [i.prompt for i in items] == [p for p, _ in PROMPTS]
        assert items[0].expected == "paris"        # a repeated prompt takes the new expected answer
        assert items[1].expected == ""
        assert watch.remove([items[1].id]) == 1
        assert [i.prompt for i in watch.items()] == [PROMPTS[0][0], PROMPTS[2][0]]


@pytest.mark.parametrize("bad", [[""], ["   "], [("", "paris")], [("ok prompt", ""), ("\t", "")]])
def test_an_empty_prompt_adds_nothing(tmp_path, bad):
    with open_tiny(tmp_path / "h.elderdb", tiny_editor()) as history:
        history.watch.add(PROMPTS[:1])
        with pytest.raises(EditRequestError, match="prompt"):
            history.watch.add(bad)
        assert [i.prompt for i in history.watch.items()] == [PROMPTS[0][0]]


def test_missing_history_is_a_clear_error(tmp_path):
    with pytest.raises(HistoryError, match="No history at"):
        WatchList.open(tmp_path / "nothing.elderdb")
    assert not (tmp_path / "nothing.elderdb").exists()


# ------------------------------------------------------------------ text and CSV
def test_paste_format():
    text = "the capital of france is\tparis\n\n  who wrote hamlet ?  \nthe sky is -> blue\na -> b -> c\n"
    assert parse_watch_text(text) == [("the capital of france is", "paris"), ("who wrote hamlet ?", ""),
                                      ("the sky is", "blue"), ("a -> b", "c")]
    with pytest.raises(EditRequestError, match="line 3"):
        parse_watch_text("fine\nalso fine\n\tan answer without a prompt\n")


def test_csv_format():
    assert parse_csv('prompt,expected\n"a, with comma",x\nplain\n"quoted ""q""",\n') == [
        ("a, with comma", "x"), ("plain", ""), ('quoted "q"', "")]
    assert parse_csv("just one\n") == [("just one", "")]
    with pytest.raises(DataFormatError, match="line 2 has 3 fields"):
        parse_csv("prompt,expected\na,b,c\n")
    with pytest.raises(DataFormatError, match="malformed CSV"):
        parse_csv('prompt,expected\n"never closed,x\n')
    with pytest.raises(EditRequestError, match="line 3"):
        parse_csv("prompt,expected\na,b\n,no prompt\n")


@pytest.mark.parametrize("suffix", [".txt", ".csv"])
def test_files_round_trip(tmp_path, suffix):
    items = [("the capital of france is", "paris"), ("what -> means", ""), ('a "quoted", comma', "x, y"),
             ("ünïcödé prompt", "ß")]
    path = write_file(tmp_path / f"w{suffix}", items)
    assert read_file(path) == items


def test_text_export_refuses_what_it_cannot_hold(tmp_path):
    with pytest.raises(DataFormatError, match="csv"):
        write_file(tmp_path / "w.txt", [("two\nlines", "")])
    assert not (tmp_path / "w.txt").exists()
    assert read_file(write_file(tmp_path / "w.csv", [("two\nlines", "")])) == [("two\nlines", "")]


def test_unreadable_files(tmp_path):
    (tmp_path / "bin.txt").write_bytes(b"abc\x00def")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    (tmp_path / "empty.csv").write_text("prompt,expected\n\n")
    (tmp_path / "dir.csv").mkdir()
    cases = {"missing.txt": "no such file", "bin.txt": "not a text file", "latin1.txt": "not UTF-8",
             "empty.csv": "no prompts", "dir.csv": "folder"}
    for name, words in cases.items():
        with pytest.raises(DataFormatError, match=words):
            read_file(tmp_path / name)


def test_a_bad_import_adds_nothing(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("prompt,expected\ngood one,x\nbad,row,here\n")
    with open_tiny(tmp_path / "h.elderdb", tiny_editor()) as history:
        history.watch.add(PROMPTS[:1])
        with pytest.raises(DataFormatError, match="line 3"):
            history.watch.import_file(bad)
        assert [i.prompt for i in history.watch.items()] == [PROMPTS[0][0]]
        good = tmp_path / "good.txt"
        good.write_text("who wrote hamlet ?\nthe capital of france is\tlondon\n")
        assert history.watch.import_file(good) == (1, 1)
        out = history.watch.export_file(tmp_path / "out.csv")
        assert read_file(out) == [("the capital of france is", "london"), ("who wrote hamlet ?", "")]


# ------------------------------------------------------------------ re-probing
@pytest.mark.parametrize("profile", ["scoped-router", "paper"])
def test_run_tracks_before_and_after_across_history_actions(tmp_path, profile):
    editor = tiny_editor(profile=profile)
    history = open_tiny(tmp_path / "h.elderdb", editor)
    history.watch.add(PROMPTS)
    report, events = report_of(history.run_watch(max_new_tokens=3))
    assert [e.done for e in events] == [0, 1, 2, 3, 3] and report.complete
    base = {i.prompt: i.after for i in report.items}
    # no edits: every answer is the original model's and nothing fired
    assert all(i.after == i.original and i.before is None and i.fired is False for i in report.items)
    assert report.counts["changed"] == 0

    run(history.edit(EditRequest(*FACTS[0])))
    after_edit, _ = report_of(history.run_watch(max_new_tokens=3))
    for item in after_edit.items:
        assert item.before == base[item.prompt] and item.state == history.state_key
        if not item.fired:   # deferred means the base model exactly: never a false change
            assert item.after == item.original
    first = after_edit.items[0]
    assert first.prompt == FACTS[0][0] and first.fired and first.fired_seq in (None, 1)
    assert after_edit.counts["changed"] == sum(i.after != i.original for i in after_edit.items)

    run(history.rollback_to(0))
    back, _ = report_of(history.run_watch(max_new_tokens=3))
    assert [i.after for i in back.items] == [base[p] for p, _ in PROMPTS]
    assert [i.before for i in back.items] == [i.after for i in after_edit.items]
    assert back.counts["changed"] == 0 and back.counts["fired"] == 0
    # a second run in the same state keeps what the last action changed
    again, _ = report_of(history.run_watch(max_new_tokens=3))
    assert [(i.before, i.after) for i in again.items] == [(i.before, i.after) for i in back.items]
    history.close()


def test_the_original_answer_is_generated_once(tmp_path):
    editor = tiny_editor(profile="scoped-router")
    history = open_tiny(tmp_path / "h.elderdb", editor)
    history.watch.add(PROMPTS)
    calls = []
    generate = editor.generate

    def counting(prompts, n, *, original=False, **kw):
        calls.append(original)
        return generate(prompts, n, original=original, **kw)
    editor.generate = counting
    report_of(history.run_watch(max_new_tokens=3))
    assert calls.count(True) == 3 and calls.count(False) == 3
    calls.clear()
    run(history.edit(EditRequest(*FACTS[0])))
    calls.clear()
    report_of(history.run_watch(max_new_tokens=3))
    assert calls.count(True) == 0 and calls.count(False) == 3
    calls.clear()
    report_of(history.run_watch(max_new_tokens=4))   # other generation settings: a new original
    assert calls.count(True) == 3
    history.close()
    with WatchList.open(history.path) as watch:      # the cache survives reopening the file
        assert all(i.original is not None for i in watch.items())


def test_cancel_keeps_the_prompts_probed_so_far(tmp_path):
    from elder_engine import CancelToken

    history = open_tiny(tmp_path / "h.elderdb", tiny_editor(profile="scoped-router"))
    history.watch.add(PROMPTS)
    cancel = CancelToken()
    events = []
    for event in history.run_watch(cancel=cancel, max_new_tokens=3):
        events.append(event)
        if event.done == 1 and "row" in (event.detail or {}):
            cancel.cancel()
    last = events[-1]
    assert last.detail.get("cancelled") and not last.detail["report"].complete
    assert [i.probed for i in history.watch.items()] == [True, False, False]
    assert last.detail["report"].counts["stale"] == 2
    history.close()


def test_locality_prompts_of_an_edit_seed_the_list(tmp_path):
    with open_tiny(tmp_path / "h.elderdb", tiny_editor()) as history:
        history.watch.add([FACTS[2][0]])
        run(history.edit(EditRequest(*FACTS[0]), locality_prompts=(FACTS[2][0], FACTS[3][0])))
        assert [i.prompt for i in history.watch.items()] == [FACTS[2][0], FACTS[3][0]]


def test_a_prompt_the_model_cannot_take_is_reported_not_fatal(tmp_path):
    history = open_tiny(tmp_path / "h.elderdb", tiny_editor(profile="scoped-router"))
    long = " ".join(["the"] * 200)   # over the tiny model's 128-token context
    history.watch.add([PROMPTS[0][0], long])
    report, _ = report_of(history.run_watch(max_new_tokens=2))
    by = {i.prompt: i for i in report.items}
    assert by[PROMPTS[0][0]].probed and by[long].error and "context" in by[long].error
    assert report.counts["errors"] == 1
    history.close()


# ------------------------------------------------------------------ the default model
@pytest.mark.real_model
def test_default_model_reports_the_edit_changed_and_its_neighbour_not(fresh_default_model, tmp_path):
    from elder_engine import ElderEditor, get_profile

    editor = ElderEditor(fresh_default_model, get_profile())
    history = EditHistory.open(tmp_path / "h.elderdb", editor)
    edit_prompt, neighbour, unrelated = ("The capital of France is", "The capital of Germany is",
                                         "Who wrote the play Hamlet?")
    history.watch.add([(edit_prompt, "Rome"), (neighbour, "Berlin"), unrelated])
    before, _ = report_of(history.run_watch(max_new_tokens=8))
    assert before.items[0].original.strip().startswith("Paris")
    run(history.edit(EditRequest(edit_prompt, "Rome", subject="France")))
    report, _ = report_of(history.run_watch(max_new_tokens=8))
    by = {i.prompt: i for i in report.items}
    assert by[edit_prompt].fired and by[edit_prompt].changed and by[edit_prompt].moved
    assert by[edit_prompt].meets_expected
    assert not by[neighbour].fired and not by[neighbour].changed and by[neighbour].meets_expected
    assert not by[unrelated].changed
    assert report.counts["changed"] == 1
    history.close()
