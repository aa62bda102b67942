"""Headless command line: `python -m elder_engine COMMAND ...`.

Each command prints progress to stderr and ends stdout with one JSON object, so scripts can
read the last line. User errors print a one-line message (no traceback) and exit 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Callable

COMMANDS: dict[str, Callable] = {}


def command(name: str):
    def register(fn):
        COMMANDS[name] = fn
        return fn
    return register


def add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="default", help="'default' (embedded SmolLM2-135M), a HF folder or a .gguf file")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16", "auto"])
    p.add_argument("--threads", type=int, default=int(os.environ.get("ELDER_THREADS", "1")),
                   help="torch CPU threads (default 1, or $ELDER_THREADS): more threads than free cores slows torch down")
    p.add_argument("--profile", default=None, help="ELDER settings profile (default: the engine's default profile)")


def add_format_option(p: argparse.ArgumentParser, history: bool = False) -> None:
    follows = " (default: the history's own format; plain for a new one)" if history else " (default: plain)"
    p.add_argument("--chat", action=argparse.BooleanOptionalAction, default=None,
                   help="run prompts in the model's chat template: the prompt is the user's turn, the target the "
                        "assistant's reply; --no-chat: plain text, the target continues the prompt" + follows)


def config_for(args):
    """The ELDER settings of --profile, in the prompt format of --chat/--no-chat when given."""
    from ..elder import DEFAULT_PROFILE, get_profile

    config = get_profile(getattr(args, "profile", None) or DEFAULT_PROFILE)
    chat = getattr(args, "chat", None)
    return config if chat is None else config.replace(prompt_format="chat" if chat else "plain")


def open_model(args, label: str = "model"):
    import torch

    from ..models.loading import LoadSettings, load_model

    torch.set_num_threads(args.threads)
    settings = LoadSettings(device=args.device, dtype=args.dtype, threads=args.threads)
    print(f"Loading {args.model} ...", file=sys.stderr)
    return load_model(args.model, settings, progress=lambda msg: print(f"  {msg}", file=sys.stderr))


def open_editor(args, loaded=None):
    from ..editing.editor import ElderEditor

    loaded = loaded or open_model(args)
    return ElderEditor(loaded, config_for(args))


def emit(obj: dict) -> None:
    """The machine-readable result: always the last line of stdout."""
    print(json.dumps(obj, default=_json_default))


def _json_default(o):
    if isinstance(o, float):
        return None
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
