"""Comparison runs: curves, report and the eval / bench commands.

The first tests use made-up results (fast); the `real_model` ones run every method end to end
on the default model with a handful of edits and a few training steps."""

import base64
import csv
import json
import re

import pytest

from elder_engine.cli.main import main
from elder_engine.evaluation.comparison import FIGURES, MethodRun
from elder_engine.evaluation.curves import parse_checkpoints, write_curves
from elder_engine.evaluation.data import dev_split
from elder_engine.evaluation.lifelong import EvalResult
from elder_engine.evaluation.report import build_html, disagreements, text_table

METHODS = ("elder", "lora", "ft-l", "grace")


def _result(n, score, output):
    items = [{"index": i, "prompt": f"prompt {i}", "target": "t", "reliability": score, "reliability_em": 1.0,
              "output": output if i == 0 else "same",
              "paraphrases": [{"prompt": f"para {i}", "accuracy": score, "em": 0.0, "output": "same"}],
              "locality": [{"prompt": f"loc {i}", "accuracy": 1.0, "em": 1.0, "output": "same"}]}
             for i in range(n)]
    return EvalResult(n, score, score / 2, 1.0, score, 0.0, 1.0, 0.5, items=items)


def _runs():
    return {name: MethodRun(name, _result(4, 0.25 * k, f"out-{name}"),
                            {2: _result(2, 0.2 * k, "x"), 4: _result(4, 0.25 * k, f"out-{name}")}, 1000 * k, 4096 * k,
                            {"method": name, "learning_rate": 0.1})
            for k, name in enumerate(METHODS, 1)}


def test_parse_checkpoints():
    assert parse_checkpoints("100, 10,20,50") == [10, 20, 50, 100]
    assert parse_checkpoints(None) == []
    with pytest.raises(ValueError):
        parse_checkpoints("10,x")
    with pytest.raises(ValueError):
        parse_checkpoints("0,5")


def test_curves_files(tmp_path):
    paths = write_curves(_runs(), tmp_path / "run-curves", {"data_sha256": "abc"})
    rows = list(csv.DictReader(open(paths["csv"])))
    assert [(r["method"], r["edits"]) for r in rows] == [(m, n) for m in METHODS for n in ("2", "4")]
    doc = json.loads(open(paths["json"]).read())
    assert doc["data_sha256"] == "abc" and len(doc["curves"]) == 8
    assert open(paths["png"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_report_has_every_method_and_the_disagreements():
    runs = _runs()
    sample = disagreements(runs)
    assert [s["item"]["index"] for s in sample] == [0]  # only record 0's outputs differ
    page = build_html(runs, {"model_fingerprint": "f00d", "data_sha256": "beef"})
    for name in METHODS:
        assert f"<td class=\"\">{name}</td>" in page and f"out-{name}" in page
    assert "f00d" in page and "beef" in page
    png = re.search(r'src="data:image/png;base64,([^"]+)"', page).group(1)
    assert base64.b64decode(png)[:4] == b"\x89PNG"
    assert "4.0 KiB" in text_table(runs) and text_table(runs).splitlines()[0].startswith("method")


FEW_STEPS = [arg for m in METHODS for arg in ("--set", f"{m}.max_steps=3")]


@pytest.mark.real_model
@pytest.mark.slow
def test_eval_all_methods_end_to_end(default_model, default_model_cache_dir, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("ELDER_CACHE_DIR", default_model_cache_dir)
    report = tmp_path / "report.html"
    code = main(["eval", "--data", str(dev_split("zsre")), "--offset", "300", "--limit", "2", "--method", "all",
                 "--checkpoints", "1,2", "--report", str(report), "--out", str(tmp_path / "raw.json"), *FEW_STEPS])
    assert code == 0
    captured = capsys.readouterr()
    last = json.loads(captured.out.strip().splitlines()[-1])
    assert list(last["methods"]) == list(METHODS)
    for name, figures in last["methods"].items():
        assert set(FIGURES) <= set(figures) and figures["edits"] == 2
        assert 0.0 <= figures["locality"] <= 1.0
    assert last["methods"]["ft-l"]["extra_parameters"] == 0 and last["methods"]["grace"]["state_bytes"] > 0
    assert last["model_fingerprint"] == default_model.fingerprint and len(last["data_sha256"]) == 64
    assert "method" in captured.err and "grace" in captured.err  # the comparison table
    page = report.read_text()
    assert all(f">{name}</td>" in page for name in METHODS) and last["data_sha256"] in page
    rows = list(csv.DictReader(open(last["curves"]["csv"])))
    assert [(r["method"], r["edits"]) for r in rows] == [(m, n) for m in METHODS for n in ("1", "2")]
    raw = json.loads((tmp_path / "raw.json").read_text())
    assert set(raw["methods"]) == set(METHODS) and len(raw["methods"]["grace"]["items"]) == 2


@pytest.mark.real_model
@pytest.mark.slow
def test_bench_methods_and_scaling(default_model, default_model_cache_dir, monkeypatch, capsys):
    monkeypatch.setenv("ELDER_CACHE_DIR", default_model_cache_dir)
    assert main(["bench", "--method", "elder,grace", "--edits", "1", "--prompts", "2", "--tokens", "2",
                 "--set", "elder.max_steps=2", "--set", "grace.max_steps=2"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("seconds_per_edit_median", "inference_overhead", "inference_seconds_elder", "inference_seconds_bare"):
        assert out[key] > 0
    assert set(out["methods"]) == {"elder", "grace"} and out["methods"]["grace"]["inference_overhead"] > 0
    assert main(["bench", "--scaling", "2,3", "--window", "1", "--tokens", "2",
                 "--set", "elder.max_steps=2"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [row["edits"] for row in out["scaling"]] == [2, 3]
    assert all(row["timed_edits"] == 1 and row["state_file_bytes"] > 0 for row in out["scaling"])
    assert all(row["routing_ms_per_query"] > 0 for row in out["scaling"])
    # the match is what remains of the decision without its forward: a part of it
    assert all(row["routing_match_ms_per_query"] < row["routing_ms_per_query"] for row in out["scaling"])
    assert out["routing_ms_added"] == pytest.approx(
        out["scaling"][-1]["routing_ms_per_query"] - out["scaling"][0]["routing_ms_per_query"], rel=1e-9, abs=1e-12)
    assert out["filler_settings"] == {"max_steps": 1}


def test_a_record_the_method_refuses_is_skipped_and_reported_not_fatal():
    """A record with a target over the engine's token limit (the hallucination set has one of
    98 tokens) used to end the whole run; it is now skipped, named, and left out of every metric."""
    from history_helpers import tiny_editor

    from elder_engine.evaluation.data import EditRecord
    from elder_engine.evaluation.lifelong import lifelong_eval

    editor = tiny_editor(profile="keyed-experts", max_steps=2)
    long_target = " ".join(["quux"] * 80)
    records = [EditRecord("the capital of france is", "london", source_index=0),
               EditRecord("the king was born in", long_target, source_index=1),
               EditRecord("who wrote hamlet ?", "paris", source_index=2)]
    events = list(lifelong_eval(editor, records))
    result = events[-1].detail["result"]
    assert [i for i, _ in result.skipped] == [1]
    assert "tokens long" in result.skipped[0][1]
    assert result.edits == 2 and len(editor.edits) == 2
    assert [item["index"] for item in result.items] == [0, 2]
    assert result.summary()["skipped"] == 1 and not result.cancelled
    assert any("skipped record 1" in e.message for e in events)
