"""`bench`: edit speed, inference overhead against the bare model, memory.

Timings on a shared machine are noisy, so the overhead is a ratio measured in one run with
ELDER and the bare base model alternating prompt by prompt.
"""

from __future__ import annotations

import resource
import statistics
import sys
import time

from .cli import add_model_options, command, emit, open_editor, open_model
from .progressbar import ProgressBar


def _timed_generate(generate, prompt: str, tokens: int) -> float:
    t0 = time.perf_counter()
    generate(prompt, tokens)
    return time.perf_counter() - t0


@command("bench")
def run_bench(args) -> int:
    """Median seconds per edit, inference overhead ratio, peak memory."""
    import torch

    from .data import dev_split, load_edits
    from .editor import EditRequest

    records = load_edits(args.data or dev_split("zsre"), limit=args.edits).records
    editor = open_editor(args)
    bare = open_model(args)  # a second, untouched copy: the baseline is the bare model
    tok = bare.tokenizer

    def bare_generate(prompt: str, n: int):
        ids = tok(prompt, return_tensors="pt")
        with torch.no_grad():
            return bare.model.generate(**ids, max_new_tokens=n, do_sample=False, pad_token_id=tok.pad_token_id)

    def elder_generate(prompt: str, n: int):
        return editor.generate([prompt], n)

    bar = ProgressBar("edits")
    seconds = []
    for i, r in enumerate(records, 1):
        t0 = time.perf_counter()
        editor.apply(EditRequest(r.prompt, r.target, r.train_paraphrases))
        seconds.append(time.perf_counter() - t0)
        bar.update(i, len(records), f"{seconds[-1]:.2f}s")
    bar.close()

    # Half edited prompts (experts fire), half unrelated ones (deferred), as a user mixes them.
    prompts = [r.prompt for r in records[: args.prompts // 2]]
    prompts += [r.locality[0][0] for r in records if r.locality][: args.prompts - len(prompts)]
    elder_generate(prompts[0], 2), bare_generate(prompts[0], 2)  # warm-up
    t_elder, t_bare = [], []
    bar = ProgressBar("inference")
    for i, p in enumerate(prompts, 1):
        pair = [(t_elder, elder_generate), (t_bare, bare_generate)]
        for sink, fn in (pair if i % 2 else pair[::-1]):
            sink.append(_timed_generate(fn, p, args.tokens))
        bar.update(i, len(prompts))
    bar.close()
    result = {
        "edits": len(seconds),
        "seconds_per_edit_median": statistics.median(seconds),
        "seconds_per_edit_mean": statistics.fmean(seconds),
        "inference_overhead": sum(t_elder) / sum(t_bare),
        "inference_seconds_elder": sum(t_elder),
        "inference_seconds_bare": sum(t_bare),
        "inference_prompts": len(prompts),
        "tokens_per_prompt": args.tokens,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(),
        "model": editor.loaded.display_name,
        "profile": editor.config.profile,
    }
    for k, v in result.items():
        print(f"{k:>26}: {v:.3f}" if isinstance(v, float) else f"{k:>26}: {v}", file=sys.stderr)
    emit(result)
    return 0


def _configure(p) -> None:
    p.add_argument("--edits", type=int, default=100, help="edits to apply before measuring inference")
    p.add_argument("--prompts", type=int, default=50, help="prompts for the inference comparison")
    p.add_argument("--tokens", type=int, default=16, help="tokens generated per prompt")
    p.add_argument("--data", default=None, help="edit set (default: ZsRE dev split)")
    add_model_options(p)


run_bench.configure = _configure
