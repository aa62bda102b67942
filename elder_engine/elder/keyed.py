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
from dataclasses import dataclass, field

import torch


@dataclass
class KeyIndex:
    """Bags of token ids, one or more per edit, with document frequencies over all of them."""

    keys: list[tuple[int, ...]] = field(default_factory=list)   # token ids of each key
    owners: list[int] = field(default_factory=list)             # edit (expert) index of each key
    df: Counter = field(default_factory=Counter)
    _cache: list = field(default_factory=list, repr=False, compare=False)
    _cache_size: int = field(default=-1, repr=False, compare=False)

    def add(self, owner: int, token_ids: list[int]) -> None:
        self.keys.append(tuple(token_ids))
        self.owners.append(owner)
        self.df.update(set(token_ids))

    def truncate(self, n_owners: int) -> None:
        """Forget the keys of experts >= n_owners (used when an edit is undone)."""
        kept = [(k, o) for k, o in zip(self.keys, self.owners) if o < n_owners]
        self.keys = [k for k, _ in kept]
        self.owners = [o for _, o in kept]
        self.df = Counter()
        for k in self.keys:
            self.df.update(set(k))
        self._cache_size = -1

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
        for k, owner in zip(self._key_vectors(), self.owners):
            sim = sum(v * k.get(t, 0.0) for t, v in q.items())
            if sim >= best_sim - 1e-12:
                best, best_sim = owner, sim
        return best, best_sim

    def to_tensors(self) -> dict[str, torch.Tensor]:
        flat = [t for k in self.keys for t in k]
        return {
            "keys.tokens": torch.tensor(flat, dtype=torch.long),
            "keys.lengths": torch.tensor([len(k) for k in self.keys], dtype=torch.long),
            "keys.owners": torch.tensor(self.owners, dtype=torch.long),
        }

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> "KeyIndex":
        index = cls()
        tokens = tensors["keys.tokens"].tolist()
        pos = 0
        for length, owner in zip(tensors["keys.lengths"].tolist(), tensors["keys.owners"].tolist()):
            index.add(owner, tokens[pos:pos + length])
            pos += length
        return index
