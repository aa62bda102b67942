"""FT-L: constrained fine-tuning, as ROME's authors define it (Meng et al. 2022).

Only the edited layers' FFN weights are trained (here: the weight of the FFN module ELDER
wraps, in the same blocks), on the target tokens' cross-entropy, and after every step the
weights are projected back into an L-infinity ball around the unedited weights:
|W - W0|_inf <= epsilon. The ball is around the original model (not around the weights
before each edit) so that the bound keeps meaning "how far the model may drift" across a
lifelong sequence of edits.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Optional

import torch

from .common import BaselineConfig, BaselineEditor, tensor_bytes


@dataclass(frozen=True)
class FtlSettings(BaselineConfig):
    # Chosen on ZsRE dev records 300-599 (docs/baselines.md).
    learning_rate: float = 2e-4
    norm_constraint: float = 2e-2  # epsilon of the L-infinity bound, in weight units


class FtlEditor(BaselineEditor):
    name = "ft-l"
    config_cls = FtlSettings

    def __init__(self, loaded, config: Optional[FtlSettings] = None, elder_config=None) -> None:
        super().__init__(loaded, config, elder_config)
        t = self.targets
        self._params = [self.blocks[i].get_submodule(t.ffn_module).weight for i in t.layers_to_transform]
        # The unedited weights: the centre of the L-infinity ball and what `original()` swaps in.
        self._w0 = [p.detach().clone() for p in self._params]

    def trainable(self):
        return self._params

    @torch.no_grad()
    def after_step(self) -> None:
        eps = self.config.norm_constraint
        for p, w0 in zip(self._params, self._w0):
            p.copy_(torch.clamp(p, w0 - eps, w0 + eps))

    @contextmanager
    def original(self) -> Iterator[None]:
        # Swap the storage, not the values: O(1) and exact, for every scoring call.
        edited = [p.data for p in self._params]
        try:
            for p, w0 in zip(self._params, self._w0):
                p.data = w0
            yield
        finally:
            for p, w in zip(self._params, edited):
                p.data = w

    def extra_parameters(self) -> int:
        return 0  # FT-L changes existing weights; it adds none

    def trained_parameters(self) -> int:
        return sum(p.numel() for p in self._params)

    def state_bytes(self) -> int:
        return tensor_bytes(self._params)  # the edited weights are what must be saved

    def settings(self) -> dict:
        return {**super().settings(), "trained_parameters": self.trained_parameters()}
