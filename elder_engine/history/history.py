"""`EditHistory`: an exact, persistent, navigable history of one engine's edits.

The engine state is always the result of applying, in sequence order, every edit whose status
is `applied`, starting from the history's base state. Rollback marks later applied edits
`rolled_back` (redo re-applies them), revert marks one edit `reverted` for good and re-trains
the later ones with their own presets and settings. How points are restored: see
`snapshots.py`. Every change is committed in one transaction after the engine reached its new
state; a failure or cancel puts the engine back and leaves the file as it was.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterator, Optional, Sequence

from sqlalchemy import delete, func, select, update

from ..editing.events import AppliedEdit, CancelToken, EditFinished, Progress
from ..editing.probe import ProbeResult
from ..editing.request import EditRequest
from ..errors import HistoryError
from . import snapshots as snap
from .entries import HistoryChanged, HistoryEntry
from .entries import applied_from_row as _applied
from .entries import entry_from_row as _entry
from .entries import training_record as _record
from .replay import ReplayCancelled, replay_edit, since_keyframe
from .schema import EditRow, EvalRunRow, Info, ModelRow, ProbeRow, StateRow, utcnow
from .store import Store
from .watch import WatchList


class EditHistory:
    old_answer_tokens = 16  # greedy tokens of the original model's answer kept with each edit

    def __init__(self, store: Store, editor, budget_s: Optional[float]) -> None:
        """Use `EditHistory.open`."""
        self._store, self.editor, self.path = store, editor, store.path
        self._chain: list[int] = []
        self._keys: list[str] = [snap.BASE_KEY]
        self._base_edits: list[dict] = []
        self._budget_override = budget_s
        self.keyframe_budget_s = snap.default_keyframe_budget(editor.config)  # the file's value replaces it in _load
        self.model_info: dict = {}
        self.prompt_format = "plain"  # fixed at creation (the model row's config); older files are plain
        self._closed = False

    # ------------------------------------------------------------------ open
    @classmethod
    def open(cls, path, editor, *, timeout: float = 5.0, keyframe_budget_s: Optional[float] = None) -> "EditHistory":
        """Open the history at `path` (created with `editor`'s current state as its base when
        missing) and bring the engine to the history's head state."""
        def init(s) -> None:
            loaded = editor.loaded
            s.add(ModelRow(id=1, fingerprint=loaded.fingerprint, source=str(loaded.source),
                           display_name=loaded.display_name, model_type=loaded.model_type,
                           config=editor.config.elder_fields()))
            s.add(Info(key="keyframe_budget_s", value=snap.default_keyframe_budget(editor.config)
                        if keyframe_budget_s is None else keyframe_budget_s))
            s.add(Info(key="base_edits", value=[e.to_dict() for e in editor.edits]))
            snap.store_state(s, "base", snap.BASE_KEY, [], editor.config.elder_fields(), snap.capture(editor))

        store, created = Store.open(path, timeout, init)
        history = cls(store, editor, keyframe_budget_s)
        try:
            history._load(restore=not created)
        except BaseException:
            store.engine.dispose()
            raise
        return history

    def _load(self, restore: bool) -> None:
        loaded = self.editor.loaded
        with self._store.read() as s:
            model = s.get(ModelRow, 1)
            if model is None:
                raise HistoryError(f"{self.path} has no model record; it is damaged.")
            self.model_info = {"fingerprint": model.fingerprint, "source": model.source,
                               "display_name": model.display_name, "model_type": model.model_type}
            self.prompt_format = str((model.config or {}).get("prompt_format", "plain"))
            if model.fingerprint != loaded.fingerprint:
                raise HistoryError(
                    f"This history belongs to the model '{model.display_name}' (fingerprint {model.fingerprint[:12]}…), "
                    f"but the loaded model is '{loaded.display_name}' ({loaded.fingerprint[:12]}…). "
                    "Open the history with the model it was made with.")
            info = {r.key: r.value for r in s.scalars(select(Info))}
            self._base_edits = list(info.get("base_edits") or [])
            budget = self._budget_override if self._budget_override is not None else info.get("keyframe_budget_s")
            self.keyframe_budget_s = float(snap.default_keyframe_budget(self.editor.config) if budget is None
                                           else budget)
            self._chain = list(s.scalars(select(EditRow.seq).where(EditRow.status == "applied").order_by(EditRow.seq)))
            self._keys = snap.prefix_keys(self._chain)
            head = s.scalar(select(StateRow).where(StateRow.chain_key == self._keys[-1])) if restore else None
        if not restore:
            return
        if head is None:  # only if the head row was lost (e.g. removed by hand): rebuild it by replay
            target, self._chain, self._keys = self._chain, [], [snap.BASE_KEY]
            self._load_state(snap.BASE_KEY, [])
            for _ in self._goto(target, {}, "restore the head", None, check=False):
                pass
            return
        self._load_state(self._keys[-1], self._chain)

    def _load_state(self, key: str, chain: list[int]) -> None:
        with self._store.read() as s:
            tensors, meta = snap.read_state(s, key)
            rows = {r.seq: r for r in s.scalars(select(EditRow).where(EditRow.seq.in_(chain)))}
        edits = self._base_edits + [_applied(rows[q]).to_dict() for q in chain]
        snap.apply_tensors(self.editor, tensors, meta["config"], edits)

    # ------------------------------------------------------------- read side
    @property
    def head(self) -> int:
        return self._chain[-1] if self._chain else 0

    @property
    def chain(self) -> list[int]:
        return list(self._chain)

    def entries(self) -> list[HistoryEntry]:
        with self._store.read() as s:
            return [_entry(r) for r in s.scalars(select(EditRow).order_by(EditRow.seq))]

    def nearest_seq(self, result: ProbeResult) -> Optional[int]:
        """The sequence number of a probe's nearest edit (None: none, or a pre-history edit)."""
        return self.seq_of(result.nearest_edit)

    def seq_of(self, i: Optional[int]) -> Optional[int]:
        """The sequence number of the engine's edit `i` (None: a pre-history edit, or none)."""
        if i is None or i < len(self._base_edits):
            return None
        i -= len(self._base_edits)
        return self._chain[i] if i < len(self._chain) else None

    def keep_probe(self, result: ProbeResult) -> None:
        data = {**result.to_dict(), "nearest_seq": self.nearest_seq(result)}
        with self._store.write("keep the probe") as s:
            s.add(ProbeRow(head=self.head, query=result.query, result=data))

    def probes(self) -> list[dict]:
        with self._store.read() as s:
            return [{**r.result, "id": r.id, "created_at": r.created_at.isoformat(), "head": r.head}
                    for r in s.scalars(select(ProbeRow).order_by(ProbeRow.id))]

    def record_eval_run(self, summary: dict, settings: dict) -> None:
        with self._store.write("record the evaluation run") as s:
            s.add(EvalRunRow(head=self.head, summary=dict(summary), settings=dict(settings)))

    def eval_runs(self) -> list[dict]:
        with self._store.read() as s:
            return [{"id": r.id, "created_at": r.created_at.isoformat(), "head": r.head, "summary": r.summary,
                     "settings": r.settings} for r in s.scalars(select(EvalRunRow).order_by(EvalRunRow.id))]

    @property
    def watch(self) -> WatchList:
        return WatchList(self._store)

    @property
    def state_key(self) -> str:
        """Names the engine's current state (its chain of applied edits)."""
        return self._keys[-1]

    def run_watch(self, cancel: Optional[CancelToken] = None, **kwargs) -> Iterator[Progress]:
        """Re-probe the watch list in the current state (see `watch.WatchList.run`)."""
        self._ready()
        return self.watch.run(self.editor, self.state_key, self.head, cancel, self.seq_of, **kwargs)

    def storage_bytes(self) -> int:
        return self._store.file_bytes()

    # ------------------------------------------------------------------ edit
    def edit(self, request: EditRequest, cancel: Optional[CancelToken] = None,
             locality_prompts: Sequence[str] = ()) -> Iterator:
        """Train an edit (yields the engine's events); it is committed after training with its
        state, then EditFinished and HistoryChanged are yielded. Cancel: nothing is stored."""
        self._ready()
        editor = self.editor
        editor.validate(request.prompt, request.target)
        if locality_prompts and not request.locality_prompts:  # the scoped router learns from them
            request = dataclasses.replace(request, locality_prompts=tuple(locality_prompts))
        self._store.check_writable("save the edit")  # fail before training, not after
        old_answer = self._old_answer(request.prompt)
        guard = snap.EngineGuard(editor)
        conditions = snap.engine_conditions(editor)
        finished, clock = None, snap.CpuClock()
        events = clock.run(editor.edit(request, cancel))
        try:
            for event in events:
                if isinstance(event, EditFinished):
                    finished = event
                else:
                    yield event
        finally:
            events.close()
        if finished is None:
            return
        try:
            self._commit_edit(finished.edit, locality_prompts, old_answer, conditions, clock.seconds)
        except BaseException:
            guard.restore()
            raise
        yield finished
        yield HistoryChanged(self.entries(), self.head)

    def _old_answer(self, prompt: str) -> str:
        ids = self.editor.generate([prompt], self.old_answer_tokens, original=True)[0]
        text = self.editor.tokenizer.decode(ids, skip_special_tokens=True).strip()
        return text.splitlines()[0] if text else ""

    def _commit_edit(self, applied: AppliedEdit, locality: Sequence[str], old_answer: str, conditions: dict,
                     cost: float) -> None:
        captured = snap.capture(self.editor)
        rng = snap.rng_bytes(self.editor)
        with self._store.write("save the edit") as s:
            seq = (s.scalar(select(func.max(EditRow.seq))) or 0) + 1
            key = snap.child_key(self._keys[-1], seq)
            since = since_keyframe(s, self._chain, self._keys) + cost
            s.add(EditRow(seq=seq, prompt=applied.prompt, target=applied.target,
                          train_paraphrases=list(applied.train_paraphrases), locality_prompts=list(locality),
                          subject=applied.subject,
                          settings=dict(applied.settings),
                          profile=applied.profile, engine=conditions, status="applied", old_answer=old_answer,
                          rng_after=rng, **_record(applied, key, cost)))
            kind = "keyframe" if since >= self.keyframe_budget_s else "head"
            self._put_head(s, key, self._chain + [seq], kind, captured)
            self.watch.seed(s, locality)  # the prompts the user wants unchanged are watched from now on
        self._chain.append(seq)
        self._keys.append(key)

    def _put_head(self, s, key: str, chain: list[int], kind: str, captured=None) -> None:
        """Make `key` the stored head: drop the previous transient head, store this one unless
        a base/keyframe state of the same chain already exists."""
        s.execute(delete(StateRow).where(StateRow.kind == "head", StateRow.chain_key != key))
        if s.scalar(select(StateRow.id).where(StateRow.chain_key == key)) is None:
            snap.store_state(s, kind, key, chain, self.editor.config.elder_fields(),
                             captured or snap.capture(self.editor))
        snap.collect_garbage(s)

    # ------------------------------------------------------------ navigation
    def rollback_to(self, seq: int, cancel: Optional[CancelToken] = None) -> Iterator[Progress]:
        """The engine becomes bit-identical to its state right after edit `seq` (0: before any
        edit). Later applied edits become rolled back; a `seq` after the head re-applies the
        rolled-back edits up to it."""
        self._ready()
        with self._store.read() as s:
            status = dict(s.execute(select(EditRow.seq, EditRow.status)).all())
        if seq != 0 and seq not in status:
            raise HistoryError(f"There is no edit {seq} in this history (edits 1-{max(status, default=0)}).")
        if seq >= self.head:
            add = [q for q in sorted(status) if self.head < q <= seq and status[q] == "rolled_back"]
            return self._goto(self._chain + add, {q: "applied" for q in add}, f"redo to {seq}", cancel)
        keep = [q for q in self._chain if q <= seq]
        return self._goto(keep, {q: "rolled_back" for q in self._chain if q > seq}, f"rollback to {seq}", cancel)

    def undo(self, cancel: Optional[CancelToken] = None) -> Iterator[Progress]:
        """Roll back the last applied edit."""
        self._ready()
        if not self._chain:
            return iter([Progress(0, 0, "nothing to undo")])
        return self.rollback_to(self._chain[-2] if len(self._chain) > 1 else 0, cancel)

    def redo(self, cancel: Optional[CancelToken] = None, count: Optional[int] = None) -> Iterator[Progress]:
        """Re-apply the rolled-back edits after the head (all, or the next `count`)."""
        self._ready()
        with self._store.read() as s:
            todo = list(s.scalars(select(EditRow.seq).where(EditRow.status == "rolled_back", EditRow.seq > self.head)
                                  .order_by(EditRow.seq)))
        todo = todo[:count] if count is not None else todo
        if not todo:
            return iter([Progress(0, 0, "nothing to redo")])
        return self._goto(self._chain + todo, {q: "applied" for q in todo}, "redo", cancel)

    def revert(self, seq: int, cancel: Optional[CancelToken] = None) -> Iterator[Progress]:
        """Remove edit `seq` for good: restore the state before it and re-train the later
        applied edits with their own presets and settings."""
        self._ready()
        with self._store.read() as s:
            status = s.scalar(select(EditRow.status).where(EditRow.seq == seq))
        if status is None:
            raise HistoryError(f"There is no edit {seq} in this history.")
        if status == "reverted":
            raise HistoryError(f"Edit {seq} is already reverted.")
        target = [q for q in self._chain if q != seq]
        return self._goto(target, {seq: "reverted"}, f"revert edit {seq}", cancel, drop={seq})

    def _goto(self, target: list[int], changes: dict, action: str, cancel: Optional[CancelToken],
              drop: frozenset = frozenset(), check: bool = True) -> Iterator[Progress]:
        """Bring the engine to the state of `target` (load the nearest stored state, replay
        the rest), then commit `changes` (seq -> status) with the new head, in one transaction."""
        if check:
            self._store.check_writable(action)
        editor, store = self.editor, self._store
        keys = snap.prefix_keys(target)
        with store.read() as s:
            stored = dict(s.execute(select(StateRow.chain_key, StateRow.kind).where(StateRow.chain_key.in_(keys))).all())
            rows = {r.seq: r for r in s.scalars(select(EditRow).where(EditRow.seq.in_(target)))}
        start = max(i for i, k in enumerate(keys) if k in stored)
        common = len(self._chain) <= len(target) and target[: len(self._chain)] == self._chain
        guard = snap.EngineGuard(editor)
        done, todo = 0, []
        try:
            if common and len(self._chain) >= start:
                start = len(self._chain)  # the engine already holds a prefix of the target
            else:
                self._load_state(keys[start], target[:start])
            todo = target[start:]
            durations = {q: r.cost_s for q, r in rows.items()}
            with store.read() as s:
                since = since_keyframe(s, target, keys, start, durations)
            new_states, updates, warnings, present = [], {}, [], None
            yield Progress(0, len(todo), f"{action}: from the state after edit {target[start - 1] if start else 0}")
            for done, seq in enumerate(todo, 1):
                row, key = rows[seq], keys[start + done]
                applied, cost = yield from replay_edit(editor, row, cancel, action, done, len(todo))
                snap.set_rng(editor, row.rng_after)
                if key == row.chain_key:  # same chain as when it was recorded: must match exactly
                    if tuple(applied.loss_curve) != tuple(row.loss_curve):
                        warnings.append(f"edit {seq} did not replay bit-exactly (other torch build or CPU?)")
                    editor.edits[-1] = _applied(row)
                    since += row.cost_s
                else:  # a new chain (after a revert): the edit's training record changes
                    updates[seq] = _record(applied, key, cost)
                    since += cost
                if since >= self.keyframe_budget_s and key not in stored:
                    if present is None:
                        with store.read() as s:
                            present = snap.stored_digests(s)
                    captured = snap.capture(editor, present)  # copies only what is not stored yet
                    present |= {d for d, t in captured[0].values()}
                    new_states.append((key, target[: start + done], editor.config.elder_fields(), captured))
                    since = 0.0
                yield Progress(done, len(todo), f"{action}: replayed edit {seq}", {"seq": seq, "warnings": warnings})
            if cancel is not None and cancel.cancelled:
                raise ReplayCancelled
            with store.write(action) as s:
                now = utcnow()
                for seq, status in changes.items():
                    s.execute(update(EditRow).where(EditRow.seq == seq).values(status=status, status_changed_at=now))
                for seq, values in updates.items():
                    s.execute(update(EditRow).where(EditRow.seq == seq).values(**values))
                if drop:
                    gone = [i for i, chain in s.execute(select(StateRow.id, StateRow.chain)) if drop & set(chain)]
                    s.execute(delete(StateRow).where(StateRow.id.in_(gone)))
                for key, chain, config, captured in new_states:
                    snap.store_state(s, "keyframe", key, chain, config, captured)
                s.flush()
                self._put_head(s, keys[-1], target, "head")
        except ReplayCancelled:
            guard.restore()
            yield Progress(done, len(todo), f"{action}: cancelled, nothing changed", {"cancelled": True})
            return
        except BaseException:
            guard.restore()
            raise
        self._chain, self._keys = list(target), keys
        yield Progress(len(todo), len(todo), f"{action}: done",
                       {"head": self.head, "entries": self.entries(), "warnings": warnings})

    # ------------------------------------------------------------- bundles
    def export_bundle(self, path) -> None:
        from .bundle import export_bundle
        self._ready()
        export_bundle(self, Path(path))

    @classmethod
    def import_bundle(cls, bundle_path, db_path, editor, **kwargs) -> "EditHistory":
        from .bundle import import_bundle
        return import_bundle(cls, Path(bundle_path), Path(db_path), editor, **kwargs)

    # --------------------------------------------------------------- upkeep
    def _ready(self) -> None:
        if self._closed:
            raise HistoryError("This history is closed.")
        if self.editor.config.prompt_format != self.prompt_format:  # its edits replay in its own format
            raise HistoryError(f"This history is in the {self.prompt_format} format, but the engine was switched to "
                               f"{self.editor.config.prompt_format}; reopen the history, or start a new one.")
        if len(self.editor.edits) != len(self._base_edits) + len(self._chain):
            raise HistoryError("The engine was changed outside this history (an edit not made through it); "
                               "reopen the history to bring the engine back to its saved state.")

    def integrity_check(self) -> list[str]:
        return self._store.integrity_check()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._store.close()

    def __enter__(self) -> "EditHistory":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
