"""ELDER Workbench engine: everything that is not a screen (no Qt here).

Public API (the app and scripts use only these names):

    from elder_engine import load_model, LoadSettings, ElderEditor, EditRequest, get_profile
    loaded = load_model("default")                  # or a HF folder / .gguf path
    editor = ElderEditor(loaded, get_profile())     # default profile
    for event in editor.edit(EditRequest("The capital of X is", "Y")):
        ...                                         # EditStarted, EditStep..., EditFinished | EditCancelled
    result = editor.probe("The capital of X is", target="Y")
    editor.save("state.safetensors"); ElderEditor.from_state(loaded, "state.safetensors")
"""

from .data import EditRecord, LoadReport, dev_split, load_edits
from .editor import EditRequest, ElderEditor
from .elder import DEFAULT_PROFILE, ElderConfig, get_profile, profile_names
from .elder.negatives import guess_subject
from .errors import (
    DataFormatError, EditRequestError, ElderError, HistoryError, ModelLoadError, StateFormatError,
    UnsupportedModelError,
)
from .evaluate import EvalResult, lifelong_eval, measure
from .events import (
    AppliedEdit, CancelToken, EditCancelled, EditFinished, EditStarted, EditStep, Progress,
)
from .loading import LoadedModel, LoadSettings, default_model_path, load_model
from .probe import Alternative, ProbeResult
from .prompt_format import FORMATS as PROMPT_FORMATS
from .prompt_format import has_chat_template
from .state import read_state_file, write_state_file

__all__ = [
    "Alternative", "PROMPT_FORMATS", "has_chat_template",
    "AppliedEdit", "CancelToken", "DEFAULT_PROFILE", "DataFormatError", "EditCancelled", "EditFinished",
    "EditRecord", "EditRequest", "EditRequestError", "EditStarted", "EditStep", "ElderConfig", "ElderEditor",
    "ElderError", "EvalResult", "HistoryError", "LoadReport", "LoadSettings", "LoadedModel", "ModelLoadError",
    "ProbeResult", "Progress", "StateFormatError", "UnsupportedModelError", "default_model_path", "dev_split",
    "get_profile", "guess_subject", "lifelong_eval", "load_edits", "load_model", "measure", "profile_names", "read_state_file",
    "write_state_file",
]
