"""Keyed routing: which stored edit, if any, a sequence belongs to.

The paper routes with a learned softmax router and defers by the Hamming distance of top-k
codes; on the default model those codes do not separate edited facts from unrelated questions
(README, "Beyond the paper"). Keyed routing stores a key per edit (its prompt and training
paraphrases) and compares a sequence's prompt with them by TF-IDF cosine over token ids: the
rare tokens of a prompt (its subject, its relation words) weigh most. Document frequencies come
from the stored edits themselves, so the weighting adapts as edits accumulate. The sequence is
routed to the most similar edit's own experts when the similarity reaches the scope threshold,
and deferred to the base model otherwise.
"""

from __future__ import annotations

import math
from collections import Counter

import torch
from torch import nn


class KeyIndex(nn.Module):
    """Bags of token ids, one or more per edit, with document frequencies over all of them.

    The keys live in three buffers (`state_dict()` sees them): every key's token ids end to end,
    each key's length, and the edit (expert) each key belongs to. The Python lists beside them
    are derived, for the similarity loops."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("tokens", torch.zeros(0, dtype=torch.long))
        self.register_buffer("lengths", torch.zeros(0, dtype=torch.long))
        self.register_buffer("owners", torch.zeros(0, dtype=torch.long))
        self._rebuild()

    def _rebuild(self) -> None:
        flat, self.keys, pos = self.tokens.tolist(), [], 0
        for length in self.lengths.tolist():
            self.keys.append(tuple(flat[pos:pos + length]))
            pos += length
        self.key_owners: list[int] = self.owners.tolist()
        self.df: Counter = Counter()
        for k in self.keys:
            self.df.update(set(k))
        self._cache: list = []
        self._cache_size = -1

    def add(self, owner: int, token_ids: list[int]) -> None:
        self.tokens = torch.cat([self.tokens, torch.tensor(list(token_ids), dtype=torch.long)])
        self.lengths = torch.cat([self.lengths, torch.tensor([len(token_ids)], dtype=torch.long)])
        self.owners = torch.cat([self.owners, torch.tensor([owner], dtype=torch.long)])
        self.keys.append(tuple(token_ids))
        self.key_owners.append(owner)
        self.df.update(set(token_ids))

    def truncate(self, n_owners: int) -> None:
        """Forget the keys of experts >= n_owners (used when an edit is undone)."""
        keep = self.owners < n_owners
        token_keep = torch.repeat_interleave(keep, self.lengths) if len(self.lengths) else keep
        self.load(self.tokens[token_keep], self.lengths[keep], self.owners[keep])

    def load(self, tokens: torch.Tensor, lengths: torch.Tensor, owners: torch.Tensor) -> None:
        self.tokens = tokens.to(torch.long).clone()
        self.lengths = lengths.to(torch.long).clone()
        self.owners = owners.to(torch.long).clone()
        self._rebuild()

    def _vector(self, token_ids) -> dict[int, float]:
        n = len(self.keys)
        counts = Counter(token_ids)
        vec = {t: c * (math.log((n + 1) / (self.df.get(t, 0) + 1)) + 1.0) for t, c in counts.items()}
        norm = math.sqrt(sum(v * v for v in vec.values())) or 1.0
        return {t: v / norm for t, v in vec.items()}

    def _key_vectors(self) -> list[dict[int, float]]:
        # Weights change whenever a key is added; recompute then, not on every query.
        if self._cache_size != len(self.keys):
            self._cache = [self._vector(k) for k in self.keys]
            self._cache_size = len(self.keys)
        return self._cache

    def nearest(self, token_ids) -> tuple[int, float]:
        """(edit index, cosine similarity) of the most similar key; (-1, 0.0) when empty.
        On a tie the later edit wins: newer knowledge replaces older."""
        if not self.keys:
            return -1, 0.0
        q = self._vector(token_ids)
        best, best_sim = -1, -1.0
        for k, owner in zip(self._key_vectors(), self.key_owners):
            sim = sum(v * k.get(t, 0.0) for t, v in q.items())
            if sim >= best_sim - 1e-12:
                best, best_sim = owner, sim
        return best, best_sim
