"""`bench`: edit speed, inference overhead against the bare model, memory; per method.

Timings on a shared machine are noisy, so the overhead is a ratio measured in one run with
every method and the bare base model taking turns prompt by prompt (the order rotates, so no
method always runs first or last). `--scaling` measures ELDER's cost as edits accumulate
instead (see `bench_scaling.py`).
"""

from __future__ import annotations

import resource
import statistics
import sys
import time

from .common import add_format_option, add_model_options, command, config_for, emit, open_model
from .progressbar import ProgressBar


def _timed(fn, prompt: str, tokens: int) -> float:
    t0 = time.perf_counter()
    fn(prompt, tokens)
    return time.perf_counter() - t0


def _bare_generator(bare, prompt_format: str):
    """The untouched base model, fed exactly as the methods feed theirs (same encoding, same
    generation settings), so the ratio measures the method and nothing else."""
    import torch

    from ..models.prompt_format import make_format
    from ..models.tokens import encode

    tok = bare.tokenizer
    fmt = make_format(prompt_format, tok)

    def generate(prompt: str, n: int):
        batch = encode(tok, [prompt], fmt=fmt).to(bare.device)
        with torch.no_grad():
            return bare.model.generate(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                                       max_new_tokens=n, min_new_tokens=n, do_sample=False,
                                       pad_token_id=tok.pad_token_id, num_beams=1)
    return generate


@command("bench")
def run_bench(args) -> int:
    """Median seconds per edit and inference overhead per method; or ELDER's cost growth (--scaling)."""
    import torch

    from ..editing.request import EditRequest
    from ..evaluation.data import dev_split, load_edits
    from ..evaluation.methods import build_method, method_names, parse_settings, state_bytes

    if args.scaling:
        from .bench_scaling import run_scaling
        return run_scaling(args)
    names = method_names(args.method)
    settings = parse_settings(args.set)
    elder_config = config_for(args)
    data = load_edits(args.data or dev_split("zsre"), limit=args.edits)
    records = data.records
    methods, seconds, steps = {}, {}, {}
    for name in names:  # each on its own copy: the baselines change their model in place
        method = build_method(name, open_model(args), elder_config, settings.get(name))
        bar = ProgressBar(f"{name} edits")
        seconds[name], steps[name] = [], []
        for i, r in enumerate(records, 1):
            t0 = time.perf_counter()
            applied = method.apply(EditRequest(r.prompt, r.target, r.train_paraphrases))
            seconds[name].append(time.perf_counter() - t0)
            steps[name].append(applied.steps)
            bar.update(i, len(records), f"{seconds[name][-1]:.2f}s")
        bar.close()
        methods[name] = method
    bare = open_model(args)  # a separate, untouched copy: the baseline is the bare model
    runners = {"bare": _bare_generator(bare, elder_config.prompt_format)}
    runners.update({name: (lambda m: lambda p, n: m.generate([p], n, fixed_length=True))(m) for name, m in methods.items()})

    # Half edited prompts (edits fire), half unrelated ones (deferred), as a user mixes them.
    prompts = [r.prompt for r in records[: args.prompts // 2]]
    prompts += [r.locality[0][0] for r in records if r.locality][: args.prompts - len(prompts)]
    for fn in runners.values():
        fn(prompts[0], 2)  # warm-up
    spent = {name: [] for name in runners}
    order = list(runners)
    bar = ProgressBar("inference")
    for i, p in enumerate(prompts, 1):
        turn = order[i % len(order):] + order[: i % len(order)]
        for name in turn:
            spent[name].append(_timed(runners[name], p, args.tokens))
        bar.update(i, len(prompts))
    bar.close()

    bare_total = sum(spent["bare"])
    per_method = {name: {
        "seconds_per_edit_median": statistics.median(seconds[name]),
        "seconds_per_edit_mean": statistics.fmean(seconds[name]),
        "steps_per_edit_median": statistics.median(steps[name]),
        "inference_overhead": sum(spent[name]) / bare_total,
        "inference_seconds": sum(spent[name]),
        "extra_parameters": int(methods[name].extra_parameters()),
        "state_bytes": state_bytes(methods[name]),
    } for name in names}
    lead = "elder" if "elder" in names else names[0]
    result = {
        "edits": len(records),
        "seconds_per_edit_median": per_method[lead]["seconds_per_edit_median"],
        "seconds_per_edit_mean": per_method[lead]["seconds_per_edit_mean"],
        "steps_per_edit_median": per_method[lead]["steps_per_edit_median"],
        "inference_overhead": per_method[lead]["inference_overhead"],
        **({"inference_seconds_elder": sum(spent["elder"])} if "elder" in names else {}),
        "inference_seconds_bare": bare_total,
        "inference_prompts": len(prompts),
        "tokens_per_prompt": args.tokens,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(),
        "model": bare.display_name,
        "profile": elder_config.profile,
        "prompt_format": elder_config.prompt_format,
        "method": lead,
        "methods": per_method,
        "data_sha256": data.sha256,
    }
    for k, v in result.items():
        if k != "methods":
            print(f"{k:>26}: {v:.3f}" if isinstance(v, float) else f"{k:>26}: {v}", file=sys.stderr)
    print(f"{'method':>8} {'s/edit (median)':>16} {'inference x bare':>17} {'state bytes':>12}", file=sys.stderr)
    for name, f in per_method.items():
        print(f"{name:>8} {f['seconds_per_edit_median']:16.2f} {f['inference_overhead']:17.3f} {f['state_bytes']:12,}",
              file=sys.stderr)
    emit(result)
    return 0


def _configure(p) -> None:
    p.add_argument("--edits", type=int, default=100, help="edits to apply before measuring inference")
    p.add_argument("--prompts", type=int, default=50, help="prompts for the inference comparison")
    p.add_argument("--tokens", type=int, default=16, help="tokens generated per prompt")
    p.add_argument("--data", default=None, help="edit set (default: ZsRE dev split)")
    p.add_argument("--method", default="elder", help="elder | lora | ft-l | grace | all, or a comma list")
    p.add_argument("--set", action="append", default=[], metavar="METHOD.SETTING=VALUE",
                   help="override a method setting, e.g. grace.eps_init=4 (repeatable)")
    p.add_argument("--scaling", default=None, metavar="N,N,...",
                   help="ELDER only: seconds per edit and state size at these edit counts, e.g. 10,100,1000")
    p.add_argument("--window", type=int, default=5,
                   help="--scaling: fully trained, timed edits just before each count")
    add_format_option(p)
    add_model_options(p)


run_bench.configure = _configure
