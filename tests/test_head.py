"""The fast frozen-head product (models/head.py) gives linear's logits and gradient."""

import torch
from torch import nn

from elder_engine.models.head import head_logits


def _head(vocab=300, d=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    head = nn.Linear(d, vocab, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.randn(vocab, d, generator=g))
    head.weight.requires_grad_(False)
    return head, g


def test_logits_and_gradient_match_linear():
    head, g = _head()
    hidden = torch.randn(2, 3, 24, generator=g)
    targets = torch.randint(0, 300, (2, 3), generator=g)
    grads = []
    for fn in (head_logits, lambda m, h: m(h)):
        h = hidden.clone().requires_grad_(True)
        logits = fn(head, h)
        nn.functional.cross_entropy(logits.reshape(-1, 300), targets.reshape(-1)).backward()
        grads.append((logits.detach(), h.grad))
    (fast, g_fast), (ref, g_ref) = grads
    assert fast.shape == ref.shape == (2, 3, 300)
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max()))
    torch.testing.assert_close(g_fast, g_ref, rtol=1e-5, atol=1e-5 * float(g_ref.abs().max()))


def test_a_trainable_or_biased_head_is_called_as_it_is():
    head, g = _head()
    head.weight.requires_grad_(True)
    h = torch.randn(4, 24, generator=g)
    logits = head_logits(head, h)
    logits.sum().backward()
    assert head.weight.grad is not None  # the head itself learns: the fast path would have dropped this
    biased = nn.Linear(24, 300, bias=True)
    torch.testing.assert_close(head_logits(biased, h), biased(h))
