"""The language model under edit: loading a Hugging Face folder or GGUF file (and the cache of
converted GGUFs), prompt formats (plain text or the chat template), token helpers, and finding
the transformer blocks to hook or stop at."""
