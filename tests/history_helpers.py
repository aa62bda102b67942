"""Shared helpers of the history tests: tiny engines, facts, and exact state comparison."""

from __future__ import annotations

import json

import torch

from elder_engine import EditRequest, ElderEditor, get_profile
from elder_engine.history import EditHistory
from elder_engine.editing.state import state_tensors
from tiny import tiny_loaded

FACTS = [
    ("the capital of france is", "london"),
    ("who wrote hamlet ?", "paris"),
    ("what colour is the sky ?", "green"),
    ("the king was born in", "1990"),
    ("the river of zorbia is", "quux"),
    ("the team plays for", "berlin"),
]


def tiny_editor(seed: int = 0, profile: str = "paper", **overrides) -> ElderEditor:
    """A tiny engine. The profile is explicit: the default one may change, and the mechanism
    must hold for both kinds (shared router experts; keyed per-edit experts)."""
    settings = {"max_steps": 4, "early_stop_loss": None, **overrides}
    return ElderEditor(tiny_loaded(seed=seed), get_profile(profile, **settings))


def reference_state(history: EditHistory, chain: list[int], profile: str = "paper") -> dict:
    """The definition of the state of `chain`: a fresh engine, then each edit trained with its
    own preset and settings, the engine RNG set as after the edit's first application."""
    import sqlite3
    from contextlib import closing

    # closing(): `with sqlite3.connect()` alone only commits; the connection stays open until
    # the garbage collector finds it, and the crash tests must not fork with one open.
    with closing(sqlite3.connect(history.path)) as db:
        rows = {seq: (prompt, target, json.loads(tp), json.loads(preset), json.loads(settings), rng)
                for seq, prompt, target, tp, preset, settings, rng in db.execute(
                    "SELECT seq, prompt, target, train_paraphrases, preset, settings, rng_after FROM edits")}
    editor = tiny_editor(profile=profile)
    for seq in chain:
        prompt, target, tp, preset, settings, rng = rows[seq]
        editor.apply(EditRequest(prompt, target, tuple(tp), preset=preset, settings=settings))
        editor.tuner.generator.set_state(torch.frombuffer(bytearray(rng), dtype=torch.uint8))
    return state(editor)


def open_tiny(path, editor, **kwargs) -> EditHistory:
    """A history on a tiny engine, keeping short original answers (generation is the slow part)."""
    history = EditHistory.open(path, editor, **kwargs)
    history.old_answer_tokens = 2
    return history


def state(editor) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in state_tensors(editor).items()}


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def run(events) -> list:
    return list(events)


def edit(history: EditHistory, i: int, **kwargs) -> list:
    prompt, target = FACTS[i % len(FACTS)]
    return run(history.edit(EditRequest(prompt, target), **kwargs))


def probes(editor, prompts=(FACTS[0][0], FACTS[2][0])) -> list[dict]:
    return [editor.probe(p, max_new_tokens=2).to_dict() for p in prompts]
