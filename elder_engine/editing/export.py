"""An edited engine as a folder in peft's layout: `adapter_config.json` + `adapter_model.safetensors`.

The weights file holds `ElderModel.elder_state_dict()` under the names peft gives a tuner's
state in a saved adapter: the tuner is `base_model`, so module paths start `base_model.model.`,
and the adapter's name is dropped (`...down_proj.elder_A`, not `...elder_A.default`). Beside
them: `elder_rng_state`, the engine generator's state, so that edits made after loading draw
what they would have drawn without the round trip. The config file is the engine's
`ElderConfig` with peft's bookkeeping (`peft_type` "ELDER", `task_type`, the resolved target
modules and layers, the base model's path); the weights file's metadata carries the edit list
and the base model's fingerprint.

peft itself has no ELDER type, so `peft.PeftModel.from_pretrained` cannot build one;
`ElderEditor.from_pretrained` loads the folder back on the base model.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import save_file

from ..elder import ElderConfig
from ..errors import StateFormatError
from .state import READ_ERRORS, read_tensors_and_meta, state_meta

if TYPE_CHECKING:
    from .interface import Editor

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
PEFT_TYPE = "ELDER"
ADAPTER = "default"
RNG_KEY = "elder_rng_state"
_PREFIX = "base_model."


def peft_name(key: str) -> str:
    """`elder_state_dict()` name -> the name in a peft adapter file."""
    return _PREFIX + key.replace(f".{ADAPTER}.", ".").removesuffix(f".{ADAPTER}")


def state_dict_name(name: str) -> str:
    """The inverse of `peft_name`."""
    key = name.removeprefix(_PREFIX)
    for part in ("elder_A", "elder_B"):
        if key.endswith("." + part):
            return f"{key}.{ADAPTER}"
    return key.replace(".elder_router.", f".elder_router.{ADAPTER}.")


def adapter_config(editor: "Editor") -> dict:
    cfg = editor.config
    return {
        **cfg.elder_fields(),
        "peft_type": PEFT_TYPE,
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": getattr(editor.loaded, "source", None),
        "target_modules": list(cfg.target_modules),
        "layers_to_transform": list(cfg.layers_to_transform),
        "layers_pattern": cfg.layers_pattern,
        "inference_mode": True,
    }


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_pretrained(editor: "Editor", folder: str | os.PathLike) -> Path:
    """Write the engine to `folder` (created if needed); returns the folder."""
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise StateFormatError(f"{folder} is a file; choose a folder to export the adapter into.")
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {peft_name(k): v.detach().cpu().contiguous() for k, v in editor.tuner.elder_state_dict().items()}
    tensors[RNG_KEY] = editor.tuner.generator.get_state().contiguous()
    meta = {k: v for k, v in state_meta(editor).items() if k != "config"}  # the config is adapter_config.json
    _atomic_write(folder / ADAPTER_WEIGHTS,
                  lambda tmp: save_file(tensors, tmp, metadata={"format": "pt", "elder": json.dumps(meta)}))
    text = json.dumps(adapter_config(editor), indent=2, sort_keys=True)
    _atomic_write(folder / ADAPTER_CONFIG, lambda tmp: Path(tmp).write_text(text + "\n", encoding="utf-8"))
    return folder


def read_adapter_config(folder: str | os.PathLike) -> ElderConfig:
    """The ELDER config of an exported folder, checking that both files are there (cheap: the
    weights are not read)."""
    folder = Path(folder).expanduser()
    config_path = folder / ADAPTER_CONFIG
    if not config_path.is_file() or not (folder / ADAPTER_WEIGHTS).is_file():
        raise StateFormatError(f"{folder} is not an exported ELDER adapter: it needs {ADAPTER_CONFIG} and "
                               f"{ADAPTER_WEIGHTS}.")
    try:
        data = json.loads(config_path.read_text(encoding="utf-8"))
    except READ_ERRORS as exc:
        raise StateFormatError(f"{folder} is not a readable ELDER adapter (truncated or corrupt?): {exc}") from None
    if data.get("peft_type") != PEFT_TYPE:
        raise StateFormatError(f"{config_path} describes a {data.get('peft_type')} adapter, not an ELDER one.")
    own = set(ElderConfig().elder_fields())
    return ElderConfig.from_dict({k: v for k, v in data.items() if k in own})


def read_pretrained(folder: str | os.PathLike) -> tuple[ElderConfig, dict[str, torch.Tensor], torch.Tensor, dict]:
    """(config, elder_state_dict()-named tensors, generator state, state meta) of an exported folder."""
    config = read_adapter_config(folder)
    weights_path = Path(folder).expanduser() / ADAPTER_WEIGHTS
    try:
        tensors, meta = read_tensors_and_meta(weights_path)
    except READ_ERRORS as exc:
        raise StateFormatError(f"{folder} is not a readable ELDER adapter (truncated or corrupt?): {exc}") from None
    if RNG_KEY not in tensors:
        raise StateFormatError(f"{weights_path} is incomplete (no {RNG_KEY}).")
    rng = tensors.pop(RNG_KEY)
    meta = {**meta, "config": config.elder_fields()}
    return config, {state_dict_name(k): v for k, v in tensors.items()}, rng, meta
