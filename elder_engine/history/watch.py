"""The watch list: prompts kept with a history and re-probed after every change, to answer
"what did this edit break?".

    watch = history.watch                        # or WatchList.open("h.elderdb") without a model
    watch.add([("The capital of Germany is", "Berlin")])
    for event in history.run_watch(): ...        # Progress per prompt; the last one carries the report
    report = watch.report(history.state_key)     # WatchReport: rows and counts

Each prompt is generated greedily, one at a time (a batch would pad prompts and could change a
greedy token by rounding, which would show as a false change), and its routing decision is
read the way the probe reads it. The original model's answer is generated once per prompt and
kept, since the base model of a history never changes; a re-probe generates only the edited
answer. A deferred prompt is the base model exactly, so it can never show a false change.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Sequence

import torch
from sqlalchemy import delete, select

from ..editing.events import CancelToken, Progress
from ..errors import EditRequestError, HistoryError
from ..models.tokens import encode
from . import watch_io
from .schema import EditRow, WatchRow, utcnow
from .snapshots import prefix_keys
from .store import Store

WATCH_TOKENS = 16   # greedy tokens per answer: the history's old answers use as many


def _norm(text: Optional[str]) -> str:
    return " ".join((text or "").split()).casefold()


@dataclass(frozen=True)
class WatchItem:
    """One watched prompt with its last two probed answers (None: not probed yet)."""
    id: int
    prompt: str
    expected: str                       # "" = none given
    original: Optional[str] = None      # the original model's answer
    before: Optional[str] = None        # the edited model's answer in the state probed before the last
    before_fired: Optional[bool] = None
    after: Optional[str] = None         # ... and in the last probed state
    fired: Optional[bool] = None        # the edit layers fired on it (else deferred to the base model)
    fired_seq: Optional[int] = None     # the history edit it fired on, when the router says
    state: str = ""                     # which engine state `after` belongs to
    head: Optional[int] = None
    error: Optional[str] = None         # why the last run could not probe it (not stored)

    @property
    def probed(self) -> bool:
        return self.after is not None

    @property
    def changed(self) -> bool:
        """The edited answer differs from the original model's."""
        return self.after is not None and self.original is not None and self.after != self.original

    @property
    def moved(self) -> bool:
        """The last action changed the answer."""
        return self.after is not None and self.before is not None and self.after != self.before

    @property
    def meets_expected(self) -> Optional[bool]:
        """Whether the answer starts with the expected one (case and spacing ignored)."""
        if not self.expected or self.after is None:
            return None
        return _norm(self.after).startswith(_norm(self.expected))

    def to_dict(self) -> dict:
        return {**asdict(self), "edited": self.after, "changed": self.changed, "moved": self.moved,
                "meets_expected": self.meets_expected}


@dataclass(frozen=True)
class WatchReport:
    items: tuple                        # WatchItem, in list order
    state: str                          # the engine state the report is about
    head: int = 0
    complete: bool = True               # False: cancelled part-way
    errors: int = 0

    def current(self, item: WatchItem) -> bool:
        return item.probed and item.state == self.state

    @property
    def counts(self) -> dict:
        rows = self.items
        current = [i for i in rows if self.current(i)]
        expected = [i for i in current if i.meets_expected is not None]
        return {"prompts": len(rows), "probed": len(current), "changed": sum(i.changed for i in current),
                "moved": sum(i.moved for i in current), "fired": sum(bool(i.fired) for i in current),
                "deferred": sum(i.fired is False for i in current), "with_expected": len(expected),
                "meets_expected": sum(bool(i.meets_expected) for i in expected), "errors": self.errors,
                "stale": len(rows) - len(current)}

    def to_dict(self) -> dict:
        return {"head": self.head, "complete": self.complete, "counts": self.counts,
                "rows": [i.to_dict() for i in self.items]}


def _item(r: WatchRow) -> WatchItem:
    return WatchItem(id=r.id, prompt=r.prompt, expected=r.expected or "", original=r.original, before=r.before,
                     before_fired=r.before_fired, after=r.after, fired=r.after_fired, fired_seq=r.after_seq,
                     state=r.state or "", head=r.head)


class WatchList:
    """The watch list of one history file. Adding and removing need no model; `run` needs the
    history's engine (see `EditHistory.run_watch`)."""

    def __init__(self, store: Store, owns_store: bool = False) -> None:
        self._store, self._owns = store, owns_store

    @classmethod
    def open(cls, path) -> "WatchList":
        """The watch list of an existing history, without loading its model."""
        p = Path(path).expanduser()
        if not p.exists() or p.stat().st_size == 0:
            raise HistoryError(f"No history at {path}; make an edit with --db {path} (or open it in the app) first.")
        store, _ = Store.open(p)
        return cls(store, owns_store=True)

    def close(self) -> None:
        if self._owns:
            self._store.close()

    def __enter__(self) -> "WatchList":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ list
    def items(self) -> list[WatchItem]:
        with self._store.read() as s:
            return [_item(r) for r in s.scalars(select(WatchRow).order_by(WatchRow.id))]

    def report(self, state: Optional[str] = None, head: Optional[int] = None) -> WatchReport:
        """The stored answers, counted for `state` (default: the file's head state)."""
        if state is None:
            state, head = self.head_state()
        return WatchReport(tuple(self.items()), state, head or 0)

    def head_state(self) -> tuple[str, int]:
        """The file's current state key and head, read without the engine."""
        with self._store.read() as s:
            chain = list(s.scalars(select(EditRow.seq).where(EditRow.status == "applied").order_by(EditRow.seq)))
        return prefix_keys(chain)[-1], (chain[-1] if chain else 0)

    def add(self, items: Iterable) -> tuple[int, int]:
        """Add (prompt, expected) pairs or prompts; returns (added, already there). All are
        checked first: one bad entry adds nothing. A prompt already watched keeps its row,
        and takes the new expected answer when one is given."""
        pairs = [watch_io.check_item(*((i, "") if isinstance(i, str) else i), where=f"entry {n}")
                 for n, i in enumerate(items, 1)]
        with self._store.write("add to the watch list") as s:
            return self._add(s, pairs)

    @staticmethod
    def _add(s, pairs: Sequence[tuple[str, str]]) -> tuple[int, int]:
        existing = {r.prompt: r for r in s.scalars(select(WatchRow))}
        added = kept = 0
        for prompt, expected in pairs:
            row = existing.get(prompt)
            if row is not None:
                kept += 1
                if expected:
                    row.expected = expected
                continue
            row = WatchRow(prompt=prompt, expected=expected, created_at=utcnow(), original_key="", state="")
            s.add(row)
            existing[prompt] = row
            added += 1
        return added, kept

    def seed(self, s, prompts: Sequence[str]) -> None:
        """Inside an edit's own transaction: its locality prompts join the list."""
        pairs = [(p.strip(), "") for p in prompts if p and p.strip()]
        if pairs:
            self._add(s, pairs)

    def remove(self, ids: Iterable[int]) -> int:
        ids = [int(i) for i in ids]
        with self._store.write("remove from the watch list") as s:
            return s.execute(delete(WatchRow).where(WatchRow.id.in_(ids))).rowcount or 0

    def clear(self) -> int:
        with self._store.write("clear the watch list") as s:
            return s.execute(delete(WatchRow)).rowcount or 0

    def import_file(self, path) -> tuple[int, int]:
        return self.add(watch_io.read_file(path))

    def export_file(self, path) -> Path:
        return watch_io.write_file(path, [(i.prompt, i.expected) for i in self.items()])

    # ------------------------------------------------------------------ probing
    def run(self, editor, state: str, head: int = 0, cancel: Optional[CancelToken] = None,
            seq_of: Callable[[int], Optional[int]] = lambda i: None,
            max_new_tokens: int = WATCH_TOKENS) -> Iterator[Progress]:
        """Probe every prompt in the engine's current state (`state`: its chain key). Yields
        Progress per prompt; the last event's detail has the WatchReport ("report"), and
        "cancelled" when it stopped early (the prompts probed so far are kept)."""
        items = self.items()
        key = f"greedy:{max_new_tokens}"
        with self._store.read() as s:
            keys = dict(s.execute(select(WatchRow.id, WatchRow.original_key)).all())
        total = len(items)
        results: dict[int, WatchItem] = {}
        originals: dict[int, str] = {}
        errors, cancelled = 0, False
        yield Progress(0, total, f"watch list: {total} prompt{'s' if total != 1 else ''}")
        for n, item in enumerate(items, 1):
            if cancel is not None and cancel.cancelled:
                cancelled = True
                break
            try:
                editor.validate(item.prompt)
                original = item.original
                if original is None or keys.get(item.id) != key:
                    original = originals[item.id] = _answer(editor, item.prompt, max_new_tokens, original=True)
                after = _answer(editor, item.prompt, max_new_tokens)
                fired, index = _routing(editor, item.prompt)
            except EditRequestError as error:
                errors += 1
                results[item.id] = WatchItem(**{**asdict(item), "error": str(error)})
                yield Progress(n, total, f"watch list: {n}/{total} could not be probed", {"row": results[item.id]})
                continue
            moved_on = item.probed and item.state != state
            results[item.id] = WatchItem(
                id=item.id, prompt=item.prompt, expected=item.expected, original=original,
                before=item.after if moved_on else item.before,
                before_fired=item.fired if moved_on else item.before_fired,
                after=after, fired=fired, fired_seq=seq_of(index) if index is not None else None, state=state,
                head=head)
            yield Progress(n, total, f"watch list: probed {n}/{total}", {"row": results[item.id]})
        self._save(results, originals, key)
        done = [results.get(i.id, i) for i in self.items()]
        report = WatchReport(tuple(done), state, head, complete=not cancelled, errors=errors)
        detail = {"report": report, **({"cancelled": True} if cancelled else {})}
        yield Progress(len(results), total, "watch list: cancelled" if cancelled else "watch list: done", detail)

    def _save(self, results: dict, originals: dict, key: str) -> None:
        probed = {i: r for i, r in results.items() if r.error is None}
        if not probed:
            return
        now = utcnow()
        with self._store.write("save the watch-list answers") as s:
            rows = {r.id: r for r in s.scalars(select(WatchRow).where(WatchRow.id.in_(list(probed))))}
            for i, r in probed.items():
                row = rows.get(i)
                if row is None:   # removed meanwhile (another program): nothing to keep
                    continue
                if i in originals:
                    row.original, row.original_key = originals[i], key
                row.before, row.before_fired = r.before, r.before_fired
                row.after, row.after_fired, row.after_seq = r.after, r.fired, r.fired_seq
                row.state, row.head, row.probed_at = r.state, r.head, now


def _answer(editor, prompt: str, max_new_tokens: int, original: bool = False) -> str:
    ids = editor.generate([prompt], max_new_tokens, original=original)[0]
    return editor.tokenizer.decode(ids, skip_special_tokens=True)


@torch.no_grad()
def _routing(editor, prompt: str) -> tuple[bool, Optional[int]]:
    """Fired or deferred, and the index of the engine edit it used when the routing names
    one; decided as `probe.run_probe` decides it."""
    tuner = editor.tuner
    if tuner.own_experts:   # keyed and scoped routing: an expert per edit, -1 = deferred
        index = int(editor.expert_index([prompt])[0])
        return index >= 0, (index if index >= 0 else None)
    batch = encode(editor.tokenizer, [prompt]).to(editor.device)
    with tuner.routing.session(batch.query_positions, deferral=True,
                               expert_index=editor.expert_index([prompt])) as routed:
        editor.model(**batch.model_inputs(), use_cache=False)
        fired = bool(routed.fire[0]) if routed.fire is not None else True
        nearest = int(routed.nearest[0]) if routed.nearest is not None else -1
    return fired, (nearest if fired and nearest >= 0 else None)
