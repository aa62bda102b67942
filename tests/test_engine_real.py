"""Behaviour on the real default model (SmolLM2-135M-Instruct): edits stick, deferral gives
the base model exactly, switching the experts off gives the base model exactly."""

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from elder_engine import EditRequest, ElderEditor, get_profile
from elder_engine.models.tokens import encode

pytestmark = pytest.mark.real_model
ROOT = Path(__file__).resolve().parents[1]

FACT = EditRequest("The capital of France is", "Lyon")
UNRELATED = "The mother tongue of Danielle Darrieux is"


def logits(editor, prompt, original=False):
    batch = encode(editor.tokenizer, [prompt]).to(editor.device)
    with torch.no_grad():
        if original:
            with editor.original():
                return editor.model(**batch.model_inputs()).logits
        with editor.tuner.routing.session(batch.query_positions, expert_index=editor.expert_index([prompt])):
            return editor.model(**batch.model_inputs()).logits


@pytest.mark.parametrize("profile", ["paper", "keyed-experts"])
def test_an_edit_sticks_and_unrelated_knowledge_stays(fresh_default_model, profile):
    editor = ElderEditor(fresh_default_model, get_profile(profile))
    before = editor.probe(FACT.prompt, FACT.target)
    assert before.original_output.startswith(" Paris")
    editor.apply(FACT)
    after = editor.probe(FACT.prompt, FACT.target)
    assert after.fired
    assert after.edited_output.startswith(" Lyon")
    assert after.edited_target_prob > 0.5 > after.original_target_prob
    assert after.original_output == before.original_output
    other = editor.probe(UNRELATED)
    assert other.original_output.startswith(" French")
    # the unrelated fact survives the edit, whether the router fired on it or not
    assert other.edited_output.startswith(" French"), other.edited_output
    if profile == "keyed-experts":  # its scope check defers the unrelated prompt: the base model exactly
        assert not other.fired
    if not other.fired:
        assert other.edited_output == other.original_output
        assert torch.equal(logits(editor, UNRELATED), logits(editor, UNRELATED, original=True))


def test_a_deferred_query_gives_exactly_the_base_model(fresh_default_model):
    editor = ElderEditor(fresh_default_model, get_profile("paper"))
    editor.apply(FACT)
    editor.set_inference(epsilon=0)  # no query is near enough: every query defers
    probe = editor.probe(FACT.prompt)
    assert not probe.fired and probe.edited_output == probe.original_output
    assert torch.equal(logits(editor, FACT.prompt), logits(editor, FACT.prompt, original=True))


def test_keyed_deferral_gives_exactly_the_base_model(fresh_default_model):
    editor = ElderEditor(fresh_default_model, get_profile("keyed-experts"))
    editor.apply(FACT)
    assert not editor.probe(UNRELATED).fired
    assert torch.equal(logits(editor, UNRELATED), logits(editor, UNRELATED, original=True))


def test_experts_off_give_exactly_the_base_model(fresh_default_model, default_model):
    editor = ElderEditor(fresh_default_model, get_profile("paper"))
    editor.apply(FACT)
    bare = encode(default_model.tokenizer, [FACT.prompt])
    with torch.no_grad():
        reference = default_model.model(**bare.model_inputs()).logits
    assert torch.equal(logits(editor, FACT.prompt, original=True), reference)


def run_cli(*args, timeout=600):
    proc = subprocess.run([sys.executable, "-m", "elder_engine", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)
    return proc


def test_eval_cli_prints_metrics_and_writes_raw_outputs(tmp_path, default_model):
    out = tmp_path / "raw.json"
    proc = run_cli("eval", "--data", str(ROOT / "resources/samples/zsre_sample.json"), "--limit", "2",
                   "--out", str(out), "--profile", "keyed-experts")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("edits", "reliability", "generalization", "locality", "reliability_em", "generalization_em",
                "locality_em", "seconds_per_edit", "threads", "model"):
        assert key in summary
    assert summary["edits"] == 2 and summary["threads"] == 1
    assert "| 2/2 [" in proc.stderr  # the progress bar (tqdm) reached the end
    raw = json.loads(out.read_text())
    assert len(raw["items"]) == 2 and "output" in raw["items"][0]
    # iterations per edit: the speed figure that the machine's load does not change
    steps = raw["edit_steps"]
    assert len(steps) == 2 and all(1 <= s <= 50 for s in steps)
    assert summary["steps_per_edit_median"] == statistics.median(steps)
    assert summary["seconds_per_edit_median"] == statistics.median(raw["edit_seconds"])


def test_bench_cli_reports_its_figures(default_model):
    proc = run_cli("bench", "--edits", "2", "--prompts", "2", "--tokens", "4", "--profile", "keyed-experts")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    # it measured what it says: 2 edits, each trained (1-50 steps), 2 prompts of 4 tokens, 1 thread
    assert (result["edits"], result["inference_prompts"], result["tokens_per_prompt"], result["threads"]) == (2, 2, 4, 1)
    assert result["method"] == "elder" and result["profile"] == "keyed-experts"
    assert 1 <= result["steps_per_edit_median"] <= 50
    assert 0 < result["seconds_per_edit_median"] and result["seconds_per_edit_mean"] > 0
    # the overhead is the ratio of the two measured totals, and plausible for a 135M model
    assert result["inference_overhead"] == pytest.approx(
        result["inference_seconds_elder"] / result["inference_seconds_bare"], rel=1e-9)
    assert 0.5 < result["inference_overhead"] < 20
    # at least one copy of a 135M float32 model (~540 MB) was held: RSS in MB, not KB or bytes
    assert 600 < result["peak_rss_mb"] < 16000
    elder = result["methods"]["elder"]
    assert elder["extra_parameters"] > 0 and elder["state_bytes"] > 0  # the edits left experts behind
    assert elder["seconds_per_edit_median"] == result["seconds_per_edit_median"]


def test_cli_errors_are_one_line_messages(tmp_path):
    proc = run_cli("eval", "--data", str(tmp_path / "missing.json"), "--limit", "1")
    assert proc.returncode == 2
    assert proc.stderr.startswith("error:") and "Traceback" not in proc.stderr
    proc = run_cli("eval", "--data", str(ROOT / "resources/samples/zsre_sample.json"), "--model", str(tmp_path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
