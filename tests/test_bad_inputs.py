"""Bad input through the Python API, table-driven: every case gives an `ElderError` whose
message says what is wrong (or, for text that is unusual but valid, works), and no existing
file changes (checked by hash). The data readers are also fed arbitrary JSON (hypothesis):
a parsed record or an error naming the record index out, never another exception.

Tiny random models (tests/tiny.py) for the mechanics; no real model here."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from elder_engine import EditRequest, ElderError
from elder_engine.evaluation.data import FORMATS, load_edits
from elder_engine.errors import DataFormatError, EditRequestError, HistoryError, ModelLoadError, StateFormatError
from elder_engine.history import EditHistory, load_bundle
from elder_engine.models.loading import LoadSettings, load_model
from history_helpers import FACTS, edit, open_tiny, same_state, state, tiny_editor
from tiny import tiny_loaded

MIXED = "la capitale de Zorbia — столица 祖尔比亚 عاصمة is"


def hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """The files the cases read, made once; each test works on a fresh copy of the folder."""
    d = tmp_path_factory.mktemp("bad_inputs")
    (d / "nonutf8.json").write_bytes(b'[{"prompt": "caf\xe9", "target": "x"}]')
    (d / "latin1.csv").write_bytes("prompt,target\ncaf\xe9 is,good\n".encode("latin-1"))
    (d / "wrongtypes.json").write_text(json.dumps([{"prompt": 1, "target": ["x"]}, {"prompt": None, "target": 2}]))
    (d / "toplevel_dict.json").write_text(json.dumps({"prompt": "a", "target": "b"}))
    (d / "missing_columns.csv").write_text("prompt,answer\nthe sky is,blue\n")
    (d / "empty.json").write_text("  \n")
    (d / "nul.json").write_bytes(b'[{"prompt": "a\x00b", "target": "c"}]')  # a raw NUL: not JSON
    (d / "no_config").mkdir()
    (d / "no_config" / "model.safetensors").write_bytes(b"\0" * 64)
    from test_loading import save_tiny, truncate, write_tiny_gguf
    save_tiny(d / "truncated_model")
    truncate(d / "truncated_model" / "model.safetensors")
    truncate(write_tiny_gguf(d / "half.gguf"))
    editor = tiny_editor()
    with open_tiny(d / "h.elderdb", editor, keyframe_budget_s=0.0) as history:
        edit(history, 0), edit(history, 1)
        history.export_bundle(d / "b.elderbundle")
    editor.save(d / "state.safetensors")
    data = (d / "state.safetensors").read_bytes()
    (d / "truncated_state.safetensors").write_bytes(data[: len(data) // 2])
    data = (d / "b.elderbundle").read_bytes()
    (d / "truncated.elderbundle").write_bytes(data[: len(data) // 2])
    (d / "notsqlite.elderdb").write_text("my notes\n" * 100)
    shutil.copy(d / "h.elderdb", d / "newer.elderdb")
    with closing(sqlite3.connect(d / "newer.elderdb")) as db, db:
        db.execute("UPDATE info SET value = 99 WHERE key = 'schema_version'")
    return d


@pytest.fixture
def files(made, tmp_path):
    d = tmp_path / "files"
    shutil.copytree(made, d)
    return d


# ------------------------------------------------------------------- edit and probe texts
TEXT_CASES = [  # (id, prompt, target, the error's words; None: valid input that must work)
    ("empty-prompt", "", "paris", "prompt is empty"),
    ("whitespace-prompt", " \t\n ", "paris", "prompt is empty"),
    ("100k-prompt", "the capital of france is " * 20_000, "paris", "context"),
    ("empty-target", "the capital of france is", "", "target is empty"),
    ("whitespace-target", "the capital of france is", "\n\t ", "target is empty"),
    ("65-token-target", "the capital of france is", " ".join(["paris"] * 65), "tokens long"),
    ("200-token-target", "the capital of france is", " ".join(["paris"] * 200), "tokens long"),
    ("nul-in-prompt", "the capital\x00 of france is", "paris", None),
    ("nul-in-target", "the capital of france is", "par\x00is", None),
    ("mixed-scripts", MIXED, "quux 東京", None),
]


@pytest.mark.parametrize("prompt, target, words", [c[1:] for c in TEXT_CASES], ids=[c[0] for c in TEXT_CASES])
def test_edit_texts(tmp_path, prompt, target, words):
    editor = tiny_editor(max_steps=2)
    history = open_tiny(tmp_path / "h.elderdb", editor)
    before_state, before_file = state(editor), hashes(tmp_path)
    try:
        if words is None:  # valid: the edit is made and recorded exactly as typed
            edit_request = EditRequest(prompt, target)
            list(history.edit(edit_request))
            (entry,) = history.entries()
            assert (entry.prompt, entry.target) == (prompt, target)
            assert editor.probe(prompt, target, max_new_tokens=1).query == prompt
            return
        with pytest.raises(EditRequestError, match=words):
            list(history.edit(EditRequest(prompt, target)))
        with pytest.raises(EditRequestError, match=words):
            editor.apply(EditRequest(prompt, target))
        if not target.strip() or "tokens long" in words:
            pass  # a probe scores the target only when one is given; its prompt is fine
        else:
            with pytest.raises(EditRequestError, match=words):
                editor.probe(prompt, target, max_new_tokens=1)
        assert same_state(state(editor), before_state) and history.entries() == []
        assert hashes(tmp_path) == before_file
    finally:
        history.close()


# -------------------------------------------------------------------------------- files
def _data(name):
    return lambda d: load_edits(d / name)


def _model(name):
    return lambda d: load_model(d / name, LoadSettings(cache_dir=str(d.parent / "cache")))


def _open(name):
    return lambda d: EditHistory.open(d / name, tiny_editor())


def _import(bundle, editor=tiny_editor):
    return lambda d: EditHistory.import_bundle(d / bundle, d / "imported.elderdb", editor())


FILE_CASES = [  # (id, call on the folder, error class, words)
    ("data-not-utf8", _data("nonutf8.json"), DataFormatError, "not UTF-8"),
    ("data-csv-latin1", _data("latin1.csv"), DataFormatError, "not UTF-8"),
    ("data-json-wrong-types", _data("wrongtypes.json"), DataFormatError, r"#0: 'prompt' is int"),
    ("data-json-top-level-dict", _data("toplevel_dict.json"), DataFormatError, "expected a list"),
    ("data-csv-missing-columns", _data("missing_columns.csv"), DataFormatError, "lacks the column"),
    ("data-empty", _data("empty.json"), DataFormatError, "empty"),
    ("data-raw-nul", _data("nul.json"), DataFormatError, "nul.json"),
    ("data-missing", _data("nothing.json"), DataFormatError, "no such file"),
    ("model-folder-without-config", _model("no_config"), ModelLoadError, "config.json"),
    ("model-truncated-safetensors", _model("truncated_model"), ModelLoadError, "truncated or corrupt"),
    ("model-gguf-cut-in-half", _model("half.gguf"), ModelLoadError, "truncated or corrupt"),
    ("model-missing", _model("nothing.gguf"), ModelLoadError, "does not exist"),
    ("state-truncated", lambda d: __import__("elder_engine").ElderEditor.from_state(tiny_loaded(), d / "truncated_state.safetensors"),
     StateFormatError, "truncated or corrupt"),
    ("state-of-another-model", lambda d: __import__("elder_engine").ElderEditor.from_state(tiny_loaded(seed=1), d / "state.safetensors"),
     StateFormatError, "model"),
    ("history-not-sqlite", _open("notsqlite.elderdb"), HistoryError, "not an SQLite database"),
    ("history-newer-schema", _open("newer.elderdb"), HistoryError, "newer"),
    ("history-other-model", lambda d: EditHistory.open(d / "h.elderdb", tiny_editor(seed=1)), HistoryError,
     "belongs to the model"),
    ("history-folder", _open("no_config"), HistoryError, "is a folder"),
    ("bundle-truncated", _import("truncated.elderbundle"), StateFormatError, "truncated|damaged"),
    ("bundle-other-model", _import("b.elderbundle", lambda: tiny_editor(seed=1)), StateFormatError, "made with the model"),
    ("bundle-not-a-bundle", _import("state.safetensors"), StateFormatError, "not a history bundle"),
    ("bundle-into-existing", lambda d: EditHistory.import_bundle(d / "b.elderbundle", d / "h.elderdb", tiny_editor()),
     HistoryError, "already exists"),
    ("bundle-load-other-model", lambda d: load_bundle(d / "b.elderbundle", tiny_loaded(seed=1)), StateFormatError,
     "made with the model"),
]


@pytest.mark.parametrize("call, error, words", [c[1:] for c in FILE_CASES], ids=[c[0] for c in FILE_CASES])
def test_bad_files(files, call, error, words):
    before = hashes(files)
    with pytest.raises(error, match=words) as caught:
        call(files)
    assert "\n" not in str(caught.value).strip() and "Traceback" not in str(caught.value)
    assert hashes(files) == before  # nothing changed, nothing created


def test_locked_history(files):
    editor = tiny_editor()
    history = open_tiny(files / "h.elderdb", editor, timeout=0.2)
    before_state, entries = state(editor), history.entries()
    locker = sqlite3.connect(files / "h.elderdb", isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    try:
        db_before = (files / "h.elderdb").read_bytes()
        with pytest.raises(HistoryError, match="locked by another program"):
            list(history.edit(EditRequest(*FACTS[3])))
        with pytest.raises(HistoryError, match="locked"):
            list(history.rollback_to(1))
        assert (files / "h.elderdb").read_bytes() == db_before
    finally:
        locker.rollback()
        locker.close()
    assert same_state(state(editor), before_state) and history.entries() == entries
    history.close()


def _as_nobody(fn) -> tuple[int, str]:
    """Run fn() in a forked child as the unprivileged user 'nobody' (root ignores file modes):
    (exit code, what it wrote)."""
    import tempfile
    out = Path(tempfile.mkdtemp()) / "out.txt"
    os.chmod(out.parent, 0o777)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgid(65534), os.setuid(65534)
            text = fn()
            out.write_text(text)
            code = 0
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            try:
                out.write_text(f"{type(exc).__name__}: {exc}")
            except OSError:
                pass
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    text = out.read_text() if out.exists() else ""
    shutil.rmtree(out.parent, ignore_errors=True)
    return os.waitstatus_to_exitcode(status), text


def test_read_only_history(made):
    import tempfile
    folder = Path(tempfile.mkdtemp())  # readable by every user, unlike pytest's own temp folders
    path = folder / "h.elderdb"
    shutil.copy(made / "h.elderdb", path)
    os.chmod(path, 0o444)
    os.chmod(folder, 0o555)
    editor = tiny_editor()  # built here: the child only opens the file
    before = hashes(folder)

    def attempt() -> str:
        try:
            history = EditHistory.open(path, editor)
        except HistoryError as error:
            return f"refused at open: {error}"
        try:
            list(history.edit(EditRequest(*FACTS[3])))
        except HistoryError as error:
            return f"refused at edit: {error}"
        finally:
            history.close()
        return "written"

    try:
        if os.geteuid() == 0:
            code, said = _as_nobody(attempt)
        elif os.access(path, os.W_OK):
            pytest.skip("this user can write read-only files")
        else:
            code, said = 0, attempt()
        assert code == 0 and said.startswith("refused"), said
        assert "cannot be written or read" in said or "read-only" in said or "readonly" in said, said
        assert hashes(folder) == before
    finally:
        os.chmod(folder, 0o755)
        shutil.rmtree(folder, ignore_errors=True)


# ------------------------------------------------------------ data readers, any JSON value
KEYS = ["prompt", "target", "src", "alt", "answers", "rephrase", "loc", "loc_ans", "subject", "requested_rewrite",
        "paraphrase_prompts", "neighborhood_prompts", "target_new", "target_true", "str", "paraphrases",
        "train_paraphrases", "locality_prompt", "locality_answer", "original_target", "locality",
        "locality_ground_truth", "answer"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner,
                                                                max_size=6),
    max_leaves=25)
records = st.dictionaries(st.sampled_from(KEYS), json_values | st.text(min_size=1, max_size=8), max_size=8)
files_of_records = st.lists(records | json_values, min_size=0, max_size=6)
FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _read_or_error(path: Path, fmt: str, n_items: int | None) -> None:
    try:
        report = load_edits(path, format=fmt)
    except DataFormatError as error:  # the file as a whole: the message names the file
        assert path.name in str(error)
        return
    # every record is parsed or skipped with its index; a parsed one has real texts
    indices = sorted([r.source_index for r in report.records] + [i for i, _ in report.skipped])
    assert len(indices) == len(set(indices))
    if n_items is not None:
        assert indices == list(range(n_items))
    for i, reason in report.skipped:
        assert isinstance(i, int) and isinstance(reason, str) and reason
    for r in report.records:
        assert isinstance(r.prompt, str) and r.prompt.strip() and isinstance(r.target, str) and r.target.strip()


@FUZZ
@given(value=files_of_records | json_values, fmt=st.sampled_from(("auto", *FORMATS)))
def test_any_json_value_is_a_record_or_an_error_naming_it(tmp_path, value, fmt):
    path = tmp_path / "fuzz.json"
    path.write_text(json.dumps(value))
    _read_or_error(path, fmt, len(value) if isinstance(value, list) else None)


@FUZZ
@given(lines=st.lists(records | json_values, min_size=1, max_size=6), fmt=st.sampled_from(("auto", *FORMATS)))
def test_any_json_lines_are_records_or_errors_naming_them(tmp_path, lines, fmt):
    path = tmp_path / "fuzz.jsonl"
    path.write_text("\n".join(json.dumps(v) for v in lines) + "\n")
    _read_or_error(path, fmt, len(lines))


def test_bad_input_errors_are_elder_errors():
    # the app and the CLI show str(error) for these, and nothing else
    for cls in (DataFormatError, EditRequestError, HistoryError, ModelLoadError, StateFormatError):
        assert issubclass(cls, ElderError)
