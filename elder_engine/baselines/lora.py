"""Sequential LoRA fine-tuning (the ELDER paper's "LoRA" baseline), with peft.

One LoRA adapter on the same FFN module of the same blocks ELDER wraps, trained edit after
edit with no routing and no deferral: every input goes through the adapter. This is the plain
method ELDER's mixture, routing and deferral are meant to improve on.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Optional

from peft import LoraConfig, get_peft_model
from transformers.pytorch_utils import Conv1D

from .common import BaselineConfig, BaselineEditor, tensor_bytes


@dataclass(frozen=True)
class LoraSettings(BaselineConfig):
    # learning_rate chosen on ZsRE dev records 300-599 (docs/baselines.md). rank None = ELDER's
    # expert rank, so the adapter is the size of one ELDER expert per layer. alpha is LoRA's
    # usual 2 x rank, fixed here rather than taken from ELDER: ELDER's alpha is tuned for its
    # gated mixture and may change with its profile, which would silently rescale this lr.
    learning_rate: float = 5e-4
    rank: Optional[int] = None
    alpha: float = 16.0


class LoraEditor(BaselineEditor):
    name = "lora"
    config_cls = LoraSettings

    def __init__(self, loaded, config: Optional[LoraSettings] = None, elder_config=None) -> None:
        super().__init__(loaded, config, elder_config)
        t = self.targets
        rank = self.config.rank or t.rank
        alpha = self.config.alpha
        ffn = self.blocks[0].get_submodule(t.ffn_module)
        lora = LoraConfig(
            r=rank, lora_alpha=alpha, lora_dropout=0.0, bias="none",
            target_modules=[t.ffn_module], layers_to_transform=list(t.layers_to_transform),
            layers_pattern=t.layers_pattern,
            fan_in_fan_out=isinstance(ffn, Conv1D),  # GPT-2 keeps its weights transposed
        )
        # get_peft_model injects the LoRA layers into `self.model` in place; the forward and
        # the lower-block cache keep using the plain model object.
        with warnings.catch_warnings():  # peft asks transformers a deprecated question; not ours to fix
            warnings.simplefilter("ignore", FutureWarning)
            self.peft = get_peft_model(self.model, lora)
        self.model.eval()
        self._params = [p for n, p in self.model.named_parameters() if "lora_" in n]
        for p in self._params:
            p.requires_grad_(False)
        self.rank, self.alpha = rank, alpha

    def trainable(self):
        return self._params

    @contextmanager
    def original(self) -> Iterator[None]:
        with self.peft.disable_adapter():
            yield

    def extra_parameters(self) -> int:
        return sum(p.numel() for p in self._params)

    def state_bytes(self) -> int:
        return tensor_bytes(self._params)

    def settings(self) -> dict:
        return {**super().settings(), "rank": self.rank, "alpha": self.alpha}
