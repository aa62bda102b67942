"""Readers for the edit sets: the real development splits, our plain format, and failures."""

import csv
import hashlib
import json
from pathlib import Path

import pytest

from elder_engine.evaluation.data import EditRecord, LoadReport, detect_format, dev_split, load_edits
from elder_engine.errors import DataFormatError

SAMPLES = Path(__file__).resolve().parent.parent / "resources" / "samples"


# --- the real development splits ---------------------------------------------------------


def test_zsre_dev_split():
    report = load_edits(dev_split("zsre"))
    assert (report.format, len(report.records), report.skipped) == ("zsre", 600, [])
    r = report.records[0]
    assert r.prompt == "When was the inception of IAAF Combined Events Challenge?"
    assert r.target == "2006"
    assert r.paraphrases == ("When was the IAAF Combined Events Challenge launched?",)
    # the "nq question: " tag is removed and the answer is loc_ans
    assert r.locality == (("what is the name of the last episode of spongebob", "The String"),)
    assert (r.subject, r.original_target, r.source_index) == ("IAAF Combined Events Challenge", "1998", 0)
    assert r.train_paraphrases == ()
    assert all(not rec.locality[0][0].startswith("nq question") for rec in report.records)
    # targets are stripped (a few ZsRE `alt` values start with a space)
    assert all(rec.target == rec.target.strip() for rec in report.records)


def test_counterfact_dev_split():
    report = load_edits(dev_split("counterfact"))
    assert (report.format, len(report.records), report.skipped) == ("counterfact", 175, [])
    r = report.records[0]
    assert r.prompt == "The mother tongue of Danielle Darrieux is"
    assert (r.target, r.original_target, r.subject) == ("English", "French", "Danielle Darrieux")
    assert len(r.paraphrases) == 2 and r.paraphrases[0].endswith("Danielle Darrieux, a native")
    assert len(r.locality) == 10
    assert r.locality[0] == ("The mother tongue of Léon Blum is", "French")
    assert all(answer == "French" for _, answer in r.locality)
    assert all("{}" not in rec.prompt for rec in report.records)


def test_hallucination_dev_split():
    report = load_edits(dev_split("hallucination"))
    assert (report.format, len(report.records), report.skipped) == ("hallucination", 400, [])
    r = report.records[0]
    assert r.prompt.startswith("This is a Wikipedia passage about carole gist.")
    assert r.target.startswith("She was also the first contestant from Michigan to win Miss USA")
    assert r.subject == "carole gist"
    assert r.locality[0][0].startswith("Description Map of South America.")
    assert r.locality[0][1].startswith("l print or plan?")
    # six records have an empty locality_ground_truth: the edit loads, the half pair is dropped
    assert [rec.source_index for rec in report.records if not rec.locality] == [86, 90, 171, 172, 238, 314]


def test_report_names_file_and_hash():
    path = dev_split("zsre")
    report = load_edits(path)
    assert isinstance(report, LoadReport)
    assert report.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert Path(report.path) == path.resolve()


def test_dev_split_env_and_absent(tmp_path, monkeypatch):
    monkeypatch.setenv("ELDER_DATA_DIR", str(tmp_path))
    with pytest.raises(DataFormatError, match="ELDER_DATA_DIR"):
        dev_split("zsre")
    (tmp_path / "mine_dev.json").write_text("[]")
    assert dev_split("mine") == tmp_path / "mine_dev.json"


# --- the shipped samples -------------------------------------------------------------------


@pytest.mark.parametrize("name, fmt, count, split", [
    ("zsre_sample.json", "zsre", 20, "zsre"),
    ("counterfact_sample.json", "counterfact", 10, "counterfact"),
    ("hallucination_sample.json", "hallucination", 5, "hallucination"),
])
def test_samples_are_the_first_records(name, fmt, count, split):
    report = load_edits(SAMPLES / name)
    assert (report.format, len(report.records)) == (fmt, count)
    assert report.records == load_edits(dev_split(split), limit=count).records
    assert json.loads((SAMPLES / name).read_text("utf-8")) == json.loads(
        dev_split(split).read_text("utf-8"))[:count]


def test_plain_example_sample():
    report = load_edits(SAMPLES / "plain_example.jsonl")
    assert report.format == "plain" and len(report.records) >= 3 and report.skipped == []
    assert any(r.train_paraphrases for r in report.records)
    assert any(r.locality for r in report.records)


# --- our plain format ----------------------------------------------------------------------

EXPECTED = [
    EditRecord(prompt="The capital of Valdoria is", target="Brennhaven",
               paraphrases=("Valdoria's capital city is", "Valdoria is governed from"),
               train_paraphrases=("The seat of Valdoria's government is",),
               locality=(("The capital of France is", "Paris"),),
               subject="Valdoria", original_target="Ostmark", source_index=0),
    EditRecord(prompt="The mayor of Port Evander is", target="Ada Quill", source_index=1),
]


def _as_dicts():
    return [
        {"prompt": "The capital of Valdoria is", "target": " Brennhaven ",
         "paraphrases": ["Valdoria's capital city is", "Valdoria is governed from"],
         "train_paraphrases": ["The seat of Valdoria's government is"],
         "locality": [{"prompt": "The capital of France is", "answer": "Paris"}],
         "subject": "Valdoria", "original_target": "Ostmark"},
        {"prompt": "The mayor of Port Evander is", "target": "Ada Quill"},
    ]


def test_plain_json_round_trip(tmp_path):
    path = tmp_path / "edits.json"
    path.write_text(json.dumps(_as_dicts()), encoding="utf-8")
    report = load_edits(path)
    assert (report.format, report.records, report.skipped) == ("plain", EXPECTED, [])


def test_plain_jsonl_round_trip_with_pair_locality(tmp_path):
    rows = _as_dicts()
    rows[0]["locality"] = [["The capital of France is", "Paris"]]  # the [prompt, answer] form
    path = tmp_path / "edits.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    assert load_edits(path).records == EXPECTED


def test_plain_csv_round_trip(tmp_path):
    path = tmp_path / "edits.csv"
    with path.open("w", newline="", encoding="utf-8-sig") as f:  # with a BOM, as Excel saves
        w = csv.writer(f)
        w.writerow(["prompt", "target", "paraphrases", "train_paraphrases",
                    "locality_prompt", "locality_answer", "subject", "original_target"])
        w.writerow(["The capital of Valdoria is", "Brennhaven",
                    "Valdoria's capital city is | Valdoria is governed from|",
                    "The seat of Valdoria's government is", "The capital of France is", "Paris",
                    "Valdoria", "Ostmark"])
        w.writerow(["The mayor of Port Evander is", "Ada Quill", "", "", "", "", "", ""])
    report = load_edits(path)
    assert (report.format, report.records, report.skipped) == ("plain", EXPECTED, [])


# --- malformed records are skipped, the rest load ------------------------------------------


def test_malformed_json_records_are_skipped(tmp_path):
    rows = [
        {"prompt": "A is", "target": "B"},
        {"prompt": "C is"},                                   # 1: missing target
        {"prompt": "  ", "target": "D"},                      # 2: empty prompt
        {"prompt": "E is", "target": 5},                      # 3: wrong type
        "not an object",                                      # 4
        {"prompt": "F is", "target": "G", "paraphrases": "H is"},   # a lone string is fine
        {"prompt": "I is", "target": "J", "locality": [["only prompt"]]},  # 6: bad pair
        {"prompt": "K is", "target": "L", "paraphrases": ["ok", ""]},       # 7: empty paraphrase
    ]
    path = tmp_path / "e.json"
    path.write_text(json.dumps(rows))
    report = load_edits(path)
    assert [r.source_index for r in report.records] == [0, 5]
    assert report.records[1].paraphrases == ("H is",)
    reasons = dict(report.skipped)
    assert sorted(reasons) == [1, 2, 3, 4, 6, 7]
    assert "target" in reasons[1] and "prompt" in reasons[2] and "target" in reasons[3]
    assert "locality[0]" in reasons[6] and "paraphrases[1]" in reasons[7]


def test_malformed_dataset_records_are_skipped(tmp_path):
    good = json.loads(dev_split("counterfact").read_text("utf-8"))[0]
    no_braces = json.loads(json.dumps(good))
    no_braces["requested_rewrite"]["prompt"] = "The mother tongue is"
    no_target = json.loads(json.dumps(good))
    del no_target["requested_rewrite"]["target_new"]
    path = tmp_path / "cf.json"
    path.write_text(json.dumps([no_braces, good, no_target]))
    report = load_edits(path)
    assert report.format == "counterfact"  # detected from the first record's keys
    assert [r.source_index for r in report.records] == [1]
    assert [i for i, _ in report.skipped] == [0, 2]
    assert "{}" in report.skipped[0][1] and "target_new" in report.skipped[1][1]


def test_bad_jsonl_line_is_one_skipped_record(tmp_path):
    path = tmp_path / "e.jsonl"
    path.write_text('{"prompt": "A is", "target": "B"}\n{"prompt": oops}\n{"prompt": "C is", "target": "D"}\n')
    report = load_edits(path)
    assert [r.source_index for r in report.records] == [0, 2]
    assert report.skipped[0][0] == 1 and "line 2" in report.skipped[0][1]


def test_csv_half_locality_pair_is_skipped(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("prompt,target,locality_prompt\nA is,B,\nC is,D,E is\nF is,G,x,extra\n")
    report = load_edits(path)
    assert [r.source_index for r in report.records] == [0]
    assert [i for i, _ in report.skipped] == [1, 2]
    assert "together" in report.skipped[0][1] and "more cells" in report.skipped[1][1]


# --- files that cannot be read at all ------------------------------------------------------


@pytest.mark.parametrize("name, content, message", [
    ("bad.json", '[\n {"prompt": "A", "target": "B"},\n {"prompt": \n]', r"not valid JSON at line 4"),
    ("obj.json", '{"prompt": "A", "target": "B"}', r"top level is a JSON dict; expected a list"),
    ("lines.json", '{"prompt": "A", "target": "B"}\n{"prompt": "C", "target": "D"}\n', r"\.jsonl"),
    ("empty.json", "  \n", r"empty"),
    ("none.json", "[]", r"no records"),
    ("unknown.json", '[{"question": "A", "answer": "B"}]', r"unknown data format.*'answer', 'question'"),
    ("allbad.json", '[{"prompt": "A"}, {"prompt": "B", "target": ""}]',
     r"no valid plain records.*#0: missing 'target'"),
    ("header.csv", "question,answer\nA,B\n", r"lacks the column\(s\) \['prompt', 'target'\]"),
    ("latin1.json", b'[{"prompt": "caf\xe9", "target": "x"}]', r"not UTF-8"),
])
def test_fatal_errors_name_file_and_problem(tmp_path, name, content, message):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(DataFormatError, match=message) as info:
        load_edits(path)
    assert str(path) in str(info.value)


def test_missing_file_and_bad_arguments(tmp_path):
    with pytest.raises(DataFormatError, match="no such file") as info:
        load_edits(tmp_path / "nope.json")
    assert "nope.json" in str(info.value)
    with pytest.raises(DataFormatError, match="is a directory|cannot be read"):
        load_edits(tmp_path)
    with pytest.raises(DataFormatError, match="unknown format 'rome'"):
        load_edits(dev_split("zsre"), format="rome")
    (tmp_path / "e.csv").write_text("prompt,target\nA is,B\n")
    with pytest.raises(DataFormatError, match="plain format only"):
        load_edits(tmp_path / "e.csv", format="zsre")
    with pytest.raises(ValueError):
        load_edits(dev_split("zsre"), offset=-1)


def test_explicit_format_mismatch_skips_everything(tmp_path):
    with pytest.raises(DataFormatError, match="no valid counterfact records.*requested_rewrite"):
        load_edits(SAMPLES / "zsre_sample.json", format="counterfact")


# --- limit and offset count valid records ---------------------------------------------------


def test_limit_and_offset_count_valid_records(tmp_path):
    rows = [{"prompt": f"P{i}", "target": f"T{i}"} if i % 3 else {"prompt": f"P{i}"} for i in range(10)]
    path = tmp_path / "e.json"
    path.write_text(json.dumps(rows))
    full = load_edits(path)
    valid = [r.source_index for r in full.records]
    assert valid == [1, 2, 4, 5, 7, 8] and [i for i, _ in full.skipped] == [0, 3, 6, 9]
    part = load_edits(path, offset=2, limit=3)
    assert [r.source_index for r in part.records] == valid[2:5]
    assert part.skipped == full.skipped  # skipped always covers the whole file
    assert load_edits(path, offset=5).records == full.records[5:]
    assert load_edits(path, offset=50).records == []
    assert load_edits(path, limit=0).records == []
    zsre = load_edits(dev_split("zsre"), offset=590)
    assert [r.source_index for r in zsre.records] == list(range(590, 600))


# --- detect_format ---------------------------------------------------------------------------


def test_detect_format():
    assert detect_format({"src": "q", "alt": "a", "loc": "x"}) == "zsre"
    assert detect_format({"requested_rewrite": {}}) == "counterfact"
    assert detect_format({"prompt": "p", "target_new": "t"}) == "hallucination"
    assert detect_format({"prompt": "p", "target": "t"}) == "plain"
    assert detect_format([42, {"junk": 1}, {"src": "q", "alt": "a"}]) == "zsre"
    with pytest.raises(DataFormatError, match="unknown data format"):
        detect_format({"question": "q"})
