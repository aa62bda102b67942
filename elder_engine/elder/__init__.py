"""The method, ELDER, as a peft-style tuner: `config` (ElderConfig), `layer` (a frozen FFN linear
plus LoRA experts behind a router), `model` (the tuner that wraps the blocks), `routing` (the
shared query and deferral), `scope` (the scoped router's keys and calibrated thresholds),
`keyed` (the TF-IDF key index of the keyed-experts ablation), `negatives` (hard negatives and
the background prompts), `profiles` and `presets`. Nothing here knows editing sessions,
evaluation, history or the CLI."""

from .config import FFN_MODULE_BY_MODEL_TYPE, ElderConfig
from .layer import ElderLayer
from .model import ElderModel, resolve_targets
from .profiles import DEFAULT_PROFILE, get_profile, profile_names
from .routing import RoutingState

__all__ = [
    "DEFAULT_PROFILE", "ElderConfig", "ElderLayer", "ElderModel", "FFN_MODULE_BY_MODEL_TYPE",
    "RoutingState", "get_profile", "profile_names", "resolve_targets",
]
