"""`ElderEditor`: the engine's public face — edit, probe, score, save and load.

No Qt here. Long operations are generators of events (see `events.py`); the app's worker and
the CLI drive the same generators.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from contextlib import contextmanager
from typing import Iterator, Optional

import torch

from ..elder import ElderConfig, ElderModel, get_profile
from ..elder.presets import draw_preset
from ..elder.routing import TRAINING_EXPERT
from ..errors import EditRequestError
from ..models.prompt_format import PromptFormat, make_format
from ..models.tokens import Batch, encode, key_ids
from . import views
from .events import AppliedEdit, CancelToken, EditCancelled, EditFinished, EditStarted, EditStep
from .export import read_pretrained, save_pretrained
from .probe import ProbeResult, run_probe
from .request import EditRequest
from .scoping import ScopeReader, prefixed_copies
from .state import apply_state, apply_state_dict, check_meta, load_state, read_state_file, save_state
from .training import full_target_logits, guided_loss, target_cross_entropy, training_cache

MAX_TARGET_TOKENS = 64


# Settings one edit may change; the layer layout (L, N, r, k) is fixed for an engine's life.
TRAINING_SETTINGS = ("guide_lambda", "learning_rate", "max_steps", "early_stop_loss", "max_batch", "train_prefixes",
                     "min_steps", "stop_at_min_steps", "stop_at_min_steps_loss")
# Settings that act at inference only (the deferral check); changing them retrains nothing.
INFERENCE_SETTINGS = ("deferral", "epsilon", "scope_threshold")


class ElderEditor:
    def __init__(self, loaded, config: Optional[ElderConfig] = None, *, cache_lower_blocks: bool = True) -> None:
        """`loaded` is a `loading.LoadedModel` (model + tokenizer + fingerprint)."""
        self.loaded = loaded
        self.tokenizer = loaded.tokenizer
        config = config or get_profile()
        # a chat format on a tokenizer without a template fails before ELDER touches the model
        self._format: Optional[PromptFormat] = make_format(config.prompt_format, self.tokenizer, config.chat_query)
        self.tuner = ElderModel(loaded.model, config)
        self.model = self.tuner.model
        self.model.eval()
        self.cache_lower_blocks = cache_lower_blocks
        self.edits: list[AppliedEdit] = []
        self.scope = ScopeReader(self) if self.tuner.scoped else None

    # ---------------------------------------------------------------- basics
    @property
    def config(self) -> ElderConfig:
        return self.tuner.config_elder

    @property
    def prompt_format(self) -> PromptFormat:
        """How prompts and targets become tokens (config `prompt_format`, `chat_query`)."""
        cfg, fmt = self.config, self._format
        if fmt is None or (fmt.name, fmt.query_at) != (cfg.prompt_format, cfg.chat_query):
            fmt = self._format = make_format(cfg.prompt_format, self.tokenizer, cfg.chat_query)
        self.tuner.routing.answer_offset = fmt.query_back  # where experts_from_answer starts
        return fmt

    def set_prompt_format(self, name: str) -> None:
        """Switch plain/chat. Refused once the engine has edits: they were trained, keyed and
        calibrated on the other format's tokens, and a history keeps one format for life."""
        if name == self.config.prompt_format:
            return
        if self.edits:
            raise EditRequestError(f"The engine holds {len(self.edits)} edit(s) made in the {self.config.prompt_format} "
                                   f"format; every edit of a history uses one format. Start a new history to edit "
                                   f"in the {name} format.")
        make_format(name, self.tokenizer, self.config.chat_query)  # refuses chat without a template
        self.tuner.config_elder = dataclasses.replace(self.config, prompt_format=name)

    @property
    def device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device

    @property
    def max_context(self) -> int:
        cfg = self.model.config
        return int(getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", 2048))

    def parameters(self) -> list[torch.nn.Parameter]:
        return [p for n, p in self.model.named_parameters() if self.tuner.prefix in n]

    def training_parameters(self) -> list[torch.nn.Parameter]:
        """What an edit trains: everything for router profiles; the new experts for keyed ones."""
        if not self.tuner.own_experts:
            return self.parameters()
        name = "default"
        return [p for layer in self.tuner.elder_layers for p in (layer.elder_A[name], layer.elder_B[name])]

    def extra_parameters(self) -> int:
        """Numbers ELDER adds to the model: its parameters and the frozen experts (buffers)."""
        pooled = sum(b.numel() for layer in self.tuner.elder_layers for b in layer.elder_pool.buffers())
        return sum(p.numel() for p in self.parameters()) + pooled

    def expert_index(self, prompts: list[str]) -> Optional[torch.Tensor]:
        """Keyed and scoped routing: the expert each prompt uses (-1: deferred); None for router profiles."""
        if self.tuner.scoped:
            if not self.edits or not prompts:
                return torch.full((len(prompts),), -1, dtype=torch.long)
            decision = self.scope.route(list(prompts))
            if not self.config.deferral:
                return decision.nearest
            return decision.expert_index
        if not (self.tuner.keyed or self.config.key_scope):
            return None
        return self.tuner.route_keyed([key_ids(self.tokenizer, p) for p in prompts])[0]

    @contextmanager
    def original(self) -> Iterator[None]:
        """Experts switched off: the base model, exactly."""
        for layer in self.tuner.elder_layers:
            layer.enable_adapters(False)
        try:
            yield
        finally:
            for layer in self.tuner.elder_layers:
                layer.enable_adapters(True)

    def validate(self, prompt: str, target: Optional[str] = None) -> None:
        if not prompt or not prompt.strip():
            raise EditRequestError("The prompt is empty; type the question or sentence to edit.")
        fmt = self.prompt_format
        n = len(fmt.prompt_ids(self.tokenizer, prompt))
        if target is not None:
            if not target.strip():
                raise EditRequestError("The new target is empty; type the answer the model should give.")
            t = len(fmt.target_ids(self.tokenizer, prompt, target))
            if t == 0:  # e.g. a tokenizer that drops characters it has no token for
                raise EditRequestError("The target gives no tokens with this model's tokenizer, so there is "
                                       "nothing to train or score; write it with characters the model knows.")
            if t > MAX_TARGET_TOKENS:
                raise EditRequestError(f"The target is {t} tokens long; at most {MAX_TARGET_TOKENS} are allowed.")
            n += t
        if n > self.max_context:
            raise EditRequestError(
                f"The prompt is {n} tokens long, over this model's context of {self.max_context} tokens; shorten it."
            )

    # ------------------------------------------------------------ snapshots
    def snapshot(self) -> dict:
        """Everything an edit changes, copied (for cancel and failures)."""
        return {
            "params": [p.detach().clone() for p in self.parameters()],
            "codes": self.tuner.stored_codes.clone(),
            "rng": self.tuner.generator.get_state(),
            "edits": list(self.edits),
            "pool": self.tuner.num_pool_experts,
            "keys": copy.deepcopy(self.tuner.key_index),
            "scope": self.tuner.scope_router.tensors(),
        }

    def restore(self, snap: dict) -> None:
        with torch.no_grad():
            for p, saved in zip(self.parameters(), snap["params"]):
                p.copy_(saved)
        self.tuner.stored_codes = snap["codes"].clone()
        self.tuner.generator.set_state(snap["rng"])
        self.edits = list(snap["edits"])
        for layer in self.tuner.elder_layers:
            layer.truncate_pool(snap["pool"])
        self.tuner.key_index = copy.deepcopy(snap["keys"])
        self.tuner.scope_router.load(snap["scope"])

    # ----------------------------------------------------------------- edit
    def edit(self, request: EditRequest, cancel: Optional[CancelToken] = None) -> Iterator:
        """Train one edit. Yields EditStarted, EditStep..., then EditFinished or EditCancelled.

        A cancelled, closed or failed edit leaves the engine exactly as it was."""
        self.validate(request.prompt, request.target)
        for p in request.train_paraphrases:
            self.validate(p, request.target)
        cfg = self.training_config(request.settings)
        snap = self.snapshot()
        finished = False
        try:
            keyed = self.tuner.own_experts
            if keyed:  # the edit's own fresh expert in every layer
                for layer in self.tuner.elder_layers:
                    layer.reset_training_expert(self.tuner.generator)
                preset = tuple((self.tuner.num_pool_experts,) for _ in self.tuner.elder_layers)
            elif request.preset is not None:
                preset = tuple(tuple(int(i) for i in layer) for layer in request.preset)
            else:
                preset = draw_preset(self.tuner.generator, [e.preset for e in self.edits], cfg)
            yield EditStarted(request.prompt, request.target, preset, cfg.max_steps)
            prompts = [request.prompt, *request.train_paraphrases][: cfg.max_batch]
            prompts += prefixed_copies(request.prompt, min(cfg.train_prefixes, cfg.max_batch - len(prompts)))
            batch = encode(self.tokenizer, prompts, [request.target] * len(prompts), self.prompt_format,
                           closed=True).to(self.device)
            preset_t = torch.tensor(preset, dtype=torch.long)
            index = torch.full((len(prompts),), TRAINING_EXPERT) if keyed else None
            cache = training_cache(self.tuner, batch, index) if self.cache_lower_blocks else None
            query = cache.query if cache else views.query_of(self, batch)
            params = self.training_parameters()
            optimizer = torch.optim.Adam(params, lr=cfg.learning_rate)
            start, curve, step, early = time.perf_counter(), [], 0, False
            for step in range(1, cfg.max_steps + 1):
                if cancel is not None and cancel.cancelled:
                    self.restore(snap)
                    finished = True
                    yield EditCancelled(step - 1)
                    return
                logits = (cache.target_logits() if cache
                          else full_target_logits(self.tuner, batch, deferral=False, expert_index=index))
                ce = target_cross_entropy(logits, batch)
                if keyed:  # no router to guide: the edit owns its experts
                    guide, weights = torch.zeros(()), torch.ones(len(preset), 1)
                else:
                    guide, weights = guided_loss(self.tuner, query, preset_t)
                loss = ce + cfg.guide_lambda * guide
                curve.append(ce.item())
                yield EditStep(step, cfg.max_steps, loss.item(), curve[-1], guide.item(),
                               tuple(tuple(float(x) for x in row) for row in weights))
                below = cfg.early_stop_loss is not None and curve[-1] < cfg.early_stop_loss
                if below and step > cfg.min_steps:
                    early = True
                    break
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                low = cfg.stop_at_min_steps_loss is None or curve[-1] < cfg.stop_at_min_steps_loss
                if below and low and cfg.stop_at_min_steps and step == cfg.min_steps:
                    early = True  # the last required update, from a loss already low enough
                    break
            if self.tuner.scoped:
                key, threshold, relation, own = self.scope.fit(request, self.edits)
                for layer in self.tuner.elder_layers:
                    layer.commit_training_expert()
                self.tuner.scope_router.add(key, threshold, relation, own)
                code = torch.zeros(1, 0, dtype=torch.bool)
            elif keyed:
                owner = self.tuner.num_pool_experts
                for layer in self.tuner.elder_layers:
                    layer.commit_training_expert()
                for text in prompts:
                    self.tuner.key_index.add(owner, key_ids(self.tokenizer, text))
                code = torch.zeros(1, 0, dtype=torch.bool)
            else:
                code = self.tuner.codes_for(query[:1])
                self.tuner.stored_codes = torch.cat([self.tuner.stored_codes, code])
                for text in prompts:  # keys serve the key_scope check of router profiles
                    self.tuner.key_index.add(len(self.edits), key_ids(self.tokenizer, text))
            applied = AppliedEdit(
                prompt=request.prompt, target=request.target, train_paraphrases=tuple(request.train_paraphrases),
                preset=preset, code=tuple(int(b) for b in code[0]), profile=cfg.profile, steps=step,
                seconds=time.perf_counter() - start, final_loss=curve[-1], loss_curve=tuple(curve),
                settings={k: getattr(cfg, k) for k in TRAINING_SETTINGS},
                subject=request.subject, locality_prompts=tuple(request.locality_prompts),
            )
            self.edits.append(applied)
            finished = True
            yield EditFinished(applied, early)
        finally:
            if not finished:  # closed by the consumer or failed: put everything back
                self.restore(snap)
            for p in self.parameters():
                p.grad = None

    def training_config(self, settings: Optional[dict]) -> ElderConfig:
        if not settings:
            return self.config
        unknown = set(settings) - set(TRAINING_SETTINGS)
        if unknown:
            raise EditRequestError(f"These settings cannot change per edit: {', '.join(sorted(unknown))}")
        return self.config.replace(**settings)

    def apply(self, request: EditRequest) -> AppliedEdit:
        """Run an edit to the end (no progress), for scripts."""
        for event in self.edit(request):
            if isinstance(event, EditFinished):
                return event.edit
        raise RuntimeError("edit ended without finishing")

    # -------------------------------------------------------------- scoring
    @torch.no_grad()
    def target_logits(self, prompts: list[str], targets: list[str], *, original: bool = False) -> tuple[torch.Tensor, Batch]:
        batch = encode(self.tokenizer, prompts, targets, self.prompt_format).to(self.device)
        if original:
            with self.original():
                return full_target_logits(self.tuner, batch, deferral=False), batch
        index = self.expert_index(prompts)
        return full_target_logits(self.tuner, batch, deferral=True, expert_index=index), batch

    @torch.no_grad()
    def generate(self, prompts: list[str], max_new_tokens: int, *, original: bool = False,
                 fixed_length: bool = False) -> list[list[int]]:
        """Greedy continuations (token ids) of left-padded prompts, routing per sequence.
        `fixed_length` generates exactly max_new_tokens (no stop at EOS): timings then compare
        the same amount of work whatever the edit makes the model answer."""
        batch = encode(self.tokenizer, prompts, fmt=self.prompt_format).to(self.device)
        pad = self.tokenizer.pad_token_id
        kwargs = dict(input_ids=batch.input_ids, attention_mask=batch.attention_mask, max_new_tokens=max_new_tokens,
                      do_sample=False, pad_token_id=pad, num_beams=1)
        if fixed_length:
            kwargs["min_new_tokens"] = max_new_tokens
        if original:
            with self.original():
                out = self.model.generate(**kwargs)
        else:
            with self.tuner.routing.session(batch.query_positions, deferral=True,
                                            expert_index=self.expert_index(prompts)):
                out = self.model.generate(**kwargs)
        S = batch.input_ids.shape[1]
        return [row[S:].tolist() for row in out]

    # ---------------------------------------------------------------- state
    def save(self, path) -> None:
        """Write the whole engine state (experts, routers, codes, presets, RNG, config) to one file."""
        save_state(self, path)

    def load(self, path) -> None:
        """Replace this engine's state by a saved one (same model, same layer layout)."""
        load_state(self, path)

    @classmethod
    def from_state(cls, loaded, path, **kwargs) -> "ElderEditor":
        """A fresh engine on `loaded` with the saved state and its settings."""
        tensors, meta = read_state_file(path)
        check_meta(meta)
        editor = cls(loaded, ElderConfig.from_dict(meta["config"]), **kwargs)
        apply_state(editor, tensors, meta)
        return editor

    def save_pretrained(self, folder) -> None:
        """Export in peft's layout (adapter_config.json + adapter_model.safetensors; export.py)."""
        save_pretrained(self, folder)

    @classmethod
    def from_pretrained(cls, loaded, folder, **kwargs) -> "ElderEditor":
        """A fresh engine on the base model `loaded` with an exported folder's state."""
        config, state, rng, meta = read_pretrained(folder)
        editor = cls(loaded, config, **kwargs)
        apply_state_dict(editor, state, rng, meta)
        return editor

    def set_inference(self, **changes) -> None:
        """Change the deferral switch, epsilon or the keyed scope threshold (INFERENCE_SETTINGS);
        no retraining needed."""
        unknown = set(changes) - set(INFERENCE_SETTINGS)
        if unknown:
            raise EditRequestError(f"These settings are not inference settings: {', '.join(sorted(unknown))}")
        if "epsilon" in changes and int(changes["epsilon"]) < 0:
            raise EditRequestError("epsilon must not be negative.")
        if "scope_threshold" in changes and not 0.0 <= float(changes["scope_threshold"]) <= 1.0:
            raise EditRequestError("scope_threshold is a cosine similarity: choose a value from 0 to 1.")
        self.tuner.config_elder = dataclasses.replace(self.config, **changes)

    def route(self, prompts: list[str], batch_size: int = 16) -> list[tuple[tuple[float, ...], ...]]:
        """Each prompt's gates per layer, without generation (views.py)."""
        return views.route(self, prompts, batch_size)

    def router_space(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Scoped routing: the router's own input space, edits' keys and prompts' points (views.py)."""
        return views.router_space(self, prompts)

    def firing(self, prompts: list[str]) -> list[tuple[bool, Optional[int]]]:
        """Per prompt: whether its experts apply, and the Hamming distance behind it (views.py)."""
        return views.firing(self, prompts)

    def probe(self, query: str, target: Optional[str] = None, max_new_tokens: int = 24) -> ProbeResult:
        self.validate(query, target)
        return run_probe(self, query, target, max_new_tokens)
