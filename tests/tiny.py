"""Tiny randomly initialised models and a word-level tokenizer, for fast mechanism tests."""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    GPT2Config, GPT2LMHeadModel, GPTNeoXConfig, GPTNeoXForCausalLM, LlamaConfig, LlamaForCausalLM,
    MistralConfig, MistralForCausalLM, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM,
)

from elder_engine.models.loading import LoadedModel, compute_fingerprint

WORDS = (
    "<pad> <unk> the capital of france is paris london berlin who wrote hamlet shakespeare what "
    "colour sky blue red green quux zorbia mother tongue language french english a an in on and "
    "river city country king queen first name was born year 1990 2006 team plays for ? . ,"
).split()


# A chat template in the shape of SmolLM2's: a default system turn when none is given, then
# the turns, then the generation prompt. Its markers are special tokens of the tiny vocabulary.
CHAT_MARKERS = ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>")
CHAT_WORDS = [*WORDS, *CHAT_MARKERS, "you", "are", "helpful", "assistant"]
CHAT_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}<|system|> you are a helpful assistant <|end|> {% endif %}"
    "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} <|end|> {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)


def tiny_tokenizer(chat: bool = False) -> PreTrainedTokenizerFast:
    """The word-level tokenizer; `chat` adds the chat markers and CHAT_TEMPLATE."""
    words = CHAT_WORDS if chat else WORDS
    vocab = {w: i for i, w in enumerate(words)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", unk_token="<unk>", eos_token="<pad>")
    tok.padding_side = "left"
    if chat:
        tok.add_special_tokens({"additional_special_tokens": list(CHAT_MARKERS)})
        tok.chat_template = CHAT_TEMPLATE
    return tok


def _common(vocab: int) -> dict:
    return dict(vocab_size=vocab, hidden_size=32, intermediate_size=48, num_hidden_layers=6,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)


def tiny_model(family: str = "llama", seed: int = 0, vocab: int = len(WORDS)):
    torch.manual_seed(seed)
    v = vocab
    if family == "llama":
        model = LlamaForCausalLM(LlamaConfig(**_common(v)))
    elif family == "mistral":
        model = MistralForCausalLM(MistralConfig(**_common(v)))
    elif family == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**_common(v)))
    elif family == "gpt2":
        model = GPT2LMHeadModel(GPT2Config(vocab_size=v, n_embd=32, n_layer=6, n_head=4, n_positions=128))
    elif family == "gpt_neox":
        model = GPTNeoXForCausalLM(GPTNeoXConfig(vocab_size=v, hidden_size=32, intermediate_size=48,
                                                 num_hidden_layers=6, num_attention_heads=4,
                                                 max_position_embeddings=128))
    else:
        raise ValueError(family)
    model.eval()
    for p in model.parameters():
        p.requires_grad = False
    return model


FAMILIES = ("llama", "gpt2", "qwen2", "mistral", "gpt_neox")


def tiny_loaded(family: str = "llama", seed: int = 0, chat: bool = False) -> LoadedModel:
    """A tiny model and tokenizer; `chat`: a tokenizer with a chat template (and a vocabulary
    with its markers)."""
    model = tiny_model(family, seed, len(CHAT_WORDS if chat else WORDS))
    return LoadedModel(model=model, tokenizer=tiny_tokenizer(chat), source=f"tiny-{family}",
                       display_name=f"tiny-{family}", model_type=model.config.model_type,
                       fingerprint=compute_fingerprint(model), device=torch.device("cpu"))
