"""`ElderModel`: attaches ELDER to a causal LM with peft's tuner machinery.

peft's `BaseTuner` selects the modules (`target_modules` + `layers_to_transform`) and swaps
in `ElderLayer`s; this class adds what ELDER shares across layers: the routing state, the
query hook one block below the first MoLoRA block, and the deferral check against the stored
allocation codes.
"""

from __future__ import annotations

import torch
from peft.tuners.tuners_utils import BaseTuner
from torch import nn

from ..errors import UnsupportedModelError
from ..models.blocks import find_blocks
from .config import FFN_MODULE_BY_MODEL_TYPE, ElderConfig
from .keyed import KeyIndex
from .layer import ElderLayer, in_out_features
from .routing import RoutingState, hamming_to_codes, topk_code
from .scope import ScopeRouter


def resolve_targets(model: nn.Module, config: ElderConfig) -> ElderConfig:
    """Fill in which module of which blocks ELDER wraps, checking that it exists."""
    model_type = model.config.model_type
    ffn = config.ffn_module or FFN_MODULE_BY_MODEL_TYPE.get(model_type)
    if ffn is None:
        raise UnsupportedModelError(
            f"ELDER does not know the FFN module of '{model_type}' models. Known: "
            f"{', '.join(sorted(FFN_MODULE_BY_MODEL_TYPE))}. Set `ffn_module` (e.g. 'mlp.down_proj') to try another."
        )
    blocks_name, blocks = find_blocks(model)
    depth = len(blocks)
    try:
        blocks[0].get_submodule(ffn)
    except AttributeError:
        raise UnsupportedModelError(
            f"This {model_type} model has no FFN module '{ffn}' in its blocks; ELDER has nothing to attach to."
        ) from None
    L = min(config.num_edit_layers, depth - 1)
    first = config.first_edit_layer
    if first is None:
        first = min(round(depth * 2 / 3), depth - L)
    first = max(1, first)  # the query is read one block below the first MoLoRA block
    if first + L > depth:
        raise ValueError(f"first_edit_layer {first} + {L} layers exceeds the model's {depth} blocks")
    scope_block = config.scope_block
    if scope_block is None:
        scope_block = max(0, min(round(depth * 0.1), first - 2))
    if not 0 <= scope_block < first:
        raise ValueError(f"scope_block {scope_block} must be below the first MoLoRA block ({first})")
    resolved = config.replace(num_edit_layers=L, first_edit_layer=first, ffn_module=ffn, scope_block=scope_block)
    resolved.target_modules = [ffn]
    resolved.layers_to_transform = list(range(first, first + L))
    resolved.layers_pattern = blocks_name.rsplit(".", 1)[-1]
    return resolved


class ElderModel(BaseTuner):
    prefix: str = "elder_"
    tuner_layer_cls = ElderLayer
    target_module_mapping = {k: [v] for k, v in FFN_MODULE_BY_MODEL_TYPE.items()}

    def __init__(self, model: nn.Module, config: ElderConfig, adapter_name: str = "default") -> None:
        config = resolve_targets(model, config)
        # State shared by all layers; must exist before BaseTuner injects them.
        nn.Module.__setattr__(self, "routing", RoutingState())
        self.generator = torch.Generator().manual_seed(config.seed)
        self.elder_layers: list[ElderLayer] = []
        super().__init__(model, config, adapter_name)
        self.config_elder = config
        # Registered, like everything an edit adds, so state_dict() and .to() see them.
        self.register_buffer("stored_codes", torch.zeros(0, config.code_bits, dtype=torch.bool))
        self.key_index = KeyIndex()
        named = [(n, m) for n, m in self.named_modules() if isinstance(m, ElderLayer)]
        self.elder_layer_names = [n for n, _ in named]
        self.elder_layers: list[ElderLayer] = [m for _, m in named]
        for i, layer in enumerate(self.elder_layers):
            layer.layer_index = i
        if len(self.elder_layers) != config.num_edit_layers:
            raise UnsupportedModelError(
                f"ELDER attached to {len(self.elder_layers)} modules, expected {config.num_edit_layers}"
            )
        blocks_name, blocks = find_blocks(self.model)
        self.query_module = blocks[config.first_edit_layer - 1].get_submodule(config.ffn_module)
        # The paper's query feeds the router and the code check; own-expert profiles read neither.
        self._hook = None if self.own_experts else self.query_module.register_forward_pre_hook(self._capture_query)
        hidden = getattr(model.config, "hidden_size", None) or getattr(model.config, "n_embd")
        # Registered (a submodule), so state_dict() and .to() see the router's keys.
        relation_size = hidden if config.scope_relation == "scope-block" else in_out_features(self.query_module)[0]
        self.scope_router = ScopeRouter(hidden, relation_size,
                                        config.scope_temperature, config.scope_margin,
                                        config.scope_relation_weight)

    # --- state ---
    TUNER_STATE = ("stored_codes", "key_index.", "scope_router.")

    def elder_state_dict(self) -> dict[str, torch.Tensor]:
        """Everything ELDER adds to the model, named as `state_dict()` names it: each layer's
        training expert and router (`elder_A`, `elder_B`, `elder_router`), its frozen experts
        (`elder_pool`), the key index, the scoped router, the stored codes. The base model's
        own weights are left out."""
        return {k: v for k, v in self.state_dict(keep_vars=False).items()
                if self.prefix in k or k.startswith(self.TUNER_STATE)}

    def load_elder_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load what `elder_state_dict` gives. The fixed-size tensors must match this engine's
        layout; the growing ones (frozen experts, keys, codes, scoped router) are replaced."""
        from ..errors import StateFormatError

        fixed = {k: v for k, v in self.state_dict().items() if self.prefix in k and ".elder_pool." not in k}
        needed = ["stored_codes", "key_index.tokens", "key_index.lengths", "key_index.owners"]
        needed += ["scope_router.keys"] if self.scoped else []
        missing = sorted(set(fixed) - set(state)) + [k for k in needed if k not in state]
        if missing:
            raise StateFormatError(f"The saved state is incomplete or from another layout (missing {missing[:5]}).")
        for name, param in fixed.items():
            if state[name].shape != param.shape:
                raise StateFormatError(f"Saved tensor {name} has shape {tuple(state[name].shape)}, "
                                       f"expected {tuple(param.shape)}")
        with torch.no_grad():
            for name, param in fixed.items():
                param.copy_(state[name])
            for layer_name, layer in zip(self.elder_layer_names, self.elder_layers):
                pool = f"{layer_name}.elder_pool."
                n = sum(1 for k in state if k.startswith(pool) and k.endswith(".A"))
                layer.set_pool([(state[f"{pool}{e}.A"], state[f"{pool}{e}.B"]) for e in range(n)])
        self.key_index.load(state["key_index.tokens"], state["key_index.lengths"], state["key_index.owners"])
        self.stored_codes = state["stored_codes"].to(torch.bool).clone()
        if any(k.startswith("scope_router.") for k in state):
            self.scope_router.load(state, prefix="scope_router.")

    # --- peft tuner interface ---
    def _create_and_replace(self, peft_config, adapter_name, target, target_name, parent, current_key, **kwargs):
        if isinstance(target, ElderLayer):
            raise ValueError("ELDER is already attached to this model")
        new = ElderLayer(target, adapter_name, peft_config, self.routing, self.generator)
        self._replace_module(parent, target_name, new, target)

    @property
    def config_elder(self) -> ElderConfig:
        return self._config_elder

    @config_elder.setter
    def config_elder(self, config: ElderConfig) -> None:
        # a loaded state brings its own config: the routing follows it
        self._config_elder = config
        self.routing.experts_from_answer = config.experts_from_answer

    def _mark_only_adapters_as_trainable(self, model: nn.Module) -> None:
        for name, param in model.named_parameters():
            param.requires_grad = self.prefix in name

    # --- routing ---
    def _capture_query(self, module: nn.Module, args: tuple) -> None:
        state = self.routing
        if state.hold and state.query is not None:
            return
        if self.elder_layers and self.elder_layers[0].disable_adapters:
            return  # experts switched off: the base model, no routing work
        x = args[0]
        rows = torch.arange(x.shape[0], device=x.device)
        pos = state.positions
        pos = torch.full_like(rows, x.shape[1] - 1) if pos is None else pos.to(x.device)
        state.query = x[rows, pos].detach().to(torch.float32)
        if state.use_deferral and not self.own_experts:
            self.decide(state)

    @property
    def keyed(self) -> bool:
        """Routing by the TF-IDF key index (the keyed-experts ablation)."""
        return self.config_elder.routing == "keyed"

    @property
    def scoped(self) -> bool:
        return self.config_elder.routing == "scoped"

    @property
    def own_experts(self) -> bool:
        """Every edit trains experts of its own (earlier ones frozen): keyed and scoped routing."""
        return self.config_elder.routing in ("keyed", "scoped")

    @property
    def num_pool_experts(self) -> int:
        return self.elder_layers[0].pool_size if self.elder_layers else 0

    def route_keyed(self, token_ids: list[list[int]]) -> tuple[torch.Tensor, list[int], list[float]]:
        """Keyed routing of prompts (token ids): (expert index per row, -1 = deferred), and the
        nearest edit and its similarity per row (for display)."""
        nearest, sims = zip(*(self.key_index.nearest(ids) for ids in token_ids)) if token_ids else ((), ())
        threshold = self.config_elder.scope_threshold
        fire = [n >= 0 and (s >= threshold or not self.config_elder.deferral) for n, s in zip(nearest, sims)]
        index = torch.tensor([n if f else -1 for n, f in zip(nearest, fire)], dtype=torch.long)
        return index, list(nearest), list(sims)

    @torch.no_grad()
    def router_weights(self, query: torch.Tensor) -> torch.Tensor:
        """Every layer's softmax for queries (B, d) -> (B, L, N)."""
        return torch.stack([layer.router_probs(query) for layer in self.elder_layers], dim=1)

    @torch.no_grad()
    def codes_for(self, query: torch.Tensor) -> torch.Tensor:
        """Allocation codes (B, L*N) bool: per layer the k-hot top-k, concatenated."""
        return topk_code(self.router_weights(query), self.config_elder.top_k).flatten(1).cpu()

    def decide(self, state: RoutingState) -> None:
        codes = self.codes_for(state.query)
        distance, nearest = hamming_to_codes(codes, self.stored_codes)
        state.codes, state.distance, state.nearest = codes, distance, nearest
        if not self.config_elder.deferral:
            fire = torch.ones_like(distance, dtype=torch.bool)
        elif self.stored_codes.shape[0] == 0:
            fire = torch.zeros_like(distance, dtype=torch.bool)  # no edits yet: the base model
        else:
            fire = distance < self.config_elder.epsilon
            if self.config_elder.key_scope and state.expert_index is not None:
                fire = fire & (state.expert_index.cpu() >= 0)
        state.fire = fire.to(state.query.device)
