"""The editing methods an evaluation can run, by name: ELDER and the baselines.

Every method is built on its own `LoadedModel` (the baselines change the model in place), and
answers the same evaluation protocol: `tokenizer`, `edit`, `target_logits`, `generate`,
`extra_parameters`, plus a state size in bytes (`state_bytes` below).
"""

from __future__ import annotations

import json
from typing import Optional

from ..baselines import BASELINES
from ..baselines.common import budget_of
from ..editing.editor import ElderEditor
from ..editing.state import state_tensors
from ..elder import ElderConfig, get_profile
from ..errors import EditRequestError

METHODS = ("elder", "lora", "ft-l", "grace")


def method_names(spec: str) -> list[str]:
    """'all', one name, or a comma-separated list -> names in a fixed order."""
    if spec == "all":
        return list(METHODS)
    names = [s.strip().lower() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n not in METHODS]
    if unknown or not names:
        raise EditRequestError(f"Unknown method {', '.join(unknown) or spec!r}; choose all or {', '.join(METHODS)}")
    return [m for m in METHODS if m in names]


def parse_settings(items: list[str]) -> dict[str, dict]:
    """['lora.learning_rate=1e-3', 'elder.max_steps=20'] -> {'lora': {...}, 'elder': {...}}."""
    out: dict[str, dict] = {}
    for item in items or ():
        key, sep, raw = item.partition("=")
        method, dot, name = key.partition(".")
        if not sep or not dot or method not in METHODS:
            raise EditRequestError(f"--set {item!r}: write METHOD.SETTING=VALUE, METHOD one of {', '.join(METHODS)}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw  # a bare word is a string (e.g. grace.replace=key)
        out.setdefault(method, {})[name] = value
    return out


def build_method(name: str, loaded, elder_config: Optional[ElderConfig] = None, settings: Optional[dict] = None):
    """A ready method on `loaded` (which it may change in place: give each method its own)."""
    elder_config = elder_config or get_profile()
    settings = settings or {}
    if name == "elder":
        return ElderEditor(loaded, elder_config.replace(**settings) if settings else elder_config)
    cls = BASELINES[name]
    return cls(loaded, cls.config_cls(**budget_of(elder_config)).replace(**settings), elder_config)


def state_bytes(method) -> int:
    """Bytes of the tensors that make up the method's edited state."""
    if isinstance(method, ElderEditor):
        return int(sum(t.numel() * t.element_size() for t in state_tensors(method).values()))
    return int(method.state_bytes())


def method_settings(method) -> dict:
    if isinstance(method, ElderEditor):
        cfg = method.config
        return {"method": "elder", **cfg.elder_fields(), "blocks": list(cfg.layers_to_transform)}
    return method.settings()
