"""The one-time GGUF conversion cache.

De-quantizing a GGUF file takes 10-30 s, so each file is converted once into a plain Hugging
Face folder (float32 safetensors, config, tokenizer) under the cache root, and that folder is
loaded afterwards. The folder appears atomically (written to a temp folder, then renamed) with a
manifest written last, so a crash mid-conversion leaves no half cache; a damaged cache is
detected and rebuilt. The manifest keeps the converted model's fingerprint, which `loading`
checks after loading the folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from ..durable import fsync_dir, fsync_tree
from ..errors import ModelLoadError, cause_line

FORMAT = 1  # bump when the cache layout changes: old entries are then simply not found
MANIFEST = "elder_cache.json"
WEIGHTS = "model.safetensors"
STALE_TMP_S = 3600  # a temp folder older than this belongs to a crashed conversion


def read_manifest(folder: Path) -> dict:
    return json.loads((folder / MANIFEST).read_text(encoding="utf-8"))


def cached_folder(path: Path, root: Path, fingerprint: Callable[[torch.nn.Module], str],
                  report: Callable[[str], None]) -> Path:
    """Cache folder for `path`, converting it first if it is missing or damaged. The key is
    the file's identity (absolute path, size, mtime): cheap, unlike hashing the file, and an
    overwritten or touched file gets a fresh conversion. A copy elsewhere converts again but
    yields the same fingerprint."""
    stat = path.stat()
    identity = f"{FORMAT}|{path}|{stat.st_size}|{stat.st_mtime_ns}"
    folder = root / hashlib.sha256(identity.encode()).hexdigest()
    if folder.exists():
        if _cache_intact(folder):
            return folder
        report("The converted cache is damaged; converting again...")
        shutil.rmtree(folder, ignore_errors=True)
    _convert(path, folder, fingerprint, report)
    return folder


def _cache_intact(folder: Path) -> bool:
    # The manifest is written last, inside the temp folder, so its presence means the
    # conversion finished; sizes and the safetensors header catch later truncation.
    try:
        manifest = read_manifest(folder)
        if manifest.get("format") != FORMAT:
            return False
        for name, size in manifest["files"].items():
            if (folder / name).stat().st_size != size:
                return False
        with safe_open(str(folder / WEIGHTS), framework="pt") as weights:
            return len(list(weights.keys())) > 0
    except Exception:  # any unreadable piece means: rebuild
        return False


def _convert(path: Path, folder: Path, fingerprint: Callable[[torch.nn.Module], str],
             report: Callable[[str], None]) -> None:
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic != b"GGUF":
        raise ModelLoadError(f"{path} is not a GGUF file (it does not start with 'GGUF'). "
                             "Choose a .gguf model file, or a Hugging Face model folder.")
    folder.parent.mkdir(parents=True, exist_ok=True)
    for stale in folder.parent.glob(f".{folder.name}.tmp-*"):  # left by a crashed conversion
        with contextlib.suppress(OSError):
            if time.time() - stale.stat().st_mtime > STALE_TMP_S:
                shutil.rmtree(stale, ignore_errors=True)
    report("Converting GGUF to safetensors (one time)...")
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        try:
            tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name,
                                                      local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(
                path.parent, gguf_file=path.name, dtype=torch.float32, local_files_only=True)
        except Exception as error:
            raise ModelLoadError(
                f"Could not read the GGUF file {path}: {cause_line(error)}. The file is probably "
                "truncated or corrupt (an interrupted download or copy), or its architecture "
                "is not one transformers can read from GGUF; download it again.") from error
        # save_pretrained refuses GGUF-loaded models ("quantized with gguf and is not
        # serializable") although the weights are already plain float32 tensors. Write the
        # three parts ourselves: a config without quantization_config, the state dict via
        # safetensors, and the tokenizer.
        config_dict = model.config.to_dict()
        config_dict.pop("quantization_config", None)
        config_dict.update(architectures=[type(model).__name__], dtype="float32")
        type(model.config).from_dict(config_dict).save_pretrained(tmp)
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.save_pretrained(tmp)
        save_file(_untied_state_dict(model), str(tmp / WEIGHTS), metadata={"format": "pt"})
        tokenizer.save_pretrained(tmp)
        files = {p.name: p.stat().st_size for p in tmp.iterdir() if p.is_file()}
        manifest = {"format": FORMAT, "gguf": str(path), "files": files,
                    "fingerprint": fingerprint(model)}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        del model
        fsync_tree(tmp)  # every file's data on disk before the folder gets its name
        try:
            os.rename(tmp, folder)  # atomic: readers see no cache or a complete one
        except OSError:
            if not _cache_intact(folder):  # not a concurrent conversion that won the race
                raise
        fsync_dir(folder.parent)
    except OSError as error:
        raise ModelLoadError(f"Could not write the converted model to {folder.parent}: "
                             f"{cause_line(error)}. Free disk space or set another cache folder "
                             "(ELDER_CACHE_DIR).") from error
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _untied_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    # Tied weights (lm_head.weight = embed_tokens.weight) share storage and safetensors refuses
    # shared tensors. Keep the first name of each shared tensor; state_dict lists the source
    # (input embeddings) before the tied target, and from_pretrained re-ties the target from
    # config.tie_word_embeddings. The fingerprint check after loading proves the round trip.
    kept: dict[str, torch.Tensor] = {}
    seen: set[tuple] = set()
    for name, tensor in model.state_dict().items():
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        if key not in seen:
            seen.add(key)
            kept[name] = tensor.detach().contiguous()
    return kept
