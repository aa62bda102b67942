"""ELDER Workbench engine: everything that is not a screen (no Qt here).

Public API (the app and scripts use only these names):

    from elder_engine import load_model, LoadSettings, ElderEditor, EditRequest, get_profile
    loaded = load_model("default")                  # or a HF folder / .gguf path
    editor = ElderEditor(loaded, get_profile())     # default profile
    for event in editor.edit(EditRequest("The capital of X is", "Y")):
        ...                                         # EditStarted, EditStep..., EditFinished | EditCancelled
    result = editor.probe("The capital of X is", target="Y")
    editor.save("state.safetensors"); ElderEditor.from_state(loaded, "state.safetensors")

Packages: `models` (loading, prompt formats, blocks), `elder` (the method as a peft tuner),
`editing` (the editor, training, probing, state), `evaluation` (data, metrics, lifelong runs,
reports, sweeps), `baselines`, `history`, `cli`.

The names below are imported on first use, so `import elder_engine` (and `--help`) does not
pay for torch, transformers and peft.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# public name -> the module that defines it
_EXPORTS = {
    "AppliedEdit": "editing.events", "CancelToken": "editing.events", "EditCancelled": "editing.events",
    "EditFinished": "editing.events", "EditStarted": "editing.events", "EditStep": "editing.events",
    "Progress": "editing.events",
    "EditRequest": "editing.request", "ElderEditor": "editing.editor",
    "Alternative": "editing.probe", "ProbeResult": "editing.probe",
    "read_state_file": "editing.state", "write_state_file": "editing.state",
    "DEFAULT_PROFILE": "elder.profiles", "ElderConfig": "elder.config", "get_profile": "elder.profiles",
    "profile_names": "elder.profiles", "guess_subject": "elder.negatives",
    "DataFormatError": "errors", "EditRequestError": "errors", "ElderError": "errors", "HistoryError": "errors",
    "ModelLoadError": "errors", "StateFormatError": "errors", "UnsupportedModelError": "errors",
    "EditRecord": "evaluation.data", "LoadReport": "evaluation.data", "dev_split": "evaluation.data",
    "load_edits": "evaluation.data",
    "METRICS": "evaluation.metrics", "TOKEN_METRICS": "evaluation.metrics",
    "EvalResult": "evaluation.lifelong", "lifelong_eval": "evaluation.lifelong", "measure": "evaluation.lifelong",
    "LoadedModel": "models.loading", "LoadSettings": "models.loading", "default_model_path": "models.loading",
    "load_model": "models.loading",
    "has_chat_template": "models.prompt_format",
}
_RENAMED = {"PROMPT_FORMATS": ("models.prompt_format", "FORMATS"), "METRIC_LABELS": ("evaluation.metrics", "LABELS")}

__all__ = sorted([*_EXPORTS, *_RENAMED])


def __getattr__(name: str):
    if name in _EXPORTS:
        module, attr = _EXPORTS[name], name
    elif name in _RENAMED:
        module, attr = _RENAMED[name]
    else:
        raise AttributeError(f"module 'elder_engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), attr)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # what the names are, for type checkers and IDEs
    from .editing.editor import ElderEditor
    from .editing.events import (
        AppliedEdit, CancelToken, EditCancelled, EditFinished, EditStarted, EditStep, Progress,
    )
    from .editing.probe import Alternative, ProbeResult
    from .editing.request import EditRequest
    from .editing.state import read_state_file, write_state_file
    from .elder.config import ElderConfig
    from .elder.negatives import guess_subject
    from .elder.profiles import DEFAULT_PROFILE, get_profile, profile_names
    from .errors import (
        DataFormatError, EditRequestError, ElderError, HistoryError, ModelLoadError, StateFormatError,
        UnsupportedModelError,
    )
    from .evaluation.data import EditRecord, LoadReport, dev_split, load_edits
    from .evaluation.lifelong import EvalResult, lifelong_eval, measure
    from .evaluation.metrics import LABELS as METRIC_LABELS
    from .evaluation.metrics import METRICS, TOKEN_METRICS
    from .models.loading import LoadedModel, LoadSettings, default_model_path, load_model
    from .models.prompt_format import FORMATS as PROMPT_FORMATS
    from .models.prompt_format import has_chat_template
