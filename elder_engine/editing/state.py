"""The engine's whole state as tensors + JSON, in one safetensors file.

Tensors: every MoLoRA layer's experts and router, the stored allocation codes, the RNG state
of the engine's generator (so presets drawn after a reload are the same as without it). JSON
(in the safetensors header): the config, the edit list, the model fingerprint, a version.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from ..elder import ElderConfig
from ..elder.keyed import KeyIndex
from ..errors import EditRequestError, StateFormatError
from ..models.prompt_format import make_format
from .events import AppliedEdit

if TYPE_CHECKING:
    from .interface import Editor

STATE_FORMAT = "elder-state"
STATE_VERSION = 1


def state_tensors(editor: "Editor") -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    name = "default"
    for i, layer in enumerate(editor.tuner.elder_layers):
        out[f"layers.{i}.A"] = layer.elder_A[name].detach().cpu().contiguous()
        out[f"layers.{i}.B"] = layer.elder_B[name].detach().cpu().contiguous()
        out[f"layers.{i}.router.weight"] = layer.elder_router[name].weight.detach().cpu().contiguous()
        out[f"layers.{i}.router.bias"] = layer.elder_router[name].bias.detach().cpu().contiguous()
        for e, (a, b) in enumerate(layer.pool):  # keyed routing: one frozen expert per edit
            out[f"layers.{i}.experts.{e}.A"] = a.cpu().contiguous()
            out[f"layers.{i}.experts.{e}.B"] = b.cpu().contiguous()
    out.update(editor.tuner.key_index.to_tensors())
    if editor.tuner.scoped:
        out.update(editor.tuner.scope_router.tensors())
    out["codes"] = editor.tuner.stored_codes.to(torch.uint8).contiguous()
    out["rng_state"] = editor.tuner.generator.get_state().contiguous()
    return out


def state_meta(editor: "Editor") -> dict:
    return {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "config": editor.config.elder_fields(),
        "edits": [e.to_dict() for e in editor.edits],
        "model_fingerprint": getattr(editor.loaded, "fingerprint", None),
        "model_type": editor.model.config.model_type,
    }


def apply_state(editor: "Editor", tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Load a state into an editor built for the same model and architecture settings."""
    check_meta(meta, editor)
    saved = ElderConfig.from_dict(meta["config"])
    try:  # a chat-format state on a tokenizer without a chat template
        make_format(saved.prompt_format, editor.tokenizer, saved.chat_query)
    except EditRequestError as error:
        raise StateFormatError(f"The saved state was made in the {saved.prompt_format} format: {error}") from None
    arch = ("num_edit_layers", "first_edit_layer", "ffn_module", "num_experts", "rank", "routing")
    mismatch = [k for k in arch if getattr(saved, k) != getattr(editor.config, k)]
    if mismatch:
        raise StateFormatError(f"The saved state was made with other ELDER layer settings ({', '.join(mismatch)}).")
    fixed = {k for k in state_tensors(editor) if ".experts." not in k and not k.startswith(("keys.", "scope."))}
    fixed |= {"keys.tokens", "keys.lengths", "keys.owners"}
    missing = fixed - set(tensors)
    if missing:
        raise StateFormatError(f"The saved state is incomplete or from another layout (missing {sorted(missing)[:5]}).")
    name = "default"
    with torch.no_grad():
        for i, layer in enumerate(editor.tuner.elder_layers):
            for key, param in (("A", layer.elder_A[name]), ("B", layer.elder_B[name]),
                               ("router.weight", layer.elder_router[name].weight),
                               ("router.bias", layer.elder_router[name].bias)):
                t = tensors[f"layers.{i}.{key}"]
                if t.shape != param.shape:
                    raise StateFormatError(f"Saved tensor layers.{i}.{key} has shape {tuple(t.shape)}, expected {tuple(param.shape)}")
                param.copy_(t)
            n = sum(1 for k in tensors if k.startswith(f"layers.{i}.experts.") and k.endswith(".A"))
            device = layer.elder_A[name].device
            layer.pool = [(tensors[f"layers.{i}.experts.{e}.A"].to(device),
                           tensors[f"layers.{i}.experts.{e}.B"].to(device)) for e in range(n)]
    editor.tuner.key_index = KeyIndex.from_tensors(tensors)
    if editor.tuner.scoped:
        if "scope.keys" not in tensors:
            raise StateFormatError("The saved state has no scoped-router keys (incomplete or another layout).")
        editor.tuner.scope_router.load(tensors)
    editor.tuner.stored_codes = tensors["codes"].to(torch.bool).clone()
    editor.tuner.generator.set_state(tensors["rng_state"].clone())
    # Behavioural settings (epsilon, lr, ...) come with the state; the layout was checked above.
    editor.tuner.config_elder = _with_targets(saved, editor.config)
    for layer in editor.tuner.elder_layers:
        layer.top_k[name] = saved.top_k
        layer.scale[name] = saved.scale
    editor.edits = [AppliedEdit.from_dict(d) for d in meta["edits"]]


def _with_targets(saved: ElderConfig, current: ElderConfig) -> ElderConfig:
    resolved = saved.replace()
    resolved.target_modules = current.target_modules
    resolved.layers_to_transform = current.layers_to_transform
    resolved.layers_pattern = current.layers_pattern
    return resolved


def check_meta(meta: dict, editor: "Editor | None" = None) -> None:
    if meta.get("format") != STATE_FORMAT:
        raise StateFormatError("This file is not an ELDER engine state.")
    if int(meta.get("version", 0)) > STATE_VERSION:
        raise StateFormatError(f"This state was written by a newer version (format {meta.get('version')}); update the app.")
    if editor is not None:
        mine = getattr(editor.loaded, "fingerprint", None)
        theirs = meta.get("model_fingerprint")
        if mine and theirs and mine != theirs:
            raise StateFormatError(
                "This state belongs to another model (fingerprint "
                f"{theirs[:12]}…, the loaded model is {mine[:12]}…). Load the model it was made with."
            )


def write_state_file(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Atomic write: a crash leaves the previous file (or none), never half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    from ..durable import fsync_dir, fsync_file

    try:
        save_file(tensors, tmp, metadata={"elder": json.dumps(meta)})
        fsync_file(tmp)  # the data is on disk before the name points at it
        os.replace(tmp, path)
        fsync_dir(path.parent)  # and the rename itself survives a power cut
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_state_file(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    path = Path(path)
    if not path.is_file():
        raise StateFormatError(f"No state file at {path}.")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
        tensors = load_file(str(path))
        meta = json.loads(header["elder"])
    except (SafetensorError, OSError, KeyError, ValueError, RuntimeError) as exc:
        raise StateFormatError(f"{path} is not a readable ELDER state (truncated or corrupt?): {exc}") from None
    check_meta(meta)
    return tensors, meta


def save_state(editor: "Editor", path: str | os.PathLike) -> None:
    write_state_file(path, state_tensors(editor), state_meta(editor))


def load_state(editor: "Editor", path: str | os.PathLike) -> None:
    tensors, meta = read_state_file(path)
    apply_state(editor, tensors, meta)
