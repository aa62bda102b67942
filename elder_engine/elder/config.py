"""ELDER settings: one dataclass, defaults from the paper.

`ElderConfig` is a peft `PeftConfig` so that peft's layer selection (`target_modules`,
`layers_to_transform`) picks the modules to wrap. Everything the paper fixes is a named field
here, never a literal in code. Named profiles live in `profiles.py`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from peft import PeftConfig

from ..errors import StateFormatError

# The FFN linear ELDER wraps, by `config.model_type`. The paper wraps LLaMA's `down_proj` and
# GPT-2's `c_fc`; for other families we take the analogue of `down_proj` (the FFN's output
# projection), which has the same role as LLaMA's.
FFN_MODULE_BY_MODEL_TYPE = {
    "llama": "mlp.down_proj",
    "mistral": "mlp.down_proj",
    "qwen2": "mlp.down_proj",
    "qwen3": "mlp.down_proj",
    "gemma": "mlp.down_proj",
    "phi3": "mlp.down_proj",
    "olmo": "mlp.down_proj",
    "gpt2": "mlp.c_fc",
    "gpt_neox": "mlp.dense_4h_to_h",
    "phi": "mlp.fc2",
}


# The settings that fix the shape of ELDER's tensors: a saved state or bundle loads only into an
# engine with the same values.
ARCHITECTURE_FIELDS = ("routing", "num_edit_layers", "first_edit_layer", "ffn_module", "num_experts", "rank")


@dataclass
class ElderConfig(PeftConfig):
    """Settings of one ELDER engine. Fields below `profile` are ELDER's own."""

    profile: str = field(default="custom", metadata={"help": "Name of the profile these settings came from."})
    # --- architecture (paper: L=6, N=4, r=8, k=2) ---
    num_edit_layers: int = field(default=6, metadata={"help": "L: consecutive blocks that get a MoLoRA layer."})
    first_edit_layer: Optional[int] = field(
        default=None, metadata={"help": "First MoLoRA block; None = the block at about 2/3 of the depth."}
    )
    ffn_module: Optional[str] = field(
        default=None, metadata={"help": "Dotted name of the FFN linear inside a block; None = by model_type."}
    )
    num_experts: int = field(default=4, metadata={"help": "N: LoRA experts per MoLoRA layer."})
    rank: int = field(default=8, metadata={"help": "r: rank of each LoRA expert."})
    top_k: int = field(default=2, metadata={"help": "k: experts applied per layer (and preset per edit)."})
    lora_alpha: float = field(
        default=32.0, metadata={"help": "LoRA scale is alpha / r. The paper leaves it open; chosen on dev data."}
    )
    # --- training of one edit ---
    guide_lambda: float = field(default=1e-2, metadata={"help": "lambda: weight of the guided loss."})
    learning_rate: float = field(default=1e-4, metadata={"help": "Adam learning rate."})
    max_steps: int = field(default=50, metadata={"help": "Iterations per edit."})
    early_stop_loss: Optional[float] = field(
        default=None, metadata={"help": "Stop an edit once its target cross-entropy is below this (None: never)."}
    )
    min_steps: int = field(
        default=0, metadata={"help": "Updates an edit makes at least before early_stop_loss may end it. Past the "
                                     "fit of the training prompt the expert keeps growing, and that is what carries "
                                     "the new target to reworded prompts (0: stop as soon as the loss allows; "
                                     "max_steps still caps it)."})
    stop_at_min_steps: bool = field(
        default=False, metadata={"help": "End an edit right after its min_steps-th update when the loss that update "
                                         "started from is already below early_stop_loss, instead of one more forward "
                                         "pass that only checks the loss (the same expert, unless that last update "
                                         "overshot). False: the check pass, as edits before this setting were trained."})
    stop_at_min_steps_loss: Optional[float] = field(
        default=None, metadata={"help": "With stop_at_min_steps: end there only when the loss that last required "
                                        "update started from is below this (None: early_stop_loss). Far below the "
                                        "early stop, an update cannot lift the loss back above it, so the edit ends "
                                        "with the expert the check pass would have kept."})
    max_batch: int = field(default=4, metadata={"help": "Prompt plus training paraphrases per step, at most."})
    # --- routing ---
    routing: str = field(
        default="router",
        metadata={"help": "'router': the paper's softmax router over N shared experts, Hamming deferral. "
                          "'keyed': every edit trains its own experts (earlier ones frozen); a sequence is "
                          "routed to the edit whose stored key is most similar, or deferred. 'scoped': own experts per "
                          "edit behind a router learned on hidden states (scope.py)."},
    )
    scope_threshold: float = field(
        default=0.5, metadata={"help": "Minimum key similarity (0-1) for an edit to fire (keyed routing, key_scope)."}
    )
    key_scope: bool = field(
        default=False,
        metadata={"help": "'router' routing: fire only if the Hamming check passes AND the prompt's key "
                          "similarity to some edit reaches scope_threshold (an ablation of keyed routing)."},
    )
    # --- scoped routing (routing='scoped'; see scope.py) ---
    scope_block: Optional[int] = field(
        default=None, metadata={"help": "Block whose output the scoped router reads (0-based); None = about a tenth "
                                        "of the depth. Chosen on dev data: blocks 3-6 separate subjects best."})
    scope_temperature: float = field(default=20.0, metadata={"help": "Logit scale of the scoped router's softmax."})
    scope_margin: float = field(
        default=0.05, metadata={"help": "Calibration: an edit fires above its hardest negative's match plus this."})
    scope_floor: float = field(default=0.5, metadata={"help": "Lowest threshold calibration may give an edit."})
    scope_key_steps: int = field(default=30, metadata={"help": "Adam steps that train an edit's router key (0: the "
                                                                 "subject state as it is)."})
    scope_key_lr: float = field(default=0.02, metadata={"help": "Learning rate of the router key."})
    scope_swaps: int = field(default=12, metadata={"help": "Subject-swap negatives per edit (most similar names)."})
    scope_near_misses: int = field(default=0, metadata={"help": "Near-miss negatives per edit: the subject with one "
                                                                   "word replaced by a word of another name."})
    scope_key_parts: int = field(default=1, metadata={"help": "1: an edit's router key is its last subject token; "
                                                               "2: also the subject's most distinctive other token, and both must match."})
    scope_context_positives: int = field(default=0, metadata={"help": "Copies of the edit prompt behind unrelated "
                                                                      "sentences that its router key must also match."})
    scope_relation_weight: float = field(
        default=0.5, metadata={"help": "Weight, in logit units, of the relation query's similarity when several edits "
                                       "fire for one prompt (edits of one subject): small = a tie-break, large = the "
                                       "relation decides which edit's experts apply."})
    scope_relation: str = field(
        default="query", metadata={"help": "Where the relation that ranks several fired edits (edits of one subject) is "
                                           "read, at the last prompt token: 'query' = the paper's query (FFN input below "
                                           "the first MoLoRA block, a forward of two thirds of the model for such a "
                                           "prompt); 'scope-block' = the output of scope_block, from the router's own "
                                           "short forward (no extra cost)."})
    scope_earlier: int = field(default=16, metadata={"help": "Earlier edits' prompts used as negatives (most similar)."})
    train_prefixes: int = field(
        default=0, metadata={"help": "Copies of the edit prompt behind an unrelated sentence added to each training "
                                     "batch (up to max_batch), so the edit holds when text precedes it."})
    experts_from_answer: bool = field(
        default=False, metadata={"help": "Apply an edit's experts from the last prompt token on (that token, the "
                                         "target and generated tokens) instead of at every token. The prompt's "
                                         "other tokens keep the base model's states, so an edit trains on a few "
                                         "tokens past a cached prefix instead of on the whole sequence."})
    use_subject: bool = field(
        default=True, metadata={"help": "Key on the edit's given subject; False: on a guessed subject only."})
    # --- how prompts reach the model (prompt_format.py) ---
    prompt_format: str = field(
        default="plain", metadata={"help": "'plain': the target continues the prompt text; 'chat': the prompt is the "
                                           "user's turn of the tokenizer's chat template, the target the reply. "
                                           "Fixed for an engine's edits (and so for a history)."})
    chat_query: str = field(
        default="text", metadata={"help": "Chat format: routing reads the prompt's end at the last token of the "
                                            "generation prompt ('prompt') or of the user's text ('user'); 'text': the "
                                            "scoped router reads the user's text on its own, as in plain text."})
    # --- deferral ---
    deferral: bool = field(default=True, metadata={"help": "Defer to the base model when no edit's code is near."})
    epsilon: int = field(default=12, metadata={"help": "Apply experts only if min Hamming distance < epsilon."})
    seed: int = field(default=0, metadata={"help": "Seed of the engine's own generator (init, presets)."})
    # --- peft layer selection (filled in by `resolve_targets`) ---
    target_modules: Optional[Union[list[str], str]] = field(default=None)
    layers_to_transform: Optional[Union[list[int], int]] = field(default=None)
    layers_pattern: Optional[Union[list[str], str]] = field(default=None)
    exclude_modules: Optional[Union[list[str], str]] = field(default=None)
    target_parameters: Optional[list[str]] = field(default=None)

    def __post_init__(self):
        super().__post_init__()
        self.validate()

    def validate(self) -> None:
        if not 1 <= self.top_k <= self.num_experts:
            raise ValueError(f"top_k must be between 1 and num_experts ({self.num_experts}), got {self.top_k}")
        for name in ("num_edit_layers", "num_experts", "rank", "max_steps", "max_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.min_steps < 0:
            raise ValueError(f"min_steps must not be negative, got {self.min_steps}")
        if self.stop_at_min_steps_loss is not None and not self.stop_at_min_steps_loss > 0:
            raise ValueError(f"stop_at_min_steps_loss must be positive or None, got {self.stop_at_min_steps_loss}")
        if self.routing not in ("router", "keyed", "scoped"):
            raise ValueError(f"routing must be 'router', 'keyed' or 'scoped', got {self.routing!r}")
        if self.prompt_format not in ("plain", "chat"):
            raise ValueError(f"prompt_format must be 'plain' or 'chat', got {self.prompt_format!r}")
        if self.chat_query not in ("prompt", "user", "text"):
            raise ValueError(f"chat_query must be 'prompt', 'user' or 'text', got {self.chat_query!r}")
        if self.scope_key_parts not in (1, 2):
            raise ValueError(f"scope_key_parts must be 1 or 2, got {self.scope_key_parts}")
        if self.scope_relation not in ("query", "scope-block"):
            raise ValueError(f"scope_relation must be 'query' or 'scope-block', got {self.scope_relation!r}")
        if self.scope_temperature <= 0:
            raise ValueError("scope_temperature must be positive")
        if self.learning_rate <= 0:
            raise ValueError("learning_rate must be positive")

    @property
    def scale(self) -> float:
        return self.lora_alpha / self.rank

    @property
    def code_bits(self) -> int:
        return self.num_edit_layers * self.num_experts

    def elder_fields(self) -> dict[str, Any]:
        """ELDER's own settings (not peft's bookkeeping), for saving and display."""
        own = {f.name for f in dataclasses.fields(ElderConfig)} - {f.name for f in dataclasses.fields(PeftConfig)}
        skip = {"target_modules", "layers_to_transform", "layers_pattern", "exclude_modules", "target_parameters"}
        return {k: getattr(self, k) for k in sorted(own - skip)}

    def to_json(self) -> str:
        return json.dumps(self.elder_fields(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ElderConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise StateFormatError(f"Unknown ELDER settings in saved state: {sorted(unknown)}")
        return cls(**data)

    def replace(self, **changes: Any) -> "ElderConfig":
        data = self.elder_fields()
        data.update(changes)
        return ElderConfig(**data)
