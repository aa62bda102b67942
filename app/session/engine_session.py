"""The model's side of the app: everything here runs in the worker thread, as jobs.

`EngineSession` holds the loaded model, the ELDER editor and the open edit history. Its
methods are job bodies (see `worker.Job`): generators whose yields become progress signals
and whose return value is a plain, immutable result for the GUI. The GUI thread never calls
into it directly; `controller.Workbench` wraps each method in a job.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
import torch

from elder_engine import (
    DEFAULT_PROFILE,
    EditCancelled,
    EditFinished,
    EditRequest,
    EditRequestError,
    ElderEditor,
    HistoryError,
    LoadSettings,
    Progress,
    get_profile,
    has_chat_template,
    load_model,
    profile_names,
)

from . import heap
from .jobs import JobCancelled, JobContext
from .projection import project

try:  # the edit history lives in its own engine package
    from elder_engine.history import EditHistory
except ImportError:  # pragma: no cover - only before the history package exists
    EditHistory = None

log = logging.getLogger(__name__)
HISTORY_SUFFIX = ".elderdb"


@dataclass(frozen=True)
class LoadMessage:
    text: str


@dataclass(frozen=True)
class ModelInfo:
    display_name: str
    source: str
    model_type: str
    device: str
    fingerprint: str
    threads: int
    max_context: int
    extra_parameters: int
    config: dict
    blocks: tuple = ()                        # transformer blocks that carry MoLoRA layers
    chat_template: bool = False               # the tokenizer has one: the chat format is available

    @property
    def prompt_format(self) -> str:
        return str(self.config.get("prompt_format", "plain"))

    @property
    def profile(self) -> str:
        return str(self.config.get("profile", ""))

    @property
    def keyed(self) -> bool:
        """Own experts per edit (keyed and scoped routing): the training plot shows gates."""
        return self.config.get("routing", "router") in ("keyed", "scoped")


@dataclass(frozen=True)
class HistoryState:
    path: Optional[str]
    entries: tuple = ()
    head: int = 0
    available: bool = True
    probes: tuple = ()                        # queries probed earlier, kept in the history
    prompt_format: str = "plain"              # the history's format, fixed for its life


@dataclass(frozen=True)
class ProbeView:
    result: Any                               # engine ProbeResult
    nearest_code: Optional[tuple] = None      # allocation code of the nearest edit
    nearest_target: Optional[str] = None
    nearest_seq: Optional[int] = None         # the nearest edit's number in the history
    edit_prompts: tuple = ()                  # the engine's edits in order (scoped router labels)


class FieldError(Exception):
    """A request field is invalid; `field` names the input the message belongs next to."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


@dataclass(frozen=True)
class EditOutcome:
    edit: Any                                 # engine AppliedEdit
    stopped_early: bool
    history: HistoryState
    locality: tuple = ()                      # (prompt, original output, edited output)


@dataclass(frozen=True)
class RouterMapData:
    edit_prompts: tuple
    probe_prompts: tuple
    coords: tuple                             # (x, y) per point: the edits first, then the probes
    probe_fired: tuple                        # under the current routers and stored codes
    probe_hamming: tuple                      # None when there are no edits
    method: str
    epsilon: int
    deferral: bool
    note: str = ""                            # why there is nothing to show, if so
    probe_routes: tuple = ()                  # keyed routing: edit index each probe uses (-1: none)
    keyed: bool = False
    space: str = ""                           # what the coordinates come from, for the caption


def _blocks(layers) -> tuple:
    if layers is None:
        return ()
    return (int(layers),) if isinstance(layers, int) else tuple(int(i) for i in layers)


@dataclass
class EngineSession:
    history_dir: Path
    loaded: Any = None
    editor: Optional[ElderEditor] = None
    history: Any = None
    settings: LoadSettings = field(default_factory=LoadSettings)

    # ------------------------------------------------------------------ model
    def load(self, ctx: JobContext, source: str, threads: int, history_path: Optional[str] = None,
             profile: Optional[str] = None, device: str = "cpu", prompt_format: Optional[str] = None) -> Iterator:
        """Load `source`, attach ELDER with `profile` and open its history (the per-model
        default file when `history_path` is None). A history that exists keeps its own prompt
        format; a new one gets `prompt_format`, by default chat when the model has a chat
        template (an instruct model answers questions only in it). The previous model stays
        usable if this fails."""
        yield LoadMessage("Loading libraries...")
        settings = LoadSettings(threads=threads, device=device,
                                cache_dir=os.environ.get("ELDER_CACHE_DIR"))
        loaded = load_model(source, settings, progress=lambda text: ctx.emit(LoadMessage(text)))
        yield LoadMessage("Attaching ELDER adapters...")
        profile = profile if profile in profile_names() else DEFAULT_PROFILE
        fmt = prompt_format or ("chat" if has_chat_template(loaded.tokenizer) else "plain")
        editor = ElderEditor(loaded, get_profile(profile).replace(prompt_format=fmt))
        path = history_path or str(self.default_history_path(loaded.fingerprint, profile))
        history = None
        if EditHistory is not None:
            yield LoadMessage("Opening the edit history (restoring its edits)...")
            history = EditHistory.open(path, editor)
        self.close()
        self.loaded, self.editor, self.history, self.settings = loaded, editor, history, settings
        yield LoadMessage("Finishing...")
        heap.settle_heap()
        return self.info(), self.history_state(with_probes=True)

    def default_history_path(self, fingerprint: str, profile: str = DEFAULT_PROFILE) -> Path:
        """One history per model (and per engine profile, whose states are not interchangeable)."""
        suffix = "" if profile == DEFAULT_PROFILE else f"-{profile}"
        return self.history_dir / "histories" / f"{fingerprint[:16]}{suffix}{HISTORY_SUFFIX}"

    def info(self) -> ModelInfo:
        loaded, editor = self.loaded, self.editor
        return ModelInfo(
            display_name=loaded.display_name, source=str(loaded.source), model_type=loaded.model_type,
            device=str(loaded.device), fingerprint=loaded.fingerprint, threads=torch.get_num_threads(),
            max_context=editor.max_context, extra_parameters=editor.extra_parameters(),
            config=dict(editor.config.elder_fields()), blocks=_blocks(editor.config.layers_to_transform),
            chat_template=has_chat_template(editor.tokenizer))

    def _recent_probes(self, n: int = 40) -> tuple:
        if self.history is None:
            return ()
        try:
            return tuple(dict.fromkeys(p.get("query", "") for p in self.history.probes()[-n:] if p.get("query")))
        except Exception as error:  # noqa: BLE001 - a probe list is a convenience, never a failure
            log.warning("could not read kept probes: %s", error)
            return ()

    def close(self) -> None:
        if self.history is not None:
            try:
                self.history.close()
            except Exception:  # noqa: BLE001 - closing must not stop a new load
                pass
        self.history = None

    def set_threads(self, ctx: JobContext, threads: int) -> ModelInfo | None:
        torch.set_num_threads(max(1, int(threads)))
        return self.info() if self.editor else None

    def set_inference(self, ctx: JobContext, changes: dict) -> ModelInfo:
        self._need_model()
        self.editor.set_inference(**changes)
        return self.info()

    def _need_model(self) -> None:
        if self.editor is None:
            raise EditRequestError("No model is loaded yet. Open one from the File menu.")

    def _need_history(self) -> None:
        self._need_model()
        if self.history is None:
            raise HistoryError("No edit history is open. Open or create one from the File menu.")

    # ---------------------------------------------------------------- history
    def history_state(self, with_probes: bool = False) -> HistoryState:
        """The open history as the GUI shows it; `with_probes` adds the queries probed in
        earlier sessions (read when a history is opened)."""
        if self.history is None:
            fmt = self.editor.config.prompt_format if self.editor else "plain"
            return HistoryState(None, available=EditHistory is not None, prompt_format=fmt)
        return HistoryState(str(self.history.path), tuple(self.history.entries()), int(self.history.head),
                            probes=self._recent_probes() if with_probes else (),
                            prompt_format=self.history.prompt_format)

    def open_history(self, ctx: JobContext, path: str, create: bool) -> Iterator:
        self._need_model()
        if EditHistory is None:
            raise HistoryError("This installation has no edit-history support.")
        if create and Path(path).exists():
            raise HistoryError(f"{path} already exists. Choose a new file name, or open it instead.")
        yield LoadMessage("Opening the edit history (replaying its edits)...")
        history = EditHistory.open(path, self.editor)
        self.close()
        self.history = history
        return self.history_state(with_probes=True)

    def new_history(self, ctx: JobContext, path: str, prompt_format: str) -> Iterator:
        """Create a history in `prompt_format`. In the engine's own format it starts from the
        engine's state, as `open_history` does; in the other one the model is loaded afresh
        (edits of one format cannot carry into the other). Returns (ModelInfo, HistoryState)."""
        self._need_model()
        if Path(path).exists():
            raise HistoryError(f"{path} already exists. Choose a new file name, or open it instead.")
        if prompt_format == self.editor.config.prompt_format:
            state = yield from self.open_history(ctx, path, create=True)
            return self.info(), state
        if prompt_format == "chat" and not has_chat_template(self.editor.tokenizer):
            raise EditRequestError("This model's tokenizer has no chat template; its histories use plain text.")
        result = yield from self.load(ctx, str(self.loaded.source), torch.get_num_threads(), path,
                                      self.editor.config.profile, self.settings.device, prompt_format)
        return result

    def history_action(self, ctx: JobContext, action: str, seq: Optional[int] = None) -> Iterator:
        """rollback_to / revert / undo / redo, with the history's progress events."""
        self._need_history()
        method = getattr(self.history, action)
        events = method(seq, cancel=ctx.cancel) if action in ("rollback_to", "revert") else method(cancel=ctx.cancel)
        for event in events:
            if isinstance(event, Progress) and (event.detail or {}).get("cancelled"):
                raise JobCancelled(event.done)
            yield event
        return self.history_state()

    def export_bundle(self, ctx: JobContext, path: str) -> str:
        self._need_history()
        self.history.export_bundle(path)
        return path

    def import_bundle(self, ctx: JobContext, bundle: str, db_path: str) -> Iterator:
        self._need_model()
        if Path(db_path).exists():
            raise HistoryError(f"{db_path} already exists. Choose a new file for the imported history.")
        yield LoadMessage("Importing the bundle (replaying its edits)...")
        history = EditHistory.import_bundle(bundle, db_path, self.editor)
        self.close()
        self.history = history
        return self.history_state(with_probes=True)

    # ------------------------------------------------------------ edit / probe
    def validate(self, prompt: str, target: str, paraphrases: tuple = (), locality: tuple = ()) -> None:
        """Raise FieldError naming the input that is wrong."""
        self._need_model()
        checks = [("prompt", prompt, None), ("target", prompt, target)]
        checks += [("paraphrases", p, target) for p in paraphrases]
        checks += [("locality", p, None) for p in locality]
        for name, text, tgt in checks:
            try:
                self.editor.validate(text, tgt)
            except EditRequestError as error:
                raise FieldError(name, str(error)) from None

    def edit(self, ctx: JobContext, request: EditRequest, locality: tuple = (), probe_tokens: int = 12) -> Iterator:
        self.validate(request.prompt, request.target, request.train_paraphrases, locality)
        if self.history is not None:
            source = self.history.edit(request, cancel=ctx.cancel, locality_prompts=tuple(locality))
        else:
            source = self.editor.edit(request, ctx.cancel)
        finished = None
        for event in source:
            if isinstance(event, EditCancelled):
                raise JobCancelled(event.steps_done)
            if isinstance(event, EditFinished):
                finished = event
            yield event
        if finished is None:
            raise JobCancelled(0)
        checks = []
        for prompt in locality:
            result = self.editor.probe(prompt, None, probe_tokens)
            checks.append((prompt, result.original_output, result.edited_output))
        return EditOutcome(finished.edit, finished.stopped_early, self.history_state(), tuple(checks))

    def probe(self, ctx: JobContext, query: str, target: Optional[str], tokens: int) -> ProbeView:
        self._need_model()
        try:
            self.editor.validate(query, target)
        except EditRequestError as error:
            raise FieldError("target" if target and "target" in str(error) else "query", str(error)) from None
        result = self.editor.probe(query, target, tokens)
        seq = None
        if self.history is not None:
            seq = self.history.nearest_seq(result)
            try:
                self.history.keep_probe(result)
            except HistoryError as error:  # a locked file must not cost the user the probe
                log.warning("probe not kept in the history: %s", error)
        edits = self.editor.edits
        if result.nearest_edit is not None and result.nearest_edit < len(edits):
            near = edits[result.nearest_edit]
            return ProbeView(result, tuple(near.code) or None, near.target, seq, tuple(e.prompt for e in edits))
        return ProbeView(result, edit_prompts=tuple(e.prompt for e in edits))

    def _scoped_map(self, edits: list, probe_prompts: tuple, method: str) -> RouterMapData:
        """The scoped router's own input space: each edit's learned key, and each probe's prompt
        token that matched its nearest edit best (standardised block states)."""
        cfg = self.editor.config
        keys, points = self.editor.router_space(list(probe_prompts))
        flat = np.concatenate([keys.numpy(), points.numpy()]).reshape(len(edits) + len(probe_prompts), -1)
        routes = [int(i) for i in self.editor.expert_index(list(probe_prompts))] if probe_prompts else []
        n = len(flat)
        if n < 4:
            method = "PCA"
        coords = project(flat, method) if n else np.zeros((0, 2))
        return RouterMapData(
            edit_prompts=tuple(e.prompt for e in edits), probe_prompts=probe_prompts,
            coords=tuple(map(tuple, coords.tolist())), probe_fired=tuple(r >= 0 for r in routes),
            probe_hamming=tuple(None for _ in routes), method=method, epsilon=cfg.epsilon, deferral=cfg.deferral,
            probe_routes=tuple(routes), keyed=True,
            space="scoped router: edits by their learned keys, probes by their best-matching token")

    def router_map(self, ctx: JobContext, probe_prompts: tuple, method: str = "t-SNE") -> RouterMapData:
        """Every active edit and the given probes, projected to 2-D by their router weights
        (keyed routing: by the per-edit gates, so queries that use the same experts coincide)."""
        self._need_model()
        cfg = self.editor.config
        keyed = getattr(cfg, "routing", "router") == "keyed"
        edits = list(self.editor.edits)
        if getattr(cfg, "routing", "router") == "scoped":
            return self._scoped_map(edits, tuple(probe_prompts), method)
        prompts = [e.prompt for e in edits] + list(probe_prompts)
        weights = [np.asarray(w, dtype=float) for w in (self.editor.route(prompts) if prompts else [])]
        flat = np.asarray([w.reshape(-1) for w in weights]).reshape(len(prompts), -1)
        # fired / deferred as the engine decides it when it generates (key scope included)
        decisions = self.editor.firing(list(probe_prompts))
        fired, hamming = [f for f, _ in decisions], [d for _, d in decisions]
        routes = [-1] * len(probe_prompts)
        if keyed and probe_prompts:  # which edit's experts, beside whether any
            routes = [int(i) for i in self.editor.expert_index(list(probe_prompts))]
        if len(prompts) < 4:
            method = "PCA"    # t-SNE needs a few points; PCA is exact for two or three
        coords = project(flat, method) if prompts else np.zeros((0, 2))
        if keyed and len(coords):   # identical gate vectors would hide each other: spread them a little
            coords = coords + np.random.default_rng(0).normal(0, 0.02 * (np.ptp(coords) or 1.0), coords.shape)
        return RouterMapData(
            edit_prompts=tuple(e.prompt for e in edits), probe_prompts=tuple(probe_prompts),
            coords=tuple(map(tuple, coords.tolist())), probe_fired=tuple(fired), probe_hamming=tuple(hamming),
            method=method, epsilon=cfg.epsilon, deferral=cfg.deferral, probe_routes=tuple(routes), keyed=keyed)
