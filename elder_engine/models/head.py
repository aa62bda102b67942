"""The LM head applied to a few rows (an edit's target positions), fast on CPU.

`linear(h, W)` with a handful of rows h against SmolLM2's (49152, 576) head runs at about a
fifth of the CPU's matrix speed (MKL's kernel for a short left operand); the same product
written as `W @ h.T` is faster, and the gradient `g @ W` already is. `benchmarks/head_product.py`
measures the two: 4 rows, one thread, forward and backward with cross-entropy, 0.72x linear's
time at load 2 on this machine. Training an edit evaluates the head twice per iteration.
"""

from __future__ import annotations

import torch
from torch import nn


class _FrozenHeadProduct(torch.autograd.Function):
    """h (R, d) -> (W @ h.T).T, with the gradient reaching h only (W frozen)."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(weight)
        return (weight @ h.t()).t()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (weight,) = ctx.saved_tensors
        return grad @ weight, None


def head_logits(head: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """`head(hidden)` for hidden (..., d). A frozen bias-free linear head on CPU takes the fast
    product above; any other head (trainable, biased, on a GPU, not a Linear) is called as it is."""
    weight = getattr(head, "weight", None)
    if (type(head) is not nn.Linear or head.bias is not None or weight is None or weight.requires_grad
            or weight.device.type != "cpu" or hidden.dim() < 2):
        return head(hidden)
    rows = hidden.reshape(-1, hidden.shape[-1])
    return _FrozenHeadProduct.apply(rows, weight).reshape(*hidden.shape[:-1], weight.shape[0])
