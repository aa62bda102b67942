"""Prompts an edit must not fire on, made by the engine itself, and a guess of a prompt's subject.

The scoped router learns each edit's key against these (see `scope.py`):
- subject swaps: the edit's prompt with its subject replaced by other names (the most similar
  of a shipped entity list and of earlier edits' subjects, by the router's own key space);
- near misses: the subject with one of its words replaced by a word of another name ("Ferrari
  F40" -> "Ferrari Laurel", "Nissan F40"), so that a key needs the whole name, not one word of it;
- earlier edits' prompts about other subjects;
- a shipped background set of ordinary prompts;
- the locality prompts the user gave with the edit.
The shipped lists live in `resources/scope/` with their provenance.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

RESOURCES = Path(__file__).resolve().parent.parent.parent / "resources" / "scope"


@lru_cache(maxsize=None)
def _lines(name: str) -> tuple[str, ...]:
    path = RESOURCES / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the scoped router needs its shipped negatives")
    return tuple(line.rstrip("\n") for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def background_prompts() -> tuple[str, ...]:
    return _lines("background_prompts.txt")


def entities() -> tuple[str, ...]:
    return _lines("entities.txt")


def swap_subject(prompt: str, span: tuple[int, int], other: str) -> str:
    """The prompt with the subject at `span` replaced by `other`; a leading article of the
    other name is dropped when the prompt already has one before the subject."""
    before, after = prompt[: span[0]], prompt[span[1]:]
    if re.search(r"\b(the|The)\s+$", before) and other.lower().startswith("the "):
        other = other[4:]
    if not before.strip() and other[:1].islower():
        other = other[:1].upper() + other[1:]  # the subject opened the sentence
    return before + other + after


def near_miss_subjects(subject: str, names, limit: int) -> list[str]:
    """Up to `limit` names that share all but one word with a multi-word `subject`: each word
    in turn (last word first: it carries most of the name) replaced by the word at the same end
    of another name from `names` (most similar first). A one-word subject has none."""
    words = subject.split()
    slots = [i for i, w in enumerate(words) if w.lower() not in _CONNECTORS]
    if len(slots) < 2 or limit <= 0:
        return []
    lowered = {w.lower() for w in words}
    out: list[str] = []
    donors = [n.split() for n in names if n.split()]
    for donor in donors:
        for i in reversed(slots):
            word = donor[-1] if i == slots[-1] else donor[0]
            if word.lower() in lowered or word.lower() in _CONNECTORS:
                continue
            variant = " ".join(words[:i] + [word] + words[i + 1:])
            if variant not in out:
                out.append(variant)
            if len(out) >= limit:
                return out
    return out


_CONNECTORS = {"of", "the", "de", "da", "van", "von", "der", "la", "le", "du", "and", "&"}
_OPENERS = {"the", "a", "an", "what", "who", "which", "when", "where", "why", "how", "in", "on", "is",
            "was", "did", "does", "do", "are", "were", "tell", "name", "please", "this", "that"}


def guess_subject(prompt: str) -> str:
    """A best guess of the entity a prompt is about: the longest run of capitalised words
    (allowing 'of', 'de', ... inside), not counting a sentence-opening function word. Empty when
    the prompt has no capitalised name; the router then keys on its most distinctive token."""
    words = list(re.finditer(r"[\w'’.-]+", prompt))
    best: list = []
    run: list = []

    def flush():
        nonlocal best, run
        while run and run[-1].group(0).lower() in _CONNECTORS:
            run.pop()
        if len(run) > len(best) or (len(run) == len(best) and run):
            best = list(run)
        run = []

    for i, w in enumerate(words):
        text = w.group(0)
        capital = text[:1].isupper() or (text[:1].isdigit() and run)
        if capital and not (i == 0 and text.lower() in _OPENERS):
            run.append(w)
        elif run and text.lower() in _CONNECTORS:
            run.append(w)
        else:
            flush()
    flush()
    if not best:
        return ""
    text = prompt[best[0].start(): best[-1].end()]
    return re.sub(r"('s|’s)$", "", text).rstrip(".")
