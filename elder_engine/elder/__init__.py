"""ELDER as a peft-style tuner: config.py / layer.py / model.py, plus routing and profiles."""

from .config import FFN_MODULE_BY_MODEL_TYPE, ElderConfig
from .layer import ElderLayer
from .model import ElderModel, resolve_targets
from .profiles import DEFAULT_PROFILE, get_profile, profile_names
from .routing import RoutingState

__all__ = [
    "DEFAULT_PROFILE", "ElderConfig", "ElderLayer", "ElderModel", "FFN_MODULE_BY_MODEL_TYPE",
    "RoutingState", "get_profile", "profile_names", "resolve_targets",
]
