"""A decoder's transformer blocks: finding them, and running the model only up to one of them.

Every part of the engine that hooks a block (the router's scope reader, the cache of the frozen
lower blocks, GRACE's key) finds the blocks here, and stops a forward early the same way: a
pre-hook on the first module it does not need raises `StopForward`.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Sequence

from torch import nn

from ..errors import UnsupportedModelError


class StopForward(Exception):
    """Raised by a forward pre-hook to end a forward that has computed all it needs."""


def find_blocks(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """Dotted name and list of the decoder blocks, found structurally: the ModuleList whose
    length is the configured depth (the one with most parameters if several match)."""
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "get_text_config"):
        config = config.get_text_config()
    depth = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", None)
    found = [(name, module) for name, module in model.named_modules()
             if depth and isinstance(module, nn.ModuleList) and len(module) == depth]
    if not found:
        raise UnsupportedModelError(
            f"Cannot find the transformer blocks of {type(model).__name__}: no module list of "
            f"length {depth} (the configured number of layers). ELDER needs a decoder made of "
            "a list of blocks, as in Llama, GPT-2, Qwen2 or GPT-NeoX.")
    return max(found, key=lambda item: sum(p.numel() for p in item[1].parameters()))


def inner_model(model: nn.Module) -> nn.Module:
    """The decoder under a causal-LM head (`model.model` for Llama): it returns hidden states."""
    return getattr(model, model.base_model_prefix)


Hooks = Sequence[tuple[nn.Module, Callable[..., Any]]]


def forward_until(model: nn.Module, stop_at: nn.Module | None, hooks: Hooks = (), pre_hooks: Hooks = (),
                  **inputs) -> None:
    """Run the decoder on `inputs` with forward `hooks` and `pre_hooks` (module, hook) in place,
    stopping before `stop_at` runs (None: run to the end). What the hooks captured is the
    result. Pre-hooks go first, before any hook already on their module."""
    handles = [module.register_forward_hook(hook) for module, hook in hooks]
    handles += [module.register_forward_pre_hook(hook, prepend=True) for module, hook in pre_hooks]
    if stop_at is not None:
        def stop(module, args):
            raise StopForward
        handles.append(stop_at.register_forward_pre_hook(stop))
    try:
        inner_model(model)(**inputs)
    except StopForward:
        pass
    finally:
        for handle in handles:
            handle.remove()


def cache_argument(decoder: nn.Module) -> str:
    """The decoder's keyword for a key/value cache: `cache` in recent transformers releases,
    `past_key_values` before (still accepted there, with a deprecation warning)."""
    return "cache" if "cache" in inspect.signature(decoder.forward).parameters else "past_key_values"
