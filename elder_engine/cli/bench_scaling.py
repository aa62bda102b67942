"""`bench --scaling 10,100,1000`: how ELDER's cost grows with the number of edits it holds.

At each count N the engine holds N real edits, and the last `--window` edits before N are
trained with the full settings and timed: their median is the seconds per edit at N. The
edits in between ("fillers") are real edits too (each draws a preset, trains, stores its code
and history entry, so everything that grows with the edit count grows), but train for one
step only: 1000 fully trained edits take hours on a CPU, and what an extra stored edit costs
a later edit does not depend on how long the earlier edits trained. The output says so.
When the data set has fewer records than needed, records are reused cyclically with a
"(variant k)" suffix, so that every edit prompt is distinct.
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from .common import config_for, emit, open_model
from .progressbar import ProgressBar

FILLER_SETTINGS = {"max_steps": 1}
ROUTING_REPEATS = 5


def _routing_ms(editor, prompts: list[str]) -> tuple[float, float]:
    """Median milliseconds of one query's routing decision, one prompt at a time as the app
    asks, and of the part of it that stored edits can make grow: the whole decision (the
    router's forward through the lower blocks plus its match against every stored edit) minus
    that forward alone, timed in turn with it so that the machine's load falls on both alike.
    Profiles without a scoped router have no such forward: their whole decision is counted."""
    import torch

    reader = getattr(editor, "scope", None)
    whole, forward = [], []
    with torch.no_grad():
        for _ in range(ROUTING_REPEATS):
            for p in prompts:
                t0 = time.perf_counter()
                editor.expert_index([p])
                whole.append(time.perf_counter() - t0)
                if reader is not None:
                    t0 = time.perf_counter()
                    reader.states([p])
                    forward.append(time.perf_counter() - t0)
    total = 1000 * statistics.median(whole)
    matching = total - 1000 * statistics.median(forward) if forward else total
    return total, matching


def _requests(records, total: int):
    for k in range(total):
        r = records[k % len(records)]
        cycle = k // len(records)
        prompt = r.prompt if cycle == 0 else f"{r.prompt} (variant {cycle + 1})"
        yield k, r, prompt


def run_scaling(args) -> int:
    import torch

    from ..editing.request import EditRequest
    from ..evaluation.curves import parse_checkpoints
    from ..evaluation.data import dev_split, load_edits
    from ..evaluation.methods import build_method, parse_settings, state_bytes

    counts = parse_checkpoints(args.scaling)
    data = load_edits(args.data or dev_split("zsre"))
    elder_settings = parse_settings(args.set).get("elder")
    editor = build_method("elder", open_model(args), config_for(args), elder_settings)
    total = counts[-1]
    window_seconds: list[float] = []
    rows = []
    bar = ProgressBar("scaling")
    probe_prompts = [r.prompt for r in data.records[:5]]
    for k, record, prompt in _requests(data.records, total):
        n = k + 1
        timed = any(c - min(args.window, c) < n <= c for c in counts)
        request = EditRequest(prompt, record.target, record.train_paraphrases,
                              settings=None if timed else dict(FILLER_SETTINGS))
        t0 = time.perf_counter()
        editor.apply(request)
        if timed:
            window_seconds.append(time.perf_counter() - t0)
        bar.update(n, total, "timed" if timed else "filler")
        if n in counts:
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "state.safetensors"
                editor.save(path)
                file_bytes = os.path.getsize(path)
            routing_ms, matching_ms = _routing_ms(editor, probe_prompts)
            t0 = time.perf_counter()
            for p in probe_prompts:
                editor.generate([p], args.tokens, fixed_length=True)
            rows.append({
                "edits": n,
                "seconds_per_edit_median": statistics.median(window_seconds),
                "timed_edits": len(window_seconds),
                "state_bytes": state_bytes(editor),
                "state_file_bytes": file_bytes,
                "extra_parameters": int(editor.extra_parameters()),
                "inference_seconds_per_prompt": (time.perf_counter() - t0) / len(probe_prompts),
                "routing_ms_per_query": routing_ms,
                "routing_match_ms_per_query": matching_ms,
            })
            window_seconds = []
    bar.close()
    print(f"{'edits':>6} {'s/edit':>8} {'state bytes':>12} {'file bytes':>12} {'s/prompt':>9} {'route ms':>9} {'match ms':>9}",
          file=sys.stderr)
    for row in rows:
        print(f"{row['edits']:>6} {row['seconds_per_edit_median']:8.2f} {row['state_bytes']:12,} "
              f"{row['state_file_bytes']:12,} {row['inference_seconds_per_prompt']:9.3f} "
              f"{row['routing_ms_per_query']:9.2f} {row['routing_match_ms_per_query']:9.2f}", file=sys.stderr)
    def added(key: str):
        """What the stored edits add to a query's `key`, beyond the first count's."""
        return rows[-1][key] - rows[0][key] if rows else None

    emit({
        "scaling": rows,
        "routing_ms_added": added("routing_ms_per_query"),
        # from the match part alone: timed in turn with the forward, so the load falls on both
        "routing_match_ms_added": added("routing_match_ms_per_query"),
        "window": args.window,
        "filler_settings": FILLER_SETTINGS,
        "records_in_data": len(data.records),
        "records_reused": total > len(data.records),
        "tokens_per_prompt": args.tokens,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(),
        "model": editor.loaded.display_name,
        "profile": editor.config.profile,
        "settings_overridden": elder_settings or {},
        "data": str(data.path), "data_sha256": data.sha256,
    })
    return 0
