"""What the baseline editors share: the edit loop, scoring, generation, and a cache of the
frozen lower blocks.

Each baseline answers the questions `ElderEditor` answers for evaluation (`tokenizer`,
`edit`, `target_logits`, `generate`, `extra_parameters`, `state_bytes`, `original`), so
`evaluate.lifelong_eval` and `metrics` treat every method alike. The edit loop is ELDER's
budget style on purpose (Adam, a step budget, early stop on the target cross-entropy, the
prompt and up to max_batch-1 training paraphrases in one batch, `tokens.encode`), so that a
comparison measures the methods, not different training recipes.
"""

from __future__ import annotations

import dataclasses
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, Iterator, Optional

import torch
from torch import nn

from ..editing.events import AppliedEdit, CancelToken, EditCancelled, EditFinished, EditStarted, EditStep
from ..editing.training import FrozenPrefix, target_cross_entropy
from ..elder import ElderConfig, get_profile, resolve_targets
from ..errors import EditRequestError
from ..models.blocks import find_blocks
from ..models.prompt_format import make_format
from ..models.tokens import Batch, encode

BUDGET = ("max_steps", "early_stop_loss", "max_batch")


@dataclass(frozen=True)
class BaselineConfig:
    """Training of one edit; each baseline adds its own fields and dev-chosen defaults.

    The budget (BUDGET fields) is ELDER's by default (`budget_of`): a comparison then gives
    every method the same number of steps and the same early stop, whatever ELDER's profile
    says today; only the learning rate is each method's own."""

    learning_rate: float = 1e-3
    max_steps: int = 50
    early_stop_loss: Optional[float] = None
    max_batch: int = 4

    def replace(self, **changes: Any) -> "BaselineConfig":
        known = {f.name for f in dataclasses.fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise EditRequestError(f"Unknown setting(s) {sorted(unknown)}; known: {sorted(known)}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def budget_of(elder_config: ElderConfig) -> dict:
    return {k: getattr(elder_config, k) for k in BUDGET}


def tensor_bytes(tensors) -> int:
    return int(sum(t.numel() * t.element_size() for t in tensors))


class BaselineEditor:
    """Base of the baselines. Subclasses fill in the hooks marked below."""

    name = "baseline"
    config_cls = BaselineConfig

    def __init__(self, loaded, config: Optional[BaselineConfig] = None,
                 elder_config: Optional[ElderConfig] = None) -> None:
        self.loaded = loaded
        self.tokenizer = loaded.tokenizer
        self.model = loaded.model
        self.model.eval()
        elder_config = elder_config or get_profile()
        self.config = config or self.config_cls(**budget_of(elder_config))
        # The same FFN module and blocks ELDER would wrap on this model: a fair comparison
        # edits the same place.
        self.targets = resolve_targets(self.model, elder_config)
        _, self.blocks = find_blocks(self.model)
        self.edits: list[AppliedEdit] = []
        # ELDER's prompt format, so that a comparison feeds every method the same tokens. Their
        # query stays the last prompt token: GRACE's generation reads it there.
        self.prompt_format = make_format(elder_config.prompt_format, self.tokenizer, "prompt")

    # ------------------------------------------------------------- subclass hooks
    def trainable(self) -> list[nn.Parameter]:
        raise NotImplementedError

    def first_trained_block(self) -> int:
        """Lowest block whose output an edit changes (the blocks below are cached)."""
        return self.targets.first_edit_layer

    def begin_edit(self, request, batch: Batch) -> None:
        """Set-up before the first step (GRACE: codebook maintenance)."""

    def after_step(self) -> None:
        """After each optimiser step (FT-L: the L-infinity projection)."""

    def end_edit(self) -> None:
        """After the last step (GRACE: store the trained value)."""

    def training(self, batch: Batch):
        return nullcontext()

    def scoring(self, positions: Optional[torch.Tensor]):
        """Context for a forward pass or a generation of the edited model."""
        return nullcontext()

    @contextmanager
    def original(self) -> Iterator[None]:
        raise NotImplementedError

    def snapshot(self) -> Any:
        return [p.detach().clone() for p in self.trainable()]

    def restore(self, snap: Any) -> None:
        with torch.no_grad():
            for p, saved in zip(self.trainable(), snap):
                p.copy_(saved)

    def extra_parameters(self) -> int:
        raise NotImplementedError

    def state_bytes(self) -> int:
        raise NotImplementedError

    def settings(self) -> dict:
        return {"method": self.name, **self.config.to_dict(), "ffn_module": self.targets.ffn_module,
                "blocks": list(self.targets.layers_to_transform)}

    # ------------------------------------------------------------------ basics
    @property
    def device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device

    def validate(self, request) -> None:
        if not request.prompt or not request.prompt.strip():
            raise EditRequestError("The prompt is empty; type the question or sentence to edit.")
        if not request.target or not request.target.strip():
            raise EditRequestError("The new target is empty; type the answer the model should give.")

    # -------------------------------------------------------------------- edit
    def edit(self, request, cancel: Optional[CancelToken] = None) -> Iterator:
        """Train one edit: EditStarted, EditStep..., EditFinished | EditCancelled. A cancelled,
        closed or failed edit leaves the method as it was."""
        self.validate(request)
        cfg = self.config
        prompts = [request.prompt, *request.train_paraphrases][: cfg.max_batch]
        batch = encode(self.tokenizer, prompts, [request.target] * len(prompts), self.prompt_format).to(self.device)
        snap = self.snapshot()
        finished = False
        try:
            yield EditStarted(request.prompt, request.target, (), cfg.max_steps)
            start = time.perf_counter()
            self.begin_edit(request, batch)
            params = self.trainable()
            for p in params:
                p.requires_grad_(True)
            cache = FrozenPrefix(self.model, self.blocks, batch, self.first_trained_block())
            optimizer = torch.optim.Adam(params, lr=cfg.learning_rate)
            curve, step, early = [], 0, False
            with self.training(batch):
                for step in range(1, cfg.max_steps + 1):
                    if cancel is not None and cancel.cancelled:
                        self.restore(snap)
                        finished = True
                        yield EditCancelled(step - 1)
                        return
                    ce = target_cross_entropy(cache.target_logits(), batch)
                    curve.append(ce.item())
                    yield EditStep(step, cfg.max_steps, curve[-1], curve[-1], 0.0, ())
                    if cfg.early_stop_loss is not None and curve[-1] < cfg.early_stop_loss:
                        early = True
                        break
                    optimizer.zero_grad(set_to_none=True)
                    ce.backward()
                    optimizer.step()
                    self.after_step()
            self.end_edit()
            applied = AppliedEdit(
                prompt=request.prompt, target=request.target, train_paraphrases=tuple(request.train_paraphrases),
                preset=(), code=(), profile=self.name, steps=step, seconds=time.perf_counter() - start,
                final_loss=curve[-1], loss_curve=tuple(curve), settings=self.config.to_dict(),
            )
            self.edits.append(applied)
            finished = True
            yield EditFinished(applied, early)
        finally:
            if not finished:
                self.restore(snap)
            for p in self.trainable():
                p.grad = None
                p.requires_grad_(False)

    def apply(self, request) -> AppliedEdit:
        for event in self.edit(request):
            if isinstance(event, EditFinished):
                return event.edit
        raise RuntimeError("edit ended without finishing")

    # ----------------------------------------------------------------- scoring
    @torch.no_grad()
    def target_logits(self, prompts: list[str], targets: list[str], *, original: bool = False):
        batch = encode(self.tokenizer, prompts, targets, self.prompt_format).to(self.device)
        with (self.original() if original else self.scoring(batch.query_positions)):
            logits = self.model(**batch.model_inputs(), use_cache=False).logits
        rows = torch.arange(logits.shape[0], device=logits.device)[:, None]
        return logits[rows, batch.target_positions].float(), batch

    @torch.no_grad()
    def generate(self, prompts: list[str], max_new_tokens: int, *, original: bool = False,
                 fixed_length: bool = False) -> list[list[int]]:
        batch = encode(self.tokenizer, prompts, fmt=self.prompt_format).to(self.device)
        kwargs = dict(input_ids=batch.input_ids, attention_mask=batch.attention_mask, max_new_tokens=max_new_tokens,
                      do_sample=False, pad_token_id=self.tokenizer.pad_token_id, num_beams=1)
        if fixed_length:
            kwargs["min_new_tokens"] = max_new_tokens
        with (self.original() if original else self.scoring(None)):
            out = self.model.generate(**kwargs)
        S = batch.input_ids.shape[1]
        return [row[S:].tolist() for row in out]
