"""Editing metrics, EasyEdit's convention (see DESIGN.md "Metrics").

An editing method here is anything with `target_logits(prompts, targets, original=...)` and
`generate(prompts, max_new_tokens, original=...)`; `original=True` means the unedited model.
Targets are tokenised in the method's own prompt format (`prompt_format`, plain text if none).
"""

from __future__ import annotations

from typing import Protocol, Sequence

from ..models.prompt_format import format_of

BATCH = 16

# The six figures every run reports, in report order: token-level accuracy (teacher-forced,
# EasyEdit's) on the edit prompts, their paraphrases and the locality prompts, then the same
# three as exact matches of the greedy output. Every table, curve and panel takes its columns
# and labels from here.
METRICS = ("reliability", "generalization", "locality", "reliability_em", "generalization_em", "locality_em")
SHORT_LABELS = dict(zip(METRICS, ("Rel", "Gen", "Loc", "Rel EM", "Gen EM", "Loc EM")))
_NAMES = ("Reliability", "Generalization", "Locality")
LABELS = dict(zip(METRICS, (*_NAMES, *(f"{n} (exact match)" for n in _NAMES))))
TOKEN_METRICS = METRICS[:3]


class Scorable(Protocol):
    tokenizer: object

    def target_logits(self, prompts: list[str], targets: list[str], *, original: bool = False): ...

    def generate(self, prompts: list[str], max_new_tokens: int, *, original: bool = False) -> list[list[int]]: ...


def _chunks(items: Sequence, n: int = BATCH):
    for i in range(0, len(items), n):
        yield items[i:i + n]


def teacher_forced_argmax(method: Scorable, pairs: Sequence[tuple[str, str]], *, original: bool = False) -> list[list[int]]:
    """Argmax token at each target position, per (prompt, target) pair."""
    out: list[list[int]] = []
    for chunk in _chunks(pairs):
        logits, batch = method.target_logits([p for p, _ in chunk], [t for _, t in chunk], original=original)
        pred = logits.argmax(-1).cpu()
        for i in range(len(chunk)):
            n = int(batch.target_mask[i].sum())
            out.append(pred[i, :n].tolist())
    return out


def token_accuracy(method: Scorable, pairs: Sequence[tuple[str, str]]) -> tuple[list[float], list[list[int]]]:
    """Teacher-forced accuracy of each target after its prompt (edited model)."""
    preds = teacher_forced_argmax(method, pairs)
    scores = []
    for (p, t), pred in zip(pairs, preds):
        gold = format_of(method).target_ids(method.tokenizer, p, t)
        scores.append(sum(int(a == b) for a, b in zip(pred, gold)) / max(1, len(gold)))
    return scores, preds


def exact_match(method: Scorable, pairs: Sequence[tuple[str, str]]) -> tuple[list[float], list[str]]:
    """Greedy generation of as many tokens as the target has, compared token for token."""
    scores, texts = [], []
    for chunk in _chunks(pairs):
        golds = [format_of(method).target_ids(method.tokenizer, p, t) for p, t in chunk]
        gen = method.generate([p for p, _ in chunk], max(len(g) for g in golds))
        for g, ids in zip(golds, gen):
            scores.append(float(ids[: len(g)] == g))
            texts.append(method.tokenizer.decode(ids[: len(g)], skip_special_tokens=True))
    return scores, texts


def locality(method: Scorable, pairs: Sequence[tuple[str, str]]) -> tuple[list[float], list[float], list[str]]:
    """Share of argmax tokens unchanged from the unedited model (teacher-forced), and the same
    for greedy generation (exact match of the edited vs the original continuation)."""
    before = teacher_forced_argmax(method, pairs, original=True)
    after = teacher_forced_argmax(method, pairs)
    tf = [sum(int(a == b) for a, b in zip(x, y)) / max(1, len(x)) for x, y in zip(before, after)]
    em, texts = [], []
    for chunk in _chunks(pairs):
        fmt = format_of(method)
        n = max(len(fmt.target_ids(method.tokenizer, p, t)) for p, t in chunk)
        prompts = [p for p, _ in chunk]
        orig = method.generate(prompts, n, original=True)
        edit = method.generate(prompts, n)
        for (p, t), o, e in zip(chunk, orig, edit):
            k = len(fmt.target_ids(method.tokenizer, p, t))
            em.append(float(o[:k] == e[:k]))
            texts.append(method.tokenizer.decode(e[:k], skip_special_tokens=True))
    return tf, em, texts


def mean(xs: Sequence[float]) -> float:
    return float(sum(xs) / len(xs)) if xs else float("nan")
