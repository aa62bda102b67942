"""Training one ELDER edit: guided loss, Adam, cached lower blocks.

Base weights are frozen and the MoLoRA blocks sit high in the network, so the blocks below the
first MoLoRA block give the same output at every iteration of an edit. `LowerBlockCache` runs
them once and replays their output; the LM head is applied at the target positions only.
`tests/test_elder.py` checks that this gives the same logits as a full forward.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from typing import Any, Iterator

import torch
from torch import nn

from ..elder import ElderModel
from ..models.blocks import cache_argument, find_blocks, forward_until, inner_model
from ..models.head import head_logits
from ..models.tokens import Batch


class _ReplayBlock(nn.Module):
    """Stands in for a lower block: returns the cached output of the last lower block."""

    def __init__(self, output: Any) -> None:
        super().__init__()
        self.output = output

    def forward(self, *args, **kwargs):
        return self.output


class FrozenPrefix:
    """Runs the blocks below `first` once and replays their output afterwards.

    Nothing below `first` changes while an edit trains, so every later forward starts at block
    `first`; the LM head is applied at the target positions only. Subclasses say in which
    context the two forwards run (`_fill_context`, `_forward_context`)."""

    def __init__(self, model: nn.Module, blocks: nn.ModuleList, batch: Batch, first: int) -> None:
        self.model, self.blocks, self.batch, self.first = model, blocks, batch, first
        self.output: Any = None
        if first > 0:
            self._fill()

    def _fill_context(self):
        return nullcontext()

    def _forward_context(self):
        return nullcontext()

    def _fill(self) -> None:
        def keep(module, args, output):
            self.output = output

        with torch.no_grad(), self._fill_context():
            forward_until(self.model, self.blocks[self.first], [(self.blocks[self.first - 1], keep)],
                          **self.batch.model_inputs(), use_cache=False)

    @contextmanager
    def _replayed(self) -> Iterator[None]:
        originals = [self.blocks[i] for i in range(self.first)]
        replay = _ReplayBlock(self.output)
        try:
            for i in range(self.first):
                self.blocks[i] = replay
            yield
        finally:
            for i, block in enumerate(originals):
                self.blocks[i] = block

    def target_logits(self) -> torch.Tensor:
        """Logits (B, T, V) at the target positions; gradients reach whatever is trainable."""
        b = self.batch
        with self._replayed(), self._forward_context():
            hidden = inner_model(self.model)(**b.model_inputs(), use_cache=False).last_hidden_state
        rows = torch.arange(hidden.shape[0], device=hidden.device)[:, None]
        return head_logits(self.model.get_output_embeddings(), hidden[rows, b.target_positions]).float()


class LowerBlockCache(FrozenPrefix):
    """`FrozenPrefix` for ELDER: the fill also records the routing query (taken at the last
    prompt token, in a lower block), and training forwards route with it."""

    def __init__(self, tuner: ElderModel, batch: Batch, expert_index: torch.Tensor | None = None) -> None:
        self.tuner = tuner
        self.expert_index = expert_index
        self.query: torch.Tensor | None = None
        _, blocks = find_blocks(tuner.model)
        super().__init__(tuner.model, blocks, batch, tuner.config_elder.first_edit_layer)

    @contextmanager
    def _fill_context(self):
        with self.tuner.routing.session(self.batch.query_positions, deferral=False) as state:
            yield
            self.query = state.query

    def _forward_context(self):
        # the positions place experts_from_answer's mask, when the tuner has it
        return self.tuner.routing.session(self.batch.query_positions, query=self.query, deferral=False,
                                          expert_index=self.expert_index)


class AnswerSuffixCache(LowerBlockCache):
    """`LowerBlockCache` for experts_from_answer: experts change nothing before the last prompt
    token, so every block's keys and values there are the base model's. One base forward keeps
    them; each training forward then runs only the suffix (the last prompt token and the
    target) on top of them, instead of the whole sequence through the upper blocks.
    `tests/test_answer_suffix.py` checks that this gives the logits of a whole forward."""

    def __init__(self, tuner: ElderModel, batch: Batch, expert_index: torch.Tensor | None = None) -> None:
        ends = batch.target_positions[:, 0]  # each row's last prompt token
        self.start = int(ends.min())
        # rows whose prompt ends later than the shortest target allows: masked up to their end
        self.experts_from = None if bool((ends == self.start).all()) else ends - self.start
        self.prefix: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.cache_name = cache_argument(inner_model(tuner.model))
        super().__init__(tuner, batch, expert_index)  # first >= 1 (resolve_targets), so this fills

    def _fill(self) -> None:
        from transformers import DynamicCache

        def keep(module, args, output):
            self.output = output

        cache = DynamicCache(config=self.model.config)
        with torch.no_grad(), self._fill_context():
            forward_until(self.model, None, [(self.blocks[self.first - 1], keep)], **self.batch.model_inputs(),
                          use_cache=True, **{self.cache_name: cache})
        s = self.start
        self.prefix = [(layer.keys[:, :, :s].clone(), layer.values[:, :, :s].clone()) for layer in cache.layers]
        out = self.output
        self.output = (out[0][:, s:], *out[1:]) if isinstance(out, tuple) else out[:, s:]

    def _forward_context(self):
        return self.tuner.routing.session(query=self.query, deferral=False, expert_index=self.expert_index,
                                          experts_from=self.experts_from)

    def target_logits(self) -> torch.Tensor:
        from transformers import DynamicCache

        b, s = self.batch, self.start
        cache = DynamicCache(ddp_cache_data=self.prefix, config=self.model.config)
        with self._replayed(), self._forward_context():
            hidden = inner_model(self.model)(input_ids=b.input_ids[:, s:], attention_mask=b.attention_mask,
                                             position_ids=b.position_ids[:, s:], use_cache=True,
                                             **{self.cache_name: cache}).last_hidden_state
        rows = torch.arange(hidden.shape[0], device=hidden.device)[:, None]
        return head_logits(self.model.get_output_embeddings(), hidden[rows, b.target_positions - s]).float()


def training_cache(tuner: ElderModel, batch: Batch, expert_index: torch.Tensor | None = None) -> LowerBlockCache:
    """The training cache for the tuner's settings: past the prompt (experts_from_answer), or
    past the lower blocks; a model whose cache cannot be rebuilt this way gets the latter,
    which trains the same experts at the cost of whole-sequence forwards."""
    if tuner.config_elder.experts_from_answer:
        try:
            return AnswerSuffixCache(tuner, batch, expert_index)
        except (TypeError, ValueError, AttributeError, NotImplementedError):
            pass  # the fill's routing session has reset itself
    return LowerBlockCache(tuner, batch, expert_index)


def full_target_logits(
    tuner: ElderModel, batch: Batch, *, deferral: bool, expert_index: torch.Tensor | None = None
) -> torch.Tensor:
    """Reference path: a whole forward, logits (B, T, V) at the target positions."""
    with tuner.routing.session(batch.query_positions, deferral=deferral, expert_index=expert_index):
        logits = tuner.model(**batch.model_inputs(), use_cache=False).logits
    rows = torch.arange(logits.shape[0], device=logits.device)[:, None]
    return logits[rows, batch.target_positions].float()


def target_cross_entropy(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Mean over the batch of each sequence's mean CE on its target tokens."""
    mask = batch.target_mask.to(logits.device)
    ce = nn.functional.cross_entropy(
        logits.transpose(1, 2), batch.target_ids.to(logits.device), reduction="none"
    )
    per_seq = (ce * mask).sum(-1) / mask.sum(-1).clamp(min=1)
    return per_seq.mean()


def guided_loss(tuner: ElderModel, query: torch.Tensor, preset: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum over layers of -log s_i over the preset experts i, mean over the batch.

    Returns the loss and the router weights (L, N) of the first row (the edit prompt)."""
    total = 0.0
    weights = []
    for layer, chosen in zip(tuner.elder_layers, preset):
        probs = layer.router_probs(query)
        total = total - torch.log(probs[:, chosen.to(probs.device)] + 1e-12).sum(-1)
        weights.append(probs[0].detach())
    return total.mean(), torch.stack(weights)
