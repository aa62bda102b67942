"""The frozen LM head on an edit's few target rows: `linear` against models/head.py's product.

Prints ms per forward+backward (cross-entropy on random targets) for each, alternating the two
in rounds so that the machine's load hits both alike, and their ratio. The head's shape defaults
to SmolLM2-135M's (49152 x 576); rows are the target tokens of one training batch.

    .venv/bin/python benchmarks/head_product.py --rows 4 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from elder_engine.models.head import head_logits


def _time(fn, repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vocab", type=int, default=49152)
    p.add_argument("--hidden", type=int, default=576)
    p.add_argument("--rows", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=10)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    head = nn.Linear(args.hidden, args.vocab, bias=False).requires_grad_(False)
    h = torch.randn(args.rows, args.hidden, generator=g).requires_grad_(True)
    targets = torch.randint(0, args.vocab, (args.rows,), generator=g)

    def step(logits_of):
        nn.functional.cross_entropy(logits_of(h), targets).backward()

    ways = {"linear": lambda: step(head), "head_logits": lambda: step(lambda x: head_logits(head, x))}
    for fn in ways.values():  # warm-up
        _time(fn, 2)
    times = {name: [] for name in ways}
    for _ in range(args.rounds):
        for name, fn in ways.items():
            times[name].append(_time(fn, args.repeats))
    med = {name: statistics.median(ts) for name, ts in times.items()}
    print(f"head {args.vocab}x{args.hidden}, {args.rows} rows, {args.threads} thread(s), "
          f"median of {args.rounds} rounds x {args.repeats}")
    for name, ms in med.items():
        print(f"  {name:12s} {ms:7.2f} ms per forward+backward")
    print(f"  ratio head_logits / linear: {med['head_logits'] / med['linear']:.2f}")


if __name__ == "__main__":
    main()
