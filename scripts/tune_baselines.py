"""Choose the baselines' settings on ZsRE development records 300-599 (never on 0-299, which
the evaluation tables use). Each configuration runs a lifelong sequence of --edits edits
from --offset and appends one JSON line with the six metrics to --log.

    python scripts/tune_baselines.py --edits 30 --log runs/tune.jsonl \
        'lora {"learning_rate": 5e-4}' 'grace {"eps_init": 6.0, "span": "key"}'
"""

import argparse
import json
import sys
import time

import torch

from elder_engine import LoadSettings, dev_split, load_edits, load_model
from elder_engine.evaluation.comparison import run_method


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("configs", nargs="+", help="'METHOD {json settings}'")
    p.add_argument("--edits", type=int, default=30)
    p.add_argument("--offset", type=int, default=300)
    p.add_argument("--log", required=True)
    args = p.parse_args()
    if args.offset < 300:
        sys.exit("tuning uses ZsRE dev records 300-599 only")
    torch.set_num_threads(1)
    records = load_edits(dev_split("zsre"), offset=args.offset, limit=args.edits).records
    for spec in args.configs:
        name, _, raw = spec.partition(" ")
        settings = json.loads(raw or "{}")
        t0 = time.time()
        loaded = load_model("default", LoadSettings(threads=1))
        event = None
        for event in run_method(name, loaded, records, settings=settings):
            pass
        run = event.detail["run"]
        f = run.figures()
        f["mean_tf"] = (f["reliability"] + f["generalization"] + f["locality"]) / 3
        line = {"method": name, "settings": settings, "offset": args.offset, **f, "wall_s": time.time() - t0}
        print(json.dumps(line), flush=True)
        with open(args.log, "a") as handle:
            handle.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
