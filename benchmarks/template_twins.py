#!/usr/bin/env python
"""Template twins: counterfactual edits of well-known facts, applied in sequence, then checked
the way a user checks them (greedy generation on the default model):

- the edited prompt gives the new target;
- its paraphrases (never trained on) give it;
- its neighbours (the same template with another subject) and unrelated prompts give exactly
  the original model's output, token for token.

    .venv/bin/python benchmarks/template_twins.py [--profile scoped-router] [--file F] [--tokens 8]

Prints a table to stderr and one JSON line to stdout. `--no-subject` applies the edits without
their subjects (the engine then guesses them).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_FILE = ROOT / "resources" / "scenarios" / "template_twins.json"


def gives(editor, prompts: list[str], target: str) -> list[bool]:
    """Greedy continuation starts with the target's tokens."""
    out = []
    for p in prompts:
        gold = editor.prompt_format.target_ids(editor.tokenizer, p, target)
        ids = editor.generate([p], len(gold))[0]
        out.append(ids[: len(gold)] == gold)
    return out


def unchanged(editor, prompts: list[str], tokens: int) -> list[bool]:
    edited = editor.generate(prompts, tokens)
    original = editor.generate(prompts, tokens, original=True)
    return [a == b for a, b in zip(edited, original)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default=None)
    ap.add_argument("--file", default=str(DEFAULT_FILE))
    ap.add_argument("--tokens", type=int, default=8, help="greedy tokens compared for neighbours and unrelated")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-subject", action="store_true")
    ap.add_argument("--chat", action="store_true", help="prompts as the user's turn of the model's chat template")
    args = ap.parse_args(argv)

    import torch

    from elder_engine import DEFAULT_PROFILE, EditRequest, ElderEditor, get_profile, load_model
    from elder_engine.elder.negatives import entities
    from elder_engine.models.loading import LoadSettings

    torch.set_num_threads(args.threads)
    data = json.loads(Path(args.file).read_text(encoding="utf-8"))
    config = get_profile(args.profile or DEFAULT_PROFILE).replace(prompt_format="chat" if args.chat else "plain")
    editor = ElderEditor(load_model("default", LoadSettings(threads=args.threads)), config)
    seconds, steps = [], []
    for e in data["edits"]:
        t0 = time.perf_counter()
        applied = editor.apply(EditRequest(e["prompt"], e["target"], subject="" if args.no_subject else e["subject"]))
        seconds.append(time.perf_counter() - t0)
        steps.append(applied.steps)
        print(f"  edit {len(seconds)}/{len(data['edits'])}: {e['prompt']} -> {e['target']} "
              f"({applied.steps} steps, {seconds[-1]:.2f} s)", file=sys.stderr)
    known = {n.lower().removeprefix("the ") for n in entities()}
    rel, gen, nb, nb_listed, nb_unlisted, failures = [], [], [], [], [], []
    for e in data["edits"]:
        ok = gives(editor, [e["prompt"]], e["target"])[0]
        rel.append(ok)
        if not ok:
            failures.append(("reliability", e["prompt"]))
        for p, good in zip(e["paraphrases"], gives(editor, e["paraphrases"], e["target"])):
            gen.append(good)
            if not good:
                failures.append(("paraphrase", p))
        for p, same in zip(e["neighbours"], unchanged(editor, e["neighbours"], args.tokens)):
            nb.append(same)
            # is the neighbour's subject one of the shipped swap names? (then it was a trained negative)
            listed = any(name in p.lower() for name in known)
            (nb_listed if listed else nb_unlisted).append(same)
            if not same:
                failures.append(("neighbour", p))
    un = unchanged(editor, data["unrelated"], args.tokens)
    failures += [("unrelated", p) for p, same in zip(data["unrelated"], un) if not same]
    share = lambda xs: round(sum(xs) / len(xs), 3) if xs else None
    result = {
        "profile": editor.config.profile, "prompt_format": editor.config.prompt_format, "edits": len(data["edits"]),
        "reliability": share(rel),
        "generalization": share(gen), "neighbours_unchanged": share(nb), "unrelated_unchanged": share(un),
        "neighbours_unchanged_listed_subject": share(nb_listed), "neighbours_listed": len(nb_listed),
        "neighbours_unchanged_unlisted_subject": share(nb_unlisted), "neighbours_unlisted": len(nb_unlisted),
        "locality": share(nb + un), "seconds_per_edit_median": sorted(seconds)[len(seconds) // 2],
        "steps_per_edit_median": sorted(steps)[len(steps) // 2], "threads": args.threads,
        "subjects_given": not args.no_subject, "failures": failures,
    }
    print(f"\nprofile {result['profile']}: {result['edits']} edits", file=sys.stderr)
    for k in ("reliability", "generalization", "neighbours_unchanged", "unrelated_unchanged",
              "neighbours_unchanged_listed_subject", "neighbours_unchanged_unlisted_subject"):
        print(f"  {k:40s} {result[k]}", file=sys.stderr)
    for kind, p in failures:
        print(f"  miss ({kind}): {p}", file=sys.stderr)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
