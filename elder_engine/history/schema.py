"""The edit history's SQLite schema (SQLAlchemy 2 declarative models) and its migrations.

One file holds one history of one model:

- `info`      key/value JSON: schema version, revision counter, keyframe budget, base edits;
- `model`     the model the history belongs to (fingerprint, source, display name, config);
- `edits`     every edit ever made, whatever its status now (applied / rolled_back / reverted);
- `states`    engine states: the base (before any edit), keyframes, and the head, each a
              list of tensors kept in `tensor_blobs` by content (shared between states);
- `probes`    probe results the user chose to keep;
- `eval_runs` evaluation runs with their metrics and settings;
- `watch`     the watch list: prompts re-probed after every change, with their last answers
              (schema 3).

The version lives in `info` (inside the same transactions as the data) and the file is marked
with SQLite's `application_id`, so that another program's SQLite file is recognised as such
instead of being "migrated". Migrations are plain functions, one per version step, run in one
transaction: a failure leaves the file at its old version. (Alembic is not installed here and a
single-file desktop database needs none of its branching; the runner below is its equivalent.)
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable, Optional

from sqlalchemy import (
    JSON, Boolean, CheckConstraint, DateTime, Float, Integer, LargeBinary, String, Text, TypeDecorator,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import DeclarativeBase, Mapped, deferred, mapped_column

SCHEMA_VERSION = 3
APPLICATION_ID = 0x454C4452  # "ELDR": tells our files apart from other SQLite databases
STATUSES = ("applied", "rolled_back", "reverted")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """SQLite keeps no time zone: store naive UTC, hand back aware UTC datetimes."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        return value.replace(tzinfo=timezone.utc) if value is not None else None


class Base(DeclarativeBase):
    pass


class Info(Base):
    __tablename__ = "info"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[object] = mapped_column(JSON)


class ModelRow(Base):
    __tablename__ = "model"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # always 1: one model per history
    fingerprint: Mapped[str] = mapped_column(String(128))
    source: Mapped[str] = mapped_column(Text)
    display_name: Mapped[str] = mapped_column(Text)
    model_type: Mapped[str] = mapped_column(String(64))
    config: Mapped[dict] = mapped_column(JSON)  # ELDER settings the history was created with
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EditRow(Base):
    __tablename__ = "edits"
    __table_args__ = (CheckConstraint(f"status IN {STATUSES!r}", name="edit_status"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    prompt: Mapped[str] = mapped_column(Text)
    target: Mapped[str] = mapped_column(Text)
    train_paraphrases: Mapped[list] = mapped_column(JSON, default=list)
    locality_prompts: Mapped[list] = mapped_column(JSON, default=list)
    subject: Mapped[str] = mapped_column(Text, default="")   # schema 2: the edit's subject ("" = none)
    preset: Mapped[list] = mapped_column(JSON)          # (L, k) expert indices, fixed for life
    settings: Mapped[dict] = mapped_column(JSON)        # training settings, fixed for life
    profile: Mapped[str] = mapped_column(String(64), default="")
    # How the edit was trained (threads, lower-block cache, device): replays must match it to
    # be bit-exact on CPU.
    engine: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="applied")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status_changed_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime, nullable=True)
    old_answer: Mapped[str] = mapped_column(Text, default="")
    # The engine's RNG right after the edit's first application: part of the exact state, and
    # a replay (which passes the preset instead of drawing it) would not advance the RNG.
    rng_after: Mapped[bytes] = mapped_column(LargeBinary)
    # The training record of the edit in the lineage it currently belongs to. A revert re-trains
    # later edits on a different starting state and updates these; `chain_key` says which chain
    # (list of applied edits up to and including this one) they were recorded on.
    chain_key: Mapped[str] = mapped_column(String(64))
    code: Mapped[list] = mapped_column(JSON)
    steps: Mapped[int] = mapped_column(Integer, default=0)
    duration_s: Mapped[float] = mapped_column(Float, default=0.0)       # wall seconds of training
    cost_s: Mapped[float] = mapped_column(Float, default=0.0)           # CPU seconds: what a replay costs
    final_loss: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    loss_curve: Mapped[list] = mapped_column(JSON, default=list)


class StateRow(Base):
    __tablename__ = "states"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))                 # base | keyframe | head
    chain_key: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    chain: Mapped[list] = mapped_column(JSON)                     # seqs of the applied edits
    meta: Mapped[dict] = mapped_column(JSON)                      # ELDER config at that point
    tensors: Mapped[dict] = mapped_column(JSON)                   # tensor name -> blob digest
    raw_bytes: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TensorBlob(Base):
    """One encoded tensor, stored by content (SHA-256 of the blob, checked on load)."""
    __tablename__ = "tensor_blobs"
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[bytes] = deferred(mapped_column(LargeBinary))


class ProbeRow(Base):
    __tablename__ = "probes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    head: Mapped[int] = mapped_column(Integer)
    query: Mapped[str] = mapped_column(Text)
    result: Mapped[dict] = mapped_column(JSON)


class EvalRunRow(Base):
    __tablename__ = "eval_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    head: Mapped[int] = mapped_column(Integer)
    summary: Mapped[dict] = mapped_column(JSON)
    settings: Mapped[dict] = mapped_column(JSON)


class WatchRow(Base):
    """One watched prompt. The original model's answer never changes for a history's model,
    so it is kept once (`original_key` says how it was generated); `before` / `after` are the
    answers in the last two engine states the list was probed in (`state` is the chain key
    of `after`'s state), so a restart still shows what the last action changed."""
    __tablename__ = "watch"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prompt: Mapped[str] = mapped_column(Text, unique=True)
    expected: Mapped[str] = mapped_column(Text, default="")           # "" = no expected answer
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    original: Mapped[Optional[str]] = mapped_column(Text, nullable=True)
    original_key: Mapped[str] = mapped_column(String(64), default="")
    before: Mapped[Optional[str]] = mapped_column(Text, nullable=True)
    before_fired: Mapped[Optional[bool]] = mapped_column(Boolean, nullable=True)
    after: Mapped[Optional[str]] = mapped_column(Text, nullable=True)
    after_fired: Mapped[Optional[bool]] = mapped_column(Boolean, nullable=True)
    after_seq: Mapped[Optional[int]] = mapped_column(Integer, nullable=True)   # the edit it fired on
    state: Mapped[str] = mapped_column(String(64), default="")
    head: Mapped[Optional[int]] = mapped_column(Integer, nullable=True)
    probed_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime, nullable=True)


# ------------------------------------------------------------------ migrations
# MIGRATIONS[v] upgrades a file from version v to v + 1 inside the caller's transaction.
# Version 1 is the first released schema.
Migration = Callable[[Connection], None]


def _add_subject(conn: Connection) -> None:
    """1 -> 2: edits get a subject (the scoped router keys on it); old edits have none."""
    conn.exec_driver_sql("ALTER TABLE edits ADD COLUMN subject TEXT NOT NULL DEFAULT ''")


# Written out rather than taken from `WatchRow`, so that this step stays what it was when a
# later version changes the model; tests/test_watch.py checks that it matches a new file.
_WATCH_DDL = """CREATE TABLE IF NOT EXISTS watch (
    id INTEGER NOT NULL,
    prompt TEXT NOT NULL,
    expected TEXT NOT NULL,
    created_at DATETIME NOT NULL,
    original TEXT,
    original_key VARCHAR(64) NOT NULL,
    before TEXT,
    before_fired BOOLEAN,
    after TEXT,
    after_fired BOOLEAN,
    after_seq INTEGER,
    state VARCHAR(64) NOT NULL,
    head INTEGER,
    probed_at DATETIME,
    PRIMARY KEY (id),
    UNIQUE (prompt)
)"""


def _add_watch(conn: Connection) -> None:
    """2 -> 3: the watch list (empty in an old file)."""
    conn.exec_driver_sql(_WATCH_DDL)


MIGRATIONS: dict[int, Migration] = {1: _add_subject, 2: _add_watch}


def migrate(conn: Connection, found: int, target: int = SCHEMA_VERSION,
            steps: Optional[dict[int, Migration]] = None) -> int:
    """Run the steps from `found` to `target` on `conn` (inside one transaction); returns the
    new version. Raises KeyError when a step is missing (the caller turns it into a message)."""
    steps = MIGRATIONS if steps is None else steps
    version = found
    while version < target:
        steps[version](conn)
        version += 1
    return version
