#!/usr/bin/env python
"""Chat format on the default model: how the original model answers, and how routing reads
the prompt's end inside the template.

    .venv/bin/python benchmarks/chat_format.py answers [--limit 100]
        The unedited model's greedy answers to ZsRE questions (records 0-99 by default), in
        plain text and in the chat template: exact match against the records' ground-truth
        answer (the answer's tokens come first, as `metrics.exact_match` compares), the answer
        contained anywhere in the output, and the share of empty outputs.

    .venv/bin/python benchmarks/chat_format.py routing --data F --offset N --limit M --chat-query prompt|user
        Applies M edits (default profile, chat format, in order) and then routes every record's
        prompt, held-out paraphrases and locality prompts: the share of prompts that use their
        own edit's experts, of paraphrases that fire (any edit, and their own), and of locality
        prompts (ZsRE: unrelated NQ questions; COUNTERFACT: same-relation neighbours) that defer.
        "Own edit" counts an edit of the same subject and target as the record's own (ZsRE asks
        one fact several times in a row).

Prints a table to stderr and one JSON line to stdout. Dev records only for choosing settings
(ZsRE 300-399, COUNTERFACT 0-74).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"


def _editor(args, prompt_format: str, chat_query: str = "prompt"):
    from elder_engine import DEFAULT_PROFILE, ElderEditor, get_profile, load_model
    from elder_engine.models.loading import LoadSettings

    config = get_profile(args.profile or DEFAULT_PROFILE).replace(prompt_format=prompt_format, chat_query=chat_query)
    return ElderEditor(load_model("default", LoadSettings(threads=args.threads)), config)


def answers(args) -> dict:
    from elder_engine import load_edits

    records = load_edits(args.data or DATA / "zsre_dev.json", limit=args.limit, offset=args.offset).records
    out = {}
    for fmt in ("plain", "chat"):
        editor = _editor(args, fmt)
        tok, pf = editor.tokenizer, editor.prompt_format
        em = contains = empty = 0
        samples = []
        for i in range(0, len(records), 16):
            chunk = records[i:i + 16]
            generated = editor.generate([r.prompt for r in chunk], args.tokens, original=True)
            for r, ids in zip(chunk, generated):
                gold = pf.target_ids(tok, r.prompt, r.original_target)
                text = tok.decode(ids, skip_special_tokens=True).strip()
                em += int(ids[: len(gold)] == gold)
                contains += int(r.original_target.lower() in text.lower())
                empty += int(not text)
                if len(samples) < 5:
                    samples.append({"prompt": r.prompt, "answer": r.original_target, "output": text})
        n = len(records)
        out[fmt] = {"exact_match": em / n, "contains_answer": contains / n, "empty": empty / n, "samples": samples}
        print(f"{fmt:>6}: exact match {em / n:.3f}, answer contained {contains / n:.3f}, empty {empty / n:.3f}",
              file=sys.stderr)
    return {"records": len(records), "offset": args.offset, "tokens": args.tokens, **out}


def routing(args) -> dict:
    from elder_engine import EditRequest, load_edits

    records = load_edits(args.data, limit=args.limit, offset=args.offset).records
    editor = _editor(args, "plain" if args.plain else "chat", args.chat_query)
    t0 = time.perf_counter()
    for n, r in enumerate(records, 1):
        editor.apply(EditRequest(r.prompt, r.target, r.train_paraphrases, subject=r.subject))
        if n % 10 == 0:
            print(f"  {n}/{len(records)} edits, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    same = [{j for j, o in enumerate(records) if (o.subject.lower(), o.target) == (r.subject.lower(), r.target)}
            for r in records]
    prompts = editor.expert_index([r.prompt for r in records]).tolist()
    own = sum(int(e in same[i]) for i, e in enumerate(prompts))
    para = [(i, p) for i, r in enumerate(records) for p in r.paraphrases]
    para_routes = editor.expert_index([p for _, p in para]).tolist() if para else []
    loc = [p for r in records for p, _ in r.locality]
    loc_routes = editor.expert_index(loc).tolist() if loc else []
    result = {
        "data": Path(args.data).name, "offset": args.offset, "edits": len(records),
        "prompt_format": editor.config.prompt_format, "chat_query": editor.config.chat_query,
        "prompt_own_edit": own / len(records),
        "paraphrase_fires": sum(int(e >= 0) for e in para_routes) / max(1, len(para)),
        "paraphrase_own_edit": sum(int(e in same[i]) for (i, _), e in zip(para, para_routes)) / max(1, len(para)),
        "locality_defers": sum(int(e < 0) for e in loc_routes) / max(1, len(loc)),
        "paraphrases": len(para), "locality_prompts": len(loc),
        "edit_seconds": time.perf_counter() - t0,
    }
    for k, v in result.items():
        print(f"{k:>20}: {v:.3f}" if isinstance(v, float) else f"{k:>20}: {v}", file=sys.stderr)
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["answers", "routing"])
    ap.add_argument("--data", default=None)
    ap.add_argument("--offset", type=int, default=0)
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--tokens", type=int, default=16, help="answers: greedy tokens per question")
    ap.add_argument("--chat-query", default="text", choices=["prompt", "user", "text"])
    ap.add_argument("--plain", action="store_true", help="routing: in plain text instead (for comparison)")
    ap.add_argument("--profile", default=None)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    if args.mode == "routing" and not args.data:
        ap.error("routing needs --data")
    result = answers(args) if args.mode == "answers" else routing(args)
    print(json.dumps({**result, "threads": args.threads}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
