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
from typing import TYPE_CHECKING, Optional

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from ..elder import ElderConfig
from ..elder.config import ARCHITECTURE_FIELDS
from ..errors import EditRequestError, StateFormatError
from ..models.prompt_format import make_format
from .events import AppliedEdit

if TYPE_CHECKING:
    from .interface import Editor

STATE_FORMAT = "elder-state"
STATE_VERSION = 1


# The state file names what `ElderModel.elder_state_dict()` holds in a layout of its own, kept
# since the first version so that every saved state and history opens bit for bit: a layer by
# its index instead of its module path, the adapter name dropped, codes as bytes.
_LAYER_PARTS = {"elder_A.default": "A", "elder_B.default": "B", "elder_router.default.weight": "router.weight",
                "elder_router.default.bias": "router.bias"}
_LAYER_PARTS_BACK = {v: k for k, v in _LAYER_PARTS.items()}
_TUNER_PARTS = {"key_index.": "keys.", "scope_router.": "scope."}


def _file_name(key: str, layer_index: dict[str, int]) -> str:
    if key == "stored_codes":
        return "codes"
    for ours, theirs in _TUNER_PARTS.items():
        if key.startswith(ours):
            return theirs + key[len(ours):]
    layer, _, part = key.partition(".elder_")
    part = "elder_" + part
    i = layer_index[layer]
    if part.startswith("elder_pool."):
        return f"layers.{i}.experts.{part[len('elder_pool.'):]}"
    return f"layers.{i}.{_LAYER_PARTS[part]}"


def _state_dict_name(name: str, layer_names: list[str]) -> Optional[str]:
    """The inverse of `_file_name`; None for the entries outside the state dict (the RNG)."""
    if name == "codes":
        return "stored_codes"
    for ours, theirs in _TUNER_PARTS.items():
        if name.startswith(theirs):
            return ours + name[len(theirs):]
    if not name.startswith("layers."):
        return None
    _, i, part = name.split(".", 2)
    if not i.isdigit() or int(i) >= len(layer_names):
        return None
    if part.startswith("experts."):
        return f"{layer_names[int(i)]}.elder_pool.{part[len('experts.'):]}"
    return f"{layer_names[int(i)]}.{_LAYER_PARTS_BACK[part]}" if part in _LAYER_PARTS_BACK else None


def state_tensors(editor: "Editor") -> dict[str, torch.Tensor]:
    """The engine's state as the state file stores it: `elder_state_dict()` renamed, plus the
    RNG state of the engine's generator (so presets drawn after a reload are the same)."""
    tuner = editor.tuner
    layer_index = {name: i for i, name in enumerate(tuner.elder_layer_names)}
    out: dict[str, torch.Tensor] = {}
    for key, tensor in tuner.elder_state_dict().items():
        if key.startswith("scope_router.") and not tuner.scoped:
            continue  # other profiles never had scoped-router tensors in their files
        out[_file_name(key, layer_index)] = tensor.detach().cpu().contiguous()
    out["codes"] = out["codes"].to(torch.uint8)
    out["rng_state"] = tuner.generator.get_state().contiguous()
    return out


def to_state_dict(editor: "Editor", tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    names = editor.tuner.elder_layer_names
    out = {}
    for name, tensor in tensors.items():
        key = _state_dict_name(name, names)
        if key is not None:
            out[key] = tensor
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
    """Load a state file's tensors and meta into an editor built for the same model and
    architecture settings."""
    if "rng_state" not in tensors:
        raise StateFormatError("The saved state is incomplete or from another layout (missing ['rng_state']).")
    apply_state_dict(editor, to_state_dict(editor, tensors), tensors["rng_state"], meta)


def apply_state_dict(editor: "Editor", state: dict[str, torch.Tensor], rng_state: torch.Tensor, meta: dict) -> None:
    """Load `elder_state_dict()`-named tensors, the generator's state and the meta (config,
    edits) into an editor; everything is checked before anything changes."""
    check_meta(meta, editor)
    saved = ElderConfig.from_dict(meta["config"])
    try:  # a chat-format state on a tokenizer without a chat template
        make_format(saved.prompt_format, editor.tokenizer, saved.chat_query)
    except EditRequestError as error:
        raise StateFormatError(f"The saved state was made in the {saved.prompt_format} format: {error}") from None
    mismatch = [k for k in ARCHITECTURE_FIELDS if getattr(saved, k) != getattr(editor.config, k)]
    if mismatch:
        raise StateFormatError(f"The saved state was made with other ELDER layer settings ({', '.join(mismatch)}).")
    editor.tuner.load_elder_state_dict(state)
    editor.tuner.generator.set_state(rng_state.clone())
    # Behavioural settings (epsilon, lr, ...) come with the state; the layout was checked above.
    editor.tuner.config_elder = _with_targets(saved, editor.config)
    for layer in editor.tuner.elder_layers:
        layer.top_k["default"] = saved.top_k
        layer.scale["default"] = saved.scale
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


# What reading a damaged or foreign safetensors file raises
READ_ERRORS = (SafetensorError, OSError, KeyError, ValueError, RuntimeError)


def read_tensors_and_meta(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """A safetensors file's tensors and the JSON in its "elder" metadata (raises READ_ERRORS)."""
    with safe_open(str(path), framework="pt") as f:
        header = f.metadata() or {}
    return load_file(str(path)), json.loads(header["elder"])


def read_state_file(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    path = Path(path)
    if not path.is_file():
        raise StateFormatError(f"No state file at {path}.")
    try:
        tensors, meta = read_tensors_and_meta(path)
    except READ_ERRORS as exc:
        raise StateFormatError(f"{path} is not a readable ELDER state (truncated or corrupt?): {exc}") from None
    check_meta(meta)
    return tensors, meta


def save_state(editor: "Editor", path: str | os.PathLike) -> None:
    write_state_file(path, state_tensors(editor), state_meta(editor))


def load_state(editor: "Editor", path: str | os.PathLike) -> None:
    tensors, meta = read_state_file(path)
    apply_state(editor, tensors, meta)
