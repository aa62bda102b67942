"""`ElderLayer`: a frozen FFN linear plus a mixture of LoRA experts behind a router.

y = W0 x + b + sum over the top-k experts i of s_i(q) * (alpha / r) * B_i A_i x

where s = softmax(router(q)) over the N experts (full softmax, no renormalisation over the
top-k) and q is the sequence's shared query (see `routing.py`). Applied at every token, or
(experts_from_answer) from each sequence's last prompt token on.
"""

from __future__ import annotations

import math

import torch
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn
from transformers.pytorch_utils import Conv1D

from .config import ElderConfig
from .routing import TRAINING_EXPERT, RoutingState


def in_out_features(base: nn.Module) -> tuple[int, int]:
    if isinstance(base, nn.Linear):
        return base.in_features, base.out_features
    if isinstance(base, Conv1D):  # GPT-2 stores the weight transposed: (in, out)
        return base.weight.shape[0], base.weight.shape[1]
    raise TypeError(f"ELDER wraps nn.Linear or Conv1D modules, not {type(base).__name__}")


class FrozenExpert(nn.Module):
    """One finished edit's LoRA expert (keyed and scoped routing): A (r, d_in), B (d_out, r).
    Buffers, not parameters: nothing trains them again, yet `state_dict()` and `.to()` see them."""

    def __init__(self, A: torch.Tensor, B: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("A", A)
        self.register_buffer("B", B)


class ElderLayer(nn.Module, BaseTunerLayer):
    adapter_layer_names = ("elder_A", "elder_B", "elder_router")

    def __init__(
        self,
        base_layer: nn.Module,
        adapter_name: str,
        config: ElderConfig,
        routing: RoutingState,
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        self.base_layer = base_layer
        self.in_features, self.out_features = in_out_features(base_layer)
        self.routing = routing
        self.layer_index = -1  # position among the L MoLoRA layers, set by ElderModel
        self.top_k: dict[str, int] = {}
        self.scale: dict[str, float] = {}
        self.elder_A = nn.ParameterDict()
        self.elder_B = nn.ParameterDict()
        self.elder_router = nn.ModuleDict()
        self.keyed = config.routing in ("keyed", "scoped")  # one own expert per edit
        # Keyed routing: finished experts, one per edit, frozen; elder_A/elder_B hold the single
        # expert being trained.
        self.elder_pool = nn.ModuleList()
        self.update_layer(adapter_name, config, generator)
        self._active_adapter = adapter_name

    def update_layer(self, adapter_name: str, config: ElderConfig, generator: torch.Generator) -> None:
        n, r = (1 if config.routing in ("keyed", "scoped") else config.num_experts), config.rank
        weight = self.get_base_layer().weight
        a = torch.empty(n, r, self.in_features)
        for i in range(n):  # Kaiming-uniform A per expert, as LoRA does; B starts at zero
            bound = math.sqrt(6.0 / ((1 + 5) * self.in_features))  # kaiming_uniform_(a=sqrt(5))
            a[i].uniform_(-bound, bound, generator=generator)
        self.elder_A[adapter_name] = nn.Parameter(a.to(weight.device))
        self.elder_B[adapter_name] = nn.Parameter(torch.zeros(n, self.out_features, r, device=weight.device))
        router = nn.Linear(self.in_features, n)
        with torch.no_grad():
            bound = 1.0 / math.sqrt(self.in_features)
            router.weight.uniform_(-bound, bound, generator=generator)
            router.bias.uniform_(-bound, bound, generator=generator)
        # Own-expert profiles read no router, so they keep none; its numbers are drawn all the
        # same, so that each seed's generator stream (every later expert's initialisation) is
        # what it has always been.
        if not self.keyed:
            self.elder_router[adapter_name] = router.to(weight.device)
        self.top_k[adapter_name] = config.top_k
        self.scale[adapter_name] = config.scale

    def router_probs(self, query: torch.Tensor, adapter_name: str | None = None) -> torch.Tensor:
        """Softmax over the experts for queries (B, d) -> (B, N), float32."""
        router = self.elder_router[adapter_name or self.active_adapters[0]]
        return torch.softmax(router(query.to(router.weight.device, torch.float32)), dim=-1)

    def reset_training_expert(self, generator: torch.Generator) -> None:
        """Keyed routing: a fresh expert (A Kaiming-uniform, B zero) for the next edit."""
        name = self.active_adapters[0]
        with torch.no_grad():
            bound = 1.0 / math.sqrt(self.in_features)
            # drawn on the CPU generator and copied: the same numbers whatever device the layer is on
            a = torch.empty(self.elder_A[name].shape).uniform_(-bound, bound, generator=generator)
            self.elder_A[name].copy_(a)
            self.elder_B[name].zero_()

    @property
    def pool_size(self) -> int:
        return len(self.elder_pool)

    def truncate_pool(self, n: int) -> None:
        """Forget the experts of edits >= n (an undone or cancelled edit)."""
        del self.elder_pool[n:]

    def set_pool(self, experts: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        device = self.elder_A[self.active_adapters[0]].device
        self.elder_pool = nn.ModuleList(FrozenExpert(a.to(device), b.to(device)) for a, b in experts)

    def commit_training_expert(self) -> None:
        name = self.active_adapters[0]
        self.elder_pool.append(FrozenExpert(self.elder_A[name][0].detach().clone(),
                                            self.elder_B[name][0].detach().clone()))
        with torch.no_grad():
            # The slot is drawn afresh before the next edit; emptied now, it is the same (zero)
            # tensor in every stored state, so the history stores it once instead of per state.
            self.elder_A[name].zero_()
            self.elder_B[name].zero_()

    def _answer_mask(self, x: torch.Tensor) -> torch.Tensor | None:
        """(B, S, 1) mask of the positions experts apply to, None for all (experts_from_answer).
        A single-token forward is a generation step, past every prompt."""
        start = self.routing.experts_from
        if start is None or x.shape[1] == 1:
            return None
        positions = torch.arange(x.shape[1], device=x.device)
        return (positions[None, :] >= start.to(x.device)[:, None]).unsqueeze(-1)

    def _keyed_delta(self, x: torch.Tensor, groups: list, out: torch.Tensor) -> torch.Tensor:
        name = self.active_adapters[0]
        mask = self._answer_mask(x)
        delta = None
        for e, rows in groups:
            if e == TRAINING_EXPERT:
                A, B = self.elder_A[name][0], self.elder_B[name][0]
            else:
                expert = self.elder_pool[e]
                A, B = expert.A, expert.B
            if rows is None:  # one expert for the whole batch: no scatter
                delta = (x.to(torch.float32) @ A.T) @ B.T * self.scale[name]
                break
            if delta is None:
                delta = torch.zeros(out.shape, dtype=torch.float32, device=out.device)
            rows = rows.to(x.device)
            delta = delta.index_put((rows,), (x[rows].to(torch.float32) @ A.T) @ B.T * self.scale[name])
        if delta is None:
            return out
        if mask is not None:
            delta = delta * mask
        return out + delta.to(out.dtype)

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        out = self.base_layer(x, *args, **kwargs)
        state = self.routing
        if self.disable_adapters:
            return out
        name = self.active_adapters[0]
        if name not in self.elder_A:
            return out
        if self.keyed:
            groups = state.expert_groups
            if not groups:
                return out  # deferred: exactly the base output
            return self._keyed_delta(x, groups, out)
        if state.query is None:
            return out
        fire = state.fire
        if fire is not None and not bool(fire.any()):
            return out  # every sequence deferred: exactly the base output
        probs = self.router_probs(state.query, name)
        top = probs.topk(self.top_k[name], dim=-1)
        gates = torch.zeros_like(probs).scatter(-1, top.indices, top.values)
        if fire is not None:
            gates = gates * fire.to(gates.device, gates.dtype)[:, None]
        h = torch.einsum("bsd,nrd->bsnr", x.to(torch.float32), self.elder_A[name])
        h = h * (gates[:, None, :, None] * self.scale[name])
        delta = torch.einsum("bsnr,nor->bso", h, self.elder_B[name])
        mask = self._answer_mask(x)
        if mask is not None:
            delta = delta * mask
        return out + delta.to(out.dtype)

    def merge(self, *args, **kwargs) -> None:
        raise NotImplementedError("ELDER routes per sequence; its experts cannot be merged into the base weight")

    def unmerge(self) -> None:
        pass
