"""The scoped router: which edit's experts, if any, a sequence uses, learned from hidden states.

Why this shape (measured on SmolLM2-135M, README "Scoped router"): a same-template neighbour
("The capital of Germany is" for an edit of France's capital) is closer to the edit prompt than
its paraphrases are at the last token of every block, so no last-token router can tell them
apart. What separates them is the subject: the hidden state at the edit's last subject token,
in a low block, standardised by a background mean and spread, stays close to the states of the
same subject in other wordings and far from other subjects in the same template.

So the router reads, for every real prompt position t of a query, the standardised state h_t
of block `scope_block`, and for each stored edit e a learned key k_e:

    s_e(q) = min_j max_t cos(h_t, k_e^j)          (is the edit's subject in the prompt?)
    z_e(q) = temperature * (s_e(q) - theta_e)     (logit of edit e; the defer logit is 0)
    p      = softmax([z_1 .. z_E, 0])             (a distribution over edits plus "defer")

An edit has two key parts k_e^j: one at its last subject token, and one at the subject's most
distinctive other token (the same as the first for a one-token subject). The last token of
"San Marino Football Federation" looks much like that of "Peruvian Football Federation";
requiring both parts to match is what tells them apart.

The sequence uses the experts of argmax_e z_e when that logit is positive (p_e > p_defer), and
the base model otherwise. Each edit's key starts at its subject state and is trained against
negatives the engine makes itself (its template with other subjects, earlier edits' prompts,
background prompts, the user's locality prompts); theta_e is calibrated from the same
negatives (`calibrate`), never set per data set.

Everything is a registered buffer, so `state_dict()` sees it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp(min=1e-6)


@dataclass(frozen=True)
class ScopeDecision:
    """The router's decision for a batch of sequences."""
    expert_index: torch.Tensor      # (B,) edit whose experts apply, -1 = defer
    probs: torch.Tensor             # (B, E + 1) softmax over edits, then defer (last column)
    scores: torch.Tensor            # (B, E) subject match s_e in [-1, 1]
    best_position: torch.Tensor     # (B,) prompt position that matched the chosen/nearest edit best
    nearest: torch.Tensor           # (B,) edit with the highest logit (-1 when no edits)


class ScopeRouter(nn.Module):
    BUFFERS = ("bg_mean", "bg_scale", "keys", "head_keys", "thresholds", "own_scores", "relation_keys",
               "relation_mean")
    def __init__(self, hidden_size: int, relation_size: int, temperature: float, margin: float,
                 relation_weight: float = 0.5) -> None:
        super().__init__()
        self.temperature = temperature
        self.margin = margin
        self.relation_weight = relation_weight
        self.register_buffer("bg_mean", torch.zeros(hidden_size))
        self.register_buffer("bg_scale", torch.ones(hidden_size))
        self.register_buffer("keys", torch.zeros(0, hidden_size))          # (E, d) unit, last subject token
        self.register_buffer("head_keys", torch.zeros(0, hidden_size))     # (E, d) unit, another subject token
        self.register_buffer("thresholds", torch.zeros(0))                 # (E,)
        self.register_buffer("own_scores", torch.zeros(0))                 # (E,) match on the edit's own prompt
        self.register_buffer("relation_keys", torch.zeros(0, relation_size))  # (E, d_q) unit, centred
        self.register_buffer("relation_mean", torch.zeros(relation_size))

    # ------------------------------------------------------------------ features
    @property
    def num_edits(self) -> int:
        return int(self.keys.shape[0])

    def set_background(self, states: list[torch.Tensor], relations: torch.Tensor) -> None:
        """Background statistics from the states (S_i, d) and relation queries (n, d) of
        ordinary prompts."""
        flat = torch.cat([s.float() for s in states])
        self.bg_mean = flat.mean(0)
        self.bg_scale = flat.std(0).clamp(min=1e-3)
        self.relation_mean = relations.float().mean(0)

    def relation_unit(self, q: torch.Tensor) -> torch.Tensor:
        return _unit(q.float() - self.relation_mean.to(q.device))

    def standardise(self, h: torch.Tensor) -> torch.Tensor:
        """Unit vectors of background-standardised states (..., d)."""
        return _unit((h.float() - self.bg_mean.to(h.device)) / self.bg_scale.to(h.device))

    def match(self, states: torch.Tensor, mask: torch.Tensor, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Max cosine over valid positions. states (B, S, d) raw, mask (B, S) bool, keys (K, d)
        unit -> (scores (B, K), argmax position (B, K))."""
        if keys.shape[0] == 0:
            B = states.shape[0]
            return torch.zeros(B, 0), torch.zeros(B, 0, dtype=torch.long)
        z = self.standardise(states)
        sims = torch.einsum("bsd,kd->bsk", z, keys.to(z.device))
        sims = sims.masked_fill(~mask.to(z.device)[:, :, None], -2.0)
        best, pos = sims.max(dim=1)
        return best.cpu(), pos.cpu()

    # ------------------------------------------------------------------ decision
    def logits(self, scores: torch.Tensor) -> torch.Tensor:
        return self.temperature * (scores - self.thresholds[None, :].cpu())

    def decide(self, states: torch.Tensor, mask: torch.Tensor, relation: Optional[torch.Tensor] = None) -> ScopeDecision:
        """states (B, S, d) of block `scope_block`, mask (B, S) of real prompt tokens,
        relation (B, d) the paper's query of each row (its last prompt token, higher up), or
        None: then edits are ranked by their logits alone (see `ambiguous`)."""
        B = states.shape[0]
        scores, positions = self.match(states, mask, self.keys)
        if scores.shape[1]:
            scores = torch.minimum(scores, self.match(states, mask, self.head_keys)[0])
        E = scores.shape[1]
        if E == 0:
            none = torch.full((B,), -1, dtype=torch.long)
            return ScopeDecision(none, torch.ones(B, 1), scores, torch.zeros(B, dtype=torch.long), none)
        logits = self.logits(scores)
        # Among edits that fire, the one whose prompt ends most like the query wins (two edits
        # of one subject: what is asked decides); it only ranks, it never makes an edit fire.
        # (Measured: as a gate the relation would reject ~15% of paraphrases.) Between edits
        # whose prompts end alike ("Ferrari Daytona, developed by", "LaFerrari, developed by"),
        # the match decides, measured against each edit's match on its own prompt: a short
        # subject's key can match a longer name better than that name's own key does.
        rank = logits
        if relation is not None:
            similarity = (self.relation_unit(relation) @ self.relation_keys.to(relation.device).T).cpu()
            rank = self.temperature * (scores - self.own_scores[None, :].cpu()) + self.relation_weight * similarity
        fired = logits > 0
        # an edit that does not fire never outranks one that does, whatever the weight
        nearest = torch.where(fired.any(dim=1), rank.masked_fill(~fired, float("-inf")).argmax(dim=1),
                              logits.argmax(dim=1))
        fire = logits.gather(1, nearest[:, None])[:, 0] > 0
        probs = torch.softmax(torch.cat([logits, torch.zeros(B, 1)], dim=1), dim=1)
        best_pos = positions.gather(1, nearest[:, None])[:, 0]
        return ScopeDecision(torch.where(fire, nearest, torch.full_like(nearest, -1)), probs, scores, best_pos, nearest)

    @staticmethod
    def ambiguous(decision: ScopeDecision) -> torch.Tensor:
        """(B,) rows where more than one edit fires: only these need the relation to rank."""
        if decision.scores.shape[1] == 0:
            return torch.zeros(decision.scores.shape[0], dtype=torch.bool)
        return ((decision.probs[:, :-1] > decision.probs[:, -1:]).sum(1)) > 1

    # ------------------------------------------------------------------ learning
    def fit_key(self, init: torch.Tensor, positives: list[tuple[torch.Tensor, torch.Tensor]],
                negatives: list[tuple[torch.Tensor, torch.Tensor]], steps: int, lr: float) -> torch.Tensor:
        """Train one edit's key parts (P, d) (or one key (d,)): logistic loss on the subject
        match (the lowest part's) of positives (sequences that must fire) against negatives
        (must defer). Each item is (states (S, d), mask (S,))."""
        key = nn.Parameter(_unit(init.float()).clone())
        if steps <= 0 or not negatives:
            return key.detach()
        pos = self._pack(positives)
        neg = self._pack(negatives)
        theta = nn.Parameter(torch.tensor(0.5))
        opt = torch.optim.Adam([key, theta], lr=lr)
        for _ in range(steps):
            k = _unit(key)
            sp = self._max_sim(pos, k)
            sn = self._max_sim(neg, k)
            t = self.temperature
            loss = (nn.functional.softplus(-t * (sp - theta)).mean()
                    + nn.functional.softplus(t * (sn - theta)).mean())
            opt.zero_grad()
            loss.backward()
            opt.step()
        return _unit(key.detach())

    def _pack(self, items: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor, int]:
        """The items' unmasked positions, standardised, as one (T, d) matrix, with each row's
        item. Padding to the longest item would leave half of the rows empty (the background
        prompts are short), and the key fit reads every row at each of its steps."""
        rows = [self.standardise(s.cpu())[mask.cpu()] for s, mask in items]
        if not rows:
            return torch.zeros(0, self.bg_mean.shape[0]), torch.zeros(0, dtype=torch.long), 0
        owner = torch.repeat_interleave(torch.arange(len(rows)), torch.tensor([r.shape[0] for r in rows]))
        return torch.cat(rows), owner, len(rows)

    @staticmethod
    def _max_sim(packed: tuple[torch.Tensor, torch.Tensor, int], key: torch.Tensor) -> torch.Tensor:
        """(N,) match of each packed sequence: max over positions, min over key parts."""
        z, owner, n = packed
        parts = key if key.dim() == 2 else key[None]
        # one (T, d) @ (d, P) product: its backward is a single product too, where an einsum's
        # re-laid the states every step
        sims = z @ parts.t()
        best = torch.full((n, parts.shape[0]), -2.0, dtype=sims.dtype)
        best = best.scatter_reduce(0, owner[:, None].expand_as(sims), sims, "amax", include_self=True)
        return best.min(dim=1).values

    def own_score(self, key: torch.Tensor, positives) -> float:
        """The edit's match on its own prompt (the first positive)."""
        return float(self._max_sim(self._pack(positives[:1]), key)[0])

    def calibrate(self, key: torch.Tensor, positives, negatives, floor: float) -> float:
        """The edit's threshold: `margin` above its hardest negative, kept below its own
        prompt's score (the first positive) so that the edit always fires on itself."""
        own = self.own_score(key, positives)
        hardest = float(self._max_sim(self._pack(negatives), key).max()) if negatives else -1.0
        theta = max(hardest + self.margin, floor)
        if theta >= own:
            # The prompt matches less than the floor or a negative's margin: the prompt wins
            # (an edit that does not fire on its own prompt is lost): a margin below it, or
            # halfway to the hardest negative when that is closer.
            theta = max(own - self.margin, (own + hardest) / 2) if hardest < own else own - 1e-4
        return theta

    def add(self, key: torch.Tensor, threshold: float, relation_key: torch.Tensor, own_score: float = 1.0) -> None:
        """key: (d,) or its parts (P, d), P = 1 or 2: last subject token, then the other part."""
        parts = key.reshape(-1, key.shape[-1])
        parts = torch.cat([parts, parts[:1]]) if parts.shape[0] == 1 else parts
        self.keys = torch.cat([self.keys, parts[0][None].to(self.keys)])
        self.head_keys = torch.cat([self.head_keys, parts[1][None].to(self.head_keys)])
        self.thresholds = torch.cat([self.thresholds, torch.tensor([threshold], dtype=self.thresholds.dtype)])
        self.own_scores = torch.cat([self.own_scores, torch.tensor([own_score], dtype=self.own_scores.dtype)])
        self.relation_keys = torch.cat([self.relation_keys, relation_key[None].to(self.relation_keys)])

    def truncate(self, n: int) -> None:
        self.keys = self.keys[:n].clone()
        self.head_keys = self.head_keys[:n].clone()
        self.thresholds = self.thresholds[:n].clone()
        self.own_scores = self.own_scores[:n].clone()
        self.relation_keys = self.relation_keys[:n].clone()

    def load(self, tensors: dict[str, torch.Tensor], prefix: str = "scope.") -> None:
        for name in self.BUFFERS:
            if name == "head_keys" and prefix + name not in tensors:
                # states saved before key parts: one key is the same as two equal parts
                self.head_keys = tensors[prefix + "keys"].clone()
                continue
            if name == "own_scores" and prefix + name not in tensors:
                # states saved before own scores: a full match each (ranking by the raw match)
                self.own_scores = torch.ones(tensors[prefix + "thresholds"].shape[0])
                continue
            setattr(self, name, tensors[prefix + name].clone())

    def tensors(self, prefix: str = "scope.") -> dict[str, torch.Tensor]:
        return {prefix + name: getattr(self, name).detach().cpu().contiguous()
                for name in self.BUFFERS}


def subject_span(text: str, subject: str) -> Optional[tuple[int, int]]:
    """Character span of the last case-insensitive occurrence of `subject` in `text`."""
    if not subject or not subject.strip():
        return None
    i = text.lower().rfind(subject.strip().lower())
    return (i, i + len(subject.strip())) if i >= 0 else None
