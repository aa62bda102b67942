"""Device check for the GPU code paths (cuda, bfloat16, device_map="auto"), run where a GPU is lent.

CI has no GPU, so these paths are checked by hand with this script on a lent machine. It needs no
download: tiny models are built from configs, and a model of the default model's exact shape is
built from its config.json (random weights) when `--shapes FOLDER` names a folder holding that
config and its tokenizer files. It prints one line per check and a last JSON line; exit status 1
if any check failed.

    python scripts/gpu_check.py [--device cuda] [--shapes FOLDER]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from elder_engine import EditRequest, ElderEditor, LoadSettings, get_profile, load_model  # noqa: E402
from elder_engine.elder.layer import ElderLayer  # noqa: E402
from elder_engine.editing.state import state_tensors  # noqa: E402

RESULTS: list[dict] = []


def check(name: str, ok: bool, detail: str = "") -> None:
    RESULTS.append({"check": name, "ok": bool(ok), "detail": detail})
    print(f"{'PASS' if ok else 'FAIL'}  {name}  {detail}", flush=True)


def layers_on_base_device(editor) -> tuple[bool, str]:
    devices = set()
    for module in editor.model.modules():
        if isinstance(module, ElderLayer):
            base = module.get_base_layer().weight.device
            for p in module.parameters(recurse=True):
                if p is module.get_base_layer().weight or p is getattr(module.get_base_layer(), "bias", None):
                    continue
                if p.device != base:
                    return False, f"{p.device} != {base}"
            devices.add(str(base))
    return True, ",".join(sorted(devices))


def exercise(load, label: str, prompt: str, target: str, other: str, **overrides) -> None:
    """`load()` gives a fresh model each time: ELDER attaches once per loaded model."""
    for profile in ("paper", "keyed-experts"):
        editor = ElderEditor(load(), get_profile(profile, **overrides))
        before = editor.probe(prompt, target=target)
        for event in editor.edit(EditRequest(prompt, target)):
            pass
        after = editor.probe(prompt, target=target)
        ok, where = layers_on_base_device(editor)
        check(f"{label}/{profile}: ELDER layers on their base layer's device", ok, where)
        # a 32-wide random model's final norm bounds its logits: P(target) stays small, so the
        # check is the greedy answer (and that P(target) rose)
        learned = after.edited_output.strip().startswith(target) and \
            after.edited_target_prob >= before.original_target_prob
        check(f"{label}/{profile}: edit learned (greedy answer is the target)", learned,
              f"{before.original_target_prob:.3g} -> {after.edited_target_prob:.3g}, fired={after.fired}")
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "state.safetensors"
            editor.save(path)
            again = ElderEditor.from_state(load(), path)
            a, b = editor.probe(other, target=target), again.probe(other, target=target)
            same = (a.edited_output, a.edited_target_prob, a.fired) == (b.edited_output, b.edited_target_prob, b.fired)
            check(f"{label}/{profile}: reload gives identical probe", same)
            a, b = editor.probe(prompt, target=target), again.probe(prompt, target=target)
            check(f"{label}/{profile}: reload gives identical probe (edited prompt)",
                  (a.edited_output, a.edited_target_prob) == (b.edited_output, b.edited_target_prob))
        snap = {k: v.clone() for k, v in state_tensors(editor).items()}
        gen = editor.edit(EditRequest(other, "paris"))
        next(gen)
        next(gen)
        gen.close()  # closing the generator mid-edit is a cancel
        after_cancel = state_tensors(editor)
        same = snap.keys() == after_cancel.keys() and all(torch.equal(snap[k], after_cancel[k]) for k in snap)
        check(f"{label}/{profile}: cancelled edit restores the state bitwise", same)


def tiny_checks(device: str) -> None:
    from tiny import tiny_model, tiny_tokenizer

    # qwen2 is left out: for model_type qwen2, transformers 5 rebuilds the tiny word-level tokenizer
    # as a BPE one that encodes nothing (a test-fixture quirk; the engine refuses such targets)
    for family in ("llama", "gpt2", "mistral", "gpt_neox"):
        with tempfile.TemporaryDirectory() as folder:
            tiny_model(family).save_pretrained(folder)
            tiny_tokenizer().save_pretrained(folder)
            settings = [("device", LoadSettings(device=device)),
                        ("bf16", LoadSettings(device=device, dtype="bfloat16")),
                        ("device_map", LoadSettings(device_map="auto"))]
            for name, s in settings:
                try:
                    loaded = load_model(folder, s)
                except Exception as error:  # report and go on: one broken path must not hide the others
                    check(f"tiny-{family}/{name}: loads", False, f"{type(error).__name__}: {error}")
                    continue
                check(f"tiny-{family}/{name}: loads", True, f"{loaded.device} {next(loaded.model.parameters()).dtype}")
                try:
                    exercise(lambda: load_model(folder, s), f"tiny-{family}/{name}", "the capital of zorbia is", "quux",
                             "who wrote hamlet ?", num_edit_layers=2, learning_rate=5e-2, max_steps=60,
                             lora_alpha=256)  # as the tiny-model unit tests: a 32-wide model needs a higher rate
                except Exception as error:
                    check(f"tiny-{family}/{name}: edit/probe/save", False, f"{type(error).__name__}: {error}")


def shape_checks(device: str, shapes: Path, edits: int) -> dict:
    """A model of the default model's shape (random weights): edit speed and inference overhead."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from elder_engine.models.tokens import encode

    figures = {}
    with tempfile.TemporaryDirectory() as folder:
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(shapes))
        model.save_pretrained(folder)
        AutoTokenizer.from_pretrained(shapes).save_pretrained(folder)
        bare = load_model(folder, LoadSettings(device=device))
        prompts = [f"Question {i}: what is the name of the river in city number {i}?" for i in range(edits)]
        for profile in ("paper", "keyed-experts"):
            editor = ElderEditor(load_model(folder, LoadSettings(device=device)), get_profile(profile))
            seconds = []
            for i, p in enumerate(prompts):
                t0 = time.perf_counter()
                editor.apply(EditRequest(p, f"Answer {i}"))
                if device == "cuda":
                    torch.cuda.synchronize()
                seconds.append(time.perf_counter() - t0)
            ok, where = layers_on_base_device(editor)
            check(f"shape/{profile}: ELDER layers on their base layer's device", ok, where)

            def run_bare(p):
                b = encode(bare.tokenizer, [p]).to(bare.device)
                bare.model.generate(input_ids=b.input_ids, attention_mask=b.attention_mask, max_new_tokens=16,
                                    min_new_tokens=16, do_sample=False, pad_token_id=bare.tokenizer.pad_token_id)

            spent = {"bare": 0.0, "elder": 0.0}
            mixed = prompts[:10] + [f"Tell me about topic {i}." for i in range(10)]
            for i, p in enumerate(mixed):
                order = [("bare", run_bare), ("elder", lambda q: editor.generate([q], 16, fixed_length=True))]
                for name, fn in (order if i % 2 else order[::-1]):
                    t0 = time.perf_counter()
                    with torch.no_grad():
                        fn(p)
                    if device == "cuda":
                        torch.cuda.synchronize()
                    spent[name] += time.perf_counter() - t0
            figures[profile] = {"seconds_per_edit_median": statistics.median(seconds[1:]),
                                "inference_overhead": spent["elder"] / spent["bare"], "edits": edits}
            check(f"shape/{profile}: timings", True, json.dumps(figures[profile]))
    return figures


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--shapes", type=Path, default=None)
    p.add_argument("--edits", type=int, default=10)
    args = p.parse_args()
    import peft
    import transformers
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}, "
          f"cuda {torch.cuda.is_available()} {torch.cuda.get_device_name(0) if torch.cuda.is_available() else ''}")
    tiny_checks(args.device)
    figures = shape_checks(args.device, args.shapes, args.edits) if args.shapes else {}
    failed = [r["check"] for r in RESULTS if not r["ok"]]
    print(json.dumps({"checks": len(RESULTS), "failed": failed, "figures": figures, "device": args.device}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
