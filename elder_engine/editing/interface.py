"""What probing, scope reading and state files need of an editor.

`ElderEditor` is the one implementation; the modules it is built from take this protocol
instead of importing it, so that `editor` depends on them and never the other way round.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Optional, Protocol

if TYPE_CHECKING:
    import torch

    from ..elder import ElderConfig, ElderModel
    from ..models.loading import LoadedModel
    from ..models.prompt_format import PromptFormat
    from ..models.tokens import Batch
    from .events import AppliedEdit


class Editor(Protocol):
    loaded: "LoadedModel"
    tuner: "ElderModel"
    edits: "list[AppliedEdit]"
    scope: Any  # the scoped router's ScopeReader, or None for other profiles
    model: "torch.nn.Module"
    tokenizer: Any

    @property
    def config(self) -> "ElderConfig": ...

    @property
    def prompt_format(self) -> "PromptFormat": ...

    @property
    def device(self) -> "torch.device": ...

    def expert_index(self, prompts: list[str]) -> "Optional[torch.Tensor]": ...

    def original(self) -> AbstractContextManager[None]: ...

    def target_logits(self, prompts: list[str], targets: list[str], *,
                      original: bool = False) -> "tuple[torch.Tensor, Batch]": ...

    def generate(self, prompts: list[str], max_new_tokens: int, *, original: bool = False,
                 fixed_length: bool = False) -> list[list[int]]: ...
