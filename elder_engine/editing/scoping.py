"""The editor's side of the scoped router: reading hidden states, routing, fitting an edit.

The router reads the output of block `scope_block` at every prompt token (see
`elder/scope.py`). Those states come from a short forward of the lower blocks only, with one
extra token in front: the first position of a causal LM is an attention sink whose state is
nearly the same for every prompt (cosine 0.88 between prompts at block 3 of SmolLM2), so a
subject at the very start of a prompt would otherwise be invisible. The extra token changes
only what the router reads; the model's own forward is untouched, so deferral stays exact.
In chat format the router reads the prompt inside the template instead (`PromptFormat.
routing_frame`): the template's head takes the sink's place, and the reading ends where the
format says the prompt ends.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from typing import TYPE_CHECKING, Optional, Sequence

import torch

from ..elder.negatives import background_prompts, entities, guess_subject, near_miss_subjects, swap_subject
from ..elder.scope import ScopeDecision, subject_span
from ..models.blocks import find_blocks, forward_until
from .prompt_states import BATCH, PromptStates
from .shared_prefix import read_sharing_prefix

if TYPE_CHECKING:
    from .interface import Editor
    from .request import EditRequest

# Token states of edit prompts kept for later edits, which read them again as negatives (at most
# this many tokens: ~75 MB of float32 on SmolLM2, some 2,500 ZsRE prompts).
KEPT_TOKENS = 32768
# Read in front of every prompt by the router only (see the module docstring).
ROUTING_PREFIX = "\n"


def prefixed_copies(prompt: str, n: int) -> list[str]:
    """`n` copies of the prompt behind different unrelated sentences from the background set,
    chosen by the prompt's checksum (the same for every replay of the edit). Trained on, they
    keep an edit working when other text precedes its prompt, as in COUNTERFACT's paraphrases;
    prefixes from generated text serve ROME the same way."""
    if n <= 0:
        return []
    pool = [p for p in background_prompts() if len(p) < 40]
    start = zlib.crc32(prompt.encode("utf-8")) % len(pool)
    out = []
    for i in range(n):
        sentence = pool[(start + 7 * i) % len(pool)].rstrip()
        if sentence[-1:] not in ".?!:":
            sentence += "."
        out.append(f"{sentence} {prompt}")
    return out


class ScopeReader:
    def __init__(self, editor: "Editor") -> None:
        self.editor = editor
        self.tuner = editor.tuner
        self.tokenizer = editor.tokenizer
        _, self.blocks = find_blocks(self.tuner.model)
        self._entity_cache: Optional[tuple[list[str], torch.Tensor]] = None
        self._background: Optional[list[PromptStates]] = None
        self._kept: "OrderedDict[str, PromptStates]" = OrderedDict()  # edit prompt -> its states
        self._kept_tokens = 0
        self._read_format = None  # the prompt format the cached background and entity states were read in
        tok = self.tokenizer
        sink = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        self.sink = sink if sink is not None else 0
        self.prefix = [self.sink] + list(tok(ROUTING_PREFIX, add_special_tokens=False)["input_ids"])

    @property
    def router(self):
        return self.tuner.scope_router

    # ------------------------------------------------------------------ states
    def _encode(self, text: str) -> tuple[list[int], list]:
        tok = self.tokenizer
        try:
            enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
            offsets = [tuple(o) for o in enc["offset_mapping"]]
        except (NotImplementedError, TypeError, KeyError):  # slow tokenizers have no offsets
            enc = tok(text, add_special_tokens=False)
            offsets = [(0, 0)] * len(enc["input_ids"])
        ids = list(enc["input_ids"]) or [self.sink]
        return ids, offsets or [(0, 0)]

    @torch.no_grad()
    def states(self, texts: Sequence[str], relation: bool = True) -> list[PromptStates]:
        """States of block `scope_block`; with `relation`, also the paper's query (a forward up
        to the first MoLoRA block instead of only the few blocks below `scope_block`)."""
        self._forget_other_format()
        out: list[PromptStates] = []
        for i in range(0, len(texts), BATCH):
            out += self._states_batch(list(texts[i:i + BATCH]), relation)
        return out

    def _states_batch(self, texts: list[str], relation: bool) -> list[PromptStates]:
        head, tail = self.editor.prompt_format.routing_frame()
        prefix = head or self.prefix
        # template tokens after the text span no characters of it
        encoded = [(ids + tail, offsets + [(len(t), len(t))] * len(tail))
                   for t, (ids, offsets) in zip(texts, map(self._encode, texts))]
        rows = [prefix + ids for ids, _ in encoded]
        S = max(len(r) for r in rows)
        device = self.editor.device
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.sink
        ids = torch.full((len(rows), S), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), S), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, S - len(r):] = torch.tensor(r)
            mask[i, S - len(r):] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        captured = {}

        def keep(module, args, output):
            captured["h"] = output[0] if isinstance(output, tuple) else output

        def query(module, args):
            captured["q"] = args[0][:, -1]

        cfg = self.tuner.config_elder
        last, pre_hooks = cfg.scope_block, []
        if relation and not self.relation_is_free:  # the paper's query, read inside block first-1 (maybe the scope block itself)
            last = max(cfg.scope_block, cfg.first_edit_layer - 1)
            pre_hooks.append((self.tuner.query_module, query))
        stop_at = self.blocks[last + 1] if last + 1 < len(self.blocks) else None
        with self.tuner.routing.session(None, deferral=False, expert_index=torch.full((len(rows),), -1)):
            forward_until(self.tuner.model, stop_at, [(self.blocks[cfg.scope_block], keep)], pre_hooks,
                          input_ids=ids.to(device), attention_mask=mask.to(device),
                          position_ids=positions.to(device), use_cache=False)
        h = captured["h"].float().cpu()
        if relation and self.relation_is_free:
            captured["q"] = captured["h"][:, -1]
        q = captured["q"].float().cpu() if relation else torch.zeros(len(rows), 0)
        skip = len(prefix)
        return [PromptStates(states=h[i, S - len(r) + skip:], offsets=enc[1], relation=q[i]) for i, (r, enc) in enumerate(zip(rows, encoded))]

    def states_kept(self, texts: Sequence[str], like: Optional[str] = None) -> list[PromptStates]:
        """`states(texts, relation=False)`, reading again only the texts that are not edit prompts
        already read (earlier edits' prompts, the commonest negatives). The lower blocks never
        change, so a kept state is what a new read would give (up to batching's rounding).
        With `like` (the edit prompt), the tokens a text shares with it are read once for all
        (`shared_prefix.py`)."""
        self._forget_other_format()
        missing = list(dict.fromkeys(t for t in texts if t not in self._kept))
        fresh = read_sharing_prefix(self, missing, like) if like is not None else self.states(missing, relation=False)
        read = dict(zip(missing, fresh))
        return [self._kept[t] if t in self._kept else read[t] for t in texts]

    def _forget_other_format(self) -> None:
        if self.editor.prompt_format != self._read_format:
            self._background = self._entity_cache = None
            self._kept.clear()
            self._kept_tokens = 0
            self._read_format = self.editor.prompt_format

    def _keep(self, text: str, item: PromptStates) -> None:
        if text in self._kept:
            self._kept.move_to_end(text)
            return
        self._kept[text] = item
        self._kept_tokens += item.states.shape[0]
        while self._kept_tokens > KEPT_TOKENS and len(self._kept) > 1:
            _, old = self._kept.popitem(last=False)
            self._kept_tokens -= old.states.shape[0]

    @property
    def relation_is_free(self) -> bool:
        """Whether the relation query comes out of the same short forward as the subject states."""
        return self.tuner.config_elder.scope_relation == "scope-block"

    # ------------------------------------------------------------------ routing
    def background(self) -> list[PromptStates]:
        if self._background is None:
            self._background = self.states(background_prompts())
        return self._background

    def ensure_background(self) -> None:
        """Background statistics for a router that has none yet (a fresh engine)."""
        if self.router.num_edits == 0 and bool((self.router.bg_scale == 1).all()):
            bg = self.background()
            self.router.set_background([p.states for p in bg], torch.stack([p.relation for p in bg]))

    def route(self, prompts: Sequence[str]) -> ScopeDecision:
        """The router's decision. The few low blocks decide whether an edit fires; only a row
        where several edits fire pays for the forward up to the relation query that ranks them."""
        return self.route_with_states(prompts)[0]

    def route_with_states(self, prompts: Sequence[str]) -> tuple[ScopeDecision, list[PromptStates]]:
        """`route`, and the low-block states it read (for views that show the matched token)."""
        if not prompts:
            return self.router.decide(torch.zeros(0, 1, self.router.bg_mean.shape[0]),
                                      torch.zeros(0, 1, dtype=torch.bool)), []
        if self.relation_is_free:
            items = self.states(prompts)
            return self._decide(items, "relation"), items
        items = self.states(prompts, relation=False)
        decision = self._decide(items, None)
        ambiguous = self.router.ambiguous(decision).nonzero().flatten().tolist()
        if not ambiguous:
            return decision, items
        again = self._decide(self.states([prompts[i] for i in ambiguous]), "relation")
        rows = torch.tensor(ambiguous)
        merged = {f: getattr(decision, f).clone() for f in ("expert_index", "probs", "scores", "best_position", "nearest")}
        for f in merged:
            merged[f][rows] = getattr(again, f)
        return ScopeDecision(**merged), items

    def _decide(self, items: list[PromptStates], relation) -> ScopeDecision:
        S = max(p.states.shape[0] for p in items)
        d = items[0].states.shape[1]
        states = torch.zeros(len(items), S, d)
        mask = torch.zeros(len(items), S, dtype=torch.bool)
        for i, p in enumerate(items):
            n = p.states.shape[0]
            states[i, :n] = p.states
            mask[i, :n] = True
        return self.router.decide(states, mask, torch.stack([p.relation for p in items]) if relation else None)

    # ------------------------------------------------------------------ fitting
    def subject_of(self, request: "EditRequest") -> str:
        given = (request.subject or "").strip()
        if given and self.tuner.config_elder.use_subject and subject_span(request.prompt, given):
            return given
        return guess_subject(request.prompt)

    def key_position(self, item: PromptStates, text: str, subject: str) -> int:
        """The prompt token that carries the subject: the last token overlapping its span, or
        (no subject found) the most distinctive token, furthest from the background."""
        return self.key_positions(item, text, subject)[0]

    def key_positions(self, item: PromptStates, text: str, subject: str) -> tuple[int, int]:
        """(last subject token, the subject's most distinctive other token); both the same when
        the subject is one token (or not found)."""
        z = ((item.states - self.router.bg_mean) / self.router.bg_scale).norm(dim=-1)
        span = subject_span(text, subject)
        if span is not None:
            hits = [k for k, (a, b) in enumerate(item.offsets) if a < span[1] and b > span[0]]
            if hits:
                others = hits[:-1] if self.tuner.config_elder.scope_key_parts > 1 else []
                head = max(others, key=lambda k: float(z[k])) if others else hits[-1]
                return hits[-1], head
        pos = int(z[:-1].argmax()) if z.shape[0] > 1 else 0
        return pos, pos

    def fit(self, request: "EditRequest", earlier: Sequence) -> tuple[torch.Tensor, float, torch.Tensor]:
        """Train and calibrate the router key of a new edit. `earlier` are the engine's
        AppliedEdits before it. Returns (key, threshold, relation key, match on its own prompt)."""
        cfg = self.tuner.config_elder
        self.ensure_background()
        subject = self.subject_of(request)
        # the prompt behind unrelated sentences: the subject's states in other contexts; and the
        # subject on its own, whose token states are exactly those of a prompt that opens with it
        # ("Pablo Picasso grew up speaking" for "The native language of Pablo Picasso was")
        contexts = prefixed_copies(request.prompt, max(cfg.train_prefixes, cfg.scope_context_positives))
        span = subject_span(request.prompt, subject)
        if cfg.scope_context_positives > 0 and span is not None and span[0] > 0:
            contexts.append(request.prompt[span[0]:span[1]])
        positives_text = [request.prompt, *request.train_paraphrases, *contexts]
        if self.relation_is_free:  # the relation comes with every state: one read
            pos = self.states(positives_text)
        else:
            pos = self.states(positives_text[:1]) + self.states(positives_text[1:], relation=False)
        self._keep(request.prompt, pos[0])
        key_pos, head_pos = self.key_positions(pos[0], request.prompt, subject)
        init = self.router.standardise(pos[0].states[key_pos])
        parts = (init[None] if head_pos == key_pos
                 else torch.stack([init, self.router.standardise(pos[0].states[head_pos])]))
        relation = self.router.relation_unit(pos[0].relation)
        negatives_text = self._negative_prompts(request, subject, init, earlier)
        near_text = self._near_misses(request, subject, init, earlier)
        read = self.states_kept(negatives_text + near_text, like=request.prompt)  # one batched read of both
        neg, near = read[:len(negatives_text)] + self.background(), read[len(negatives_text):]
        as_items = lambda xs: [(p.states, torch.ones(p.states.shape[0], dtype=torch.bool)) for p in xs]
        key = self.router.fit_key(parts, as_items(pos), as_items(neg + near), cfg.scope_key_steps, cfg.scope_key_lr)
        theta = self.router.calibrate(key, as_items(pos), as_items(neg), cfg.scope_floor)
        return key, theta, relation, self.router.own_score(key, as_items(pos))

    def _negative_prompts(self, request, subject: str, init: torch.Tensor, earlier: Sequence) -> list[str]:
        cfg = self.tuner.config_elder
        same = subject.lower()
        out: list[str] = list(request.locality_prompts)
        span = subject_span(request.prompt, subject)
        if span is not None and cfg.scope_swaps > 0:
            names = [n for n in self._nearest_names(init, earlier) if n.lower().removeprefix("the ") != same.removeprefix("the ")]
            out += [swap_subject(request.prompt, span, n) for n in names[: cfg.scope_swaps]]
        if cfg.scope_earlier > 0 and earlier:
            keys = self.router.keys
            others = [i for i, e in enumerate(earlier)
                      if (e.subject or "").lower() != same and i < keys.shape[0]]
            if others:
                sims = keys[others] @ init
                order = sims.argsort(descending=True)[: cfg.scope_earlier].tolist()
                # an earlier prompt that carries this edit's subject is not a negative
                out += [earlier[others[j]].prompt for j in order
                        if not subject_span(earlier[others[j]].prompt, subject)]
        return out

    def _near_misses(self, request, subject: str, init: torch.Tensor, earlier: Sequence) -> list[str]:
        cfg = self.tuner.config_elder
        span = subject_span(request.prompt, subject)
        if span is None or cfg.scope_near_misses <= 0:
            return []
        names = self._nearest_names(init, earlier)
        return [swap_subject(request.prompt, span, n)
                for n in near_miss_subjects(request.prompt[span[0]:span[1]], names, cfg.scope_near_misses)]

    def _nearest_names(self, init: torch.Tensor, earlier: Sequence) -> list[str]:
        """Names to swap in: the 8 latest earlier edits' subjects (the edits most likely to
        collide with this one), then the shipped entities, most similar to the new key first."""
        if self._entity_cache is None:
            names = list(entities())
            items = self.states([f"This is about {n}" for n in names], relation=False)
            keys = torch.stack([self.router.standardise(p.states[-1]) for p in items])
            self._entity_cache = (names, keys)
        names, keys = self._entity_cache
        latest = [n for n in dict.fromkeys(e.subject for e in earlier if e.subject) if n not in names][-8:]
        ranked = [names[i] for i in (keys @ init).argsort(descending=True).tolist()]
        return latest + ranked
