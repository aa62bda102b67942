"""Readers for knowledge-editing data sets: ZsRE, COUNTERFACT, WISE hallucination, and our own.

Every reader turns a record into one `EditRecord`, so the editor, the metrics and the app never
look at a data set's own keys. Two kinds of failure are kept apart on purpose:

- A file that cannot be read at all (missing, not JSON, not a list, empty, unknown format)
  raises `DataFormatError`: there is nothing sensible to load.
- A single malformed record (missing key, wrong type, empty prompt or target) is reported in
  `LoadReport.skipped` with its index and a reason, and the other records load. Real data sets
  have the odd bad row, and a 1000-edit run should not die for one of them.

All texts are stripped of surrounding whitespace: prompt and target are joined with one space
downstream (EasyEdit's convention), so the whitespace around them in the files carries no
meaning (some ZsRE targets have a stray leading space, " species").
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataFormatError

FORMATS = ("zsre", "counterfact", "hallucination", "plain")

# ZsRE's locality questions come from Natural Questions with this tag in front (MEND's form);
# it is an artefact of how MEND fed them to its model, not part of the question.
_NQ_PREFIX = "nq question: "


@dataclass(frozen=True)
class EditRecord:
    """One edit: a prompt, its new target, and the prompts used to test it."""

    prompt: str
    target: str
    paraphrases: tuple[str, ...] = ()  # held out: generalization is measured on these
    train_paraphrases: tuple[str, ...] = ()  # trained on together with the prompt
    locality: tuple[tuple[str, str], ...] = ()  # (unrelated prompt, its answer)
    subject: str = ""
    original_target: str = ""
    source_index: int = -1  # position of the record in its file (0-based)


@dataclass
class LoadReport:
    records: list[EditRecord]
    skipped: list[tuple[int, str]]  # (index in file, reason), over the whole file
    format: str
    sha256: str  # of the file's bytes, so a result names exactly which data it used
    path: str


class _Malformed(Exception):
    """One record is unusable; the loader turns this into a `skipped` entry."""


# --- field helpers -------------------------------------------------------------------------


def _text(rec: dict, key: str, required: bool = True) -> str:
    value = "" if rec.get(key) is None else rec[key]  # JSON null counts as absent
    if not isinstance(value, str):
        raise _Malformed(f"'{key}' is {type(value).__name__}, expected a string")
    if required and not value.strip():
        raise _Malformed(f"'{key}' is empty" if key in rec else f"missing '{key}'")
    return value.strip()


def _texts(rec: dict, key: str) -> tuple[str, ...]:
    """An optional list of strings; a lone string counts as a list of one (ZsRE's `rephrase`)."""
    value = rec.get(key)
    if value is None or isinstance(value, str):
        return (value.strip(),) if value and value.strip() else ()
    if not isinstance(value, list):
        raise _Malformed(f"'{key}' is {type(value).__name__}, expected a list of strings")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise _Malformed(f"'{key}[{i}]' is not a non-empty string")
    return tuple(item.strip() for item in value)


def _pair(rec: dict, prompt_key: str, answer_key: str, strict: bool) -> tuple[tuple[str, str], ...]:
    """An optional (prompt, answer) pair held in two fields.

    Half a pair cannot be measured. In the published sets it happens (6 of the first 400
    hallucination records have an empty `locality_ground_truth`) and the edit itself is fine,
    so the pair is dropped; in a user's own file (strict) it is more likely a mistake, so the
    record is reported.
    """
    prompt = _text(rec, prompt_key, required=False)
    answer = _text(rec, answer_key, required=False)
    if prompt and answer:
        return ((prompt, answer),)
    if strict and (prompt or answer):
        raise _Malformed(f"'{prompt_key}' and '{answer_key}' must be given together")
    return ()


def _sub(rec: dict, key: str) -> dict:
    if not isinstance(rec.get(key), dict):
        raise _Malformed(f"'{key}' is not an object" if key in rec else f"missing '{key}'")
    return rec[key]


# --- one parser per format: dict -> EditRecord, or _Malformed ------------------------------


def _zsre(rec: dict, index: int) -> EditRecord:
    loc = _pair(rec, "loc", "loc_ans", strict=False)
    if loc and loc[0][0].startswith(_NQ_PREFIX):
        loc = ((loc[0][0][len(_NQ_PREFIX):].strip(), loc[0][1]),)
    answers = _texts(rec, "answers")
    return EditRecord(
        prompt=_text(rec, "src"),
        target=_text(rec, "alt"),
        paraphrases=_texts(rec, "rephrase"),
        locality=loc,
        subject=_text(rec, "subject", required=False),
        original_target=answers[0] if answers else "",
        source_index=index,
    )


def _counterfact(rec: dict, index: int) -> EditRecord:
    rw = _sub(rec, "requested_rewrite")
    template = _text(rw, "prompt")
    subject = _text(rw, "subject")
    if "{}" not in template:
        raise _Malformed("'requested_rewrite.prompt' has no '{}' for the subject")
    true = _text(_sub(rw, "target_true"), "str")
    # replace, not str.format: a literal brace elsewhere in a prompt must not break the record
    return EditRecord(
        prompt=template.replace("{}", subject),
        target=_text(_sub(rw, "target_new"), "str"),
        paraphrases=_texts(rec, "paraphrase_prompts"),
        # ROME's neighborhood prompts are facts about other subjects that share the true answer
        locality=tuple((p, true) for p in _texts(rec, "neighborhood_prompts")),
        subject=subject,
        original_target=true,
        source_index=index,
    )


def _hallucination(rec: dict, index: int) -> EditRecord:
    # WISE cuts the locality text at an arbitrary character, often mid-word ("historica" |
    # "l print"). Harmless: locality compares the edited model with the original on it.
    return EditRecord(
        prompt=_text(rec, "prompt"),
        target=_text(rec, "target_new"),
        locality=_pair(rec, "locality_prompt", "locality_ground_truth", strict=False),
        subject=_text(rec, "subject", required=False),
        source_index=index,
    )


def _plain_locality(rec: dict) -> tuple[tuple[str, str], ...]:
    # A list of {prompt, answer} objects or [prompt, answer] pairs, and/or one pair in two
    # columns (locality_prompt, locality_answer), which is how a CSV row can hold one.
    value = rec.get("locality", [])
    if not isinstance(value, list):
        raise _Malformed("'locality' must be a list of {prompt, answer} objects or pairs")
    pairs = list(_pair(rec, "locality_prompt", "locality_answer", strict=True))
    for i, item in enumerate(value):
        if isinstance(item, dict):
            item = [item.get("prompt"), item.get("answer")]
        if not (isinstance(item, list) and len(item) == 2
                and all(isinstance(s, str) and s.strip() for s in item)):
            raise _Malformed(f"'locality[{i}]' is not a non-empty (prompt, answer) pair")
        pairs.append((item[0].strip(), item[1].strip()))
    return tuple(pairs)


def _plain(rec: dict, index: int) -> EditRecord:
    return EditRecord(
        prompt=_text(rec, "prompt"),
        target=_text(rec, "target"),
        paraphrases=_texts(rec, "paraphrases"),
        train_paraphrases=_texts(rec, "train_paraphrases"),
        locality=_plain_locality(rec),
        subject=_text(rec, "subject", required=False),
        original_target=_text(rec, "original_target", required=False),
        source_index=index,
    )


_PARSERS = {"zsre": _zsre, "counterfact": _counterfact,
            "hallucination": _hallucination, "plain": _plain}


# The keys that identify each format, checked in this order.
_SIGNATURES = (("counterfact", {"requested_rewrite"}), ("zsre", {"src", "alt"}),
               ("hallucination", {"prompt", "target_new"}), ("plain", {"prompt", "target"}))


def detect_format(obj_or_first_record) -> str:
    """Name the format of a record, or of a list by its first record whose keys identify one.

    Raises DataFormatError when no record is recognised.
    """
    items = obj_or_first_record if isinstance(obj_or_first_record, list) else [obj_or_first_record]
    for rec in items:
        for fmt, keys in _SIGNATURES:
            if isinstance(rec, dict) and keys <= rec.keys():
                return fmt
    first = next((r for r in items if isinstance(r, dict)), None)
    seen = f"keys {sorted(first)}" if first is not None else "no JSON objects"
    raise DataFormatError(
        f"unknown data format ({seen}); expected ZsRE (src, alt), COUNTERFACT "
        "(requested_rewrite), hallucination (prompt, target_new) or plain (prompt, target)")


# --- file readers: bytes -> list of (index, raw record or _Malformed) ----------------------


def _read_json(text: str, path: Path) -> list:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        hint = ""
        if e.msg == "Extra data":
            hint = " (one object per line is JSON Lines: give the file a .jsonl extension)"
        raise DataFormatError(
            f"{path}: not valid JSON at line {e.lineno}, column {e.colno}: {e.msg}{hint}") from None
    if not isinstance(data, list):
        raise DataFormatError(
            f"{path}: the top level is a JSON {type(data).__name__}; expected a list of records")
    return list(enumerate(data))


def _read_jsonl(text: str, path: Path) -> list:
    # One record per non-blank line; a broken line is one malformed record, not a broken file.
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((len(rows), json.loads(line)))
        except json.JSONDecodeError as e:
            rows.append((len(rows), _Malformed(f"line {lineno}: not valid JSON: {e.msg}")))
    return rows


def _split_bar(cell: str | None) -> list[str]:
    # Spreadsheets leave stray separators ("a|b|"); empty pieces are dropped, not errors.
    return [p.strip() for p in (cell or "").split("|") if p.strip()]


def _read_csv(text: str, path: Path) -> list:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = {"prompt", "target"} - set(reader.fieldnames or ())
    if missing:
        raise DataFormatError(
            f"{path}: CSV header {reader.fieldnames} lacks the column(s) {sorted(missing)}; "
            "a CSV edit set needs 'prompt' and 'target' (optional: paraphrases, "
            "train_paraphrases, locality_prompt, locality_answer, subject, original_target)")
    rows = []
    for i, row in enumerate(reader):
        if None in row:  # DictReader files extra cells under the key None
            rows.append((i, _Malformed(f"line {reader.line_num}: more cells than header columns")))
            continue
        for key in ("paraphrases", "train_paraphrases"):
            row[key] = _split_bar(row.get(key))
        rows.append((i, row))
    return rows


# --- public entry points -------------------------------------------------------------------


def load_edits(path, format: str = "auto", limit: int | None = None, offset: int = 0) -> LoadReport:
    """Read an edit set.

    `.csv` is read as CSV (plain format only), `.jsonl`/`.ndjson` as JSON Lines, anything else
    as one JSON array. With format="auto" the format comes from the keys of the first record
    that identifies one. `offset` and `limit` count VALID records only: offset=10, limit=5
    gives the 11th to 15th records that loaded, whatever was skipped before them; `skipped`
    always lists the malformed records of the whole file. A record's `source_index` is its
    position in the file (array index, non-blank line, or CSV data row, from 0).
    """
    if format != "auto" and format not in FORMATS:
        raise DataFormatError(
            f"unknown format {format!r}; choose auto or one of {', '.join(FORMATS)}")
    if offset < 0 or (limit is not None and limit < 0):
        raise ValueError("offset and limit must not be negative")
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataFormatError(f"{path}: no such file") from None
    except OSError as e:
        raise DataFormatError(f"{path}: cannot be read ({e.strerror or e})") from None
    try:
        text = raw.decode("utf-8-sig")  # -sig: spreadsheets save UTF-8 with a byte-order mark
    except UnicodeDecodeError as e:
        raise DataFormatError(f"{path}: not UTF-8 text (bad byte at offset {e.start})") from None
    if not text.strip():
        raise DataFormatError(f"{path}: the file is empty")

    suffix = path.suffix.lower()
    if suffix == ".csv":
        if format not in ("auto", "plain"):
            raise DataFormatError(f"{path}: CSV files hold the plain format only, not {format!r}")
        rows, fmt = _read_csv(text, path), "plain"
    else:
        rows = (_read_jsonl if suffix in (".jsonl", ".ndjson") else _read_json)(text, path)
        fmt = format
    if not rows:
        raise DataFormatError(f"{path}: contains no records")
    if fmt == "auto":
        try:
            fmt = detect_format([r for _, r in rows])
        except DataFormatError as e:
            raise DataFormatError(f"{path}: {e}") from None

    records, skipped = [], []
    for index, rec in rows:
        try:
            if isinstance(rec, _Malformed):
                raise rec
            if not isinstance(rec, dict):
                raise _Malformed(f"is a JSON {type(rec).__name__}, expected an object")
            records.append(_PARSERS[fmt](rec, index))
        except _Malformed as e:
            skipped.append((index, str(e)))
    if not records:
        reasons = "; ".join(f"#{i}: {r}" for i, r in skipped[:3])
        raise DataFormatError(f"{path}: no valid {fmt} records ({reasons})")

    end = None if limit is None else offset + limit
    return LoadReport(records=records[offset:end], skipped=skipped, format=fmt,
                      sha256=hashlib.sha256(raw).hexdigest(), path=str(path.resolve()))


def dev_split(name: str) -> Path:
    """Path of the development split `<name>_dev.json` (zsre, counterfact, hallucination).

    Looks in $ELDER_DATA_DIR when set, else in ../shared/data beside the repository.
    """
    env = os.environ.get("ELDER_DATA_DIR")
    folder = Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data"
    path = folder / f"{name}_dev.json"
    if not path.is_file():
        where = "ELDER_DATA_DIR" if env else "../shared/data (set ELDER_DATA_DIR to look elsewhere)"
        raise DataFormatError(
            f"development split {name!r} not found: no {path} (looked in {where})")
    return path
