"""One history file: opening it safely, transactions, and SQLite errors turned into messages.

Rules that keep the file consistent whatever happens to the process:
- WAL journal, `synchronous=FULL`: a commit is on disk when it returns, a kill at any moment
  leaves the last committed transaction intact (SQLite's own guarantee).
- Every change is one write transaction, begun with `BEGIN IMMEDIATE` so that a lock held by
  another program is met (and reported) before anything is written, never half-way.
- A `revision` counter in `info` is bumped by each write; a write that finds another revision
  than the one this process last saw refuses, because the engine in memory no longer matches
  the file (two programs editing one history).
- Nothing that is not ours is touched: a file that is not SQLite, or an SQLite file without our
  `application_id`, is refused before any pragma that would modify it.
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional

from sqlalchemy import create_engine, event
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from ..errors import HistoryError
from .schema import APPLICATION_ID, SCHEMA_VERSION, Base, Info, migrate

SQLITE_MAGIC = b"SQLite format 3\x00"
PAGE_SIZE = 1024
WAL_LIMIT = 8 << 20  # bytes the WAL file keeps after a checkpoint; each edit writes ~1.4 MB to it
CONNECTION_PRAGMAS = ("PRAGMA synchronous=FULL", f"PRAGMA journal_size_limit={WAL_LIMIT}")


def map_error(exc: BaseException, path: Path, action: str) -> HistoryError:
    """A user-facing HistoryError for a database failure."""
    orig = getattr(exc, "orig", exc)
    name = getattr(orig, "sqlite_errorname", "") or ""
    msg = str(orig)
    where = f"the history {path.name}"
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in msg:
        return HistoryError(f"Cannot {action}: {where} is locked by another program (another ELDER window or "
                            "a database tool). Close it and try again; nothing was changed.")
    if name.startswith("SQLITE_FULL") or "disk is full" in msg or "No space" in msg:
        return HistoryError(f"Cannot {action}: the disk holding {path} is full. Free some space and try again; "
                            "the history is as it was before.")
    if name.startswith("SQLITE_NOTADB") or "not a database" in msg:
        return HistoryError(f"{path} is not an ELDER history (not an SQLite database). Choose another file.")
    if name.startswith("SQLITE_CORRUPT") or "malformed" in msg:
        return HistoryError(f"{path} is damaged (SQLite: {msg}). Restore a backup or start a new history; "
                            "an exported bundle can be imported into a new one.")
    if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_IOERR")):
        return HistoryError(f"Cannot {action}: {path} cannot be written or read ({msg}).")
    return HistoryError(f"Cannot {action} in {path}: {msg}")


class Store:
    """The SQLAlchemy engine of one history file. One DBAPI connection (StaticPool) guarded by
    a lock: the app's worker thread writes, the GUI thread may read; SQLite connections must
    not be used by two threads at once."""

    def __init__(self, path: Path, timeout: float) -> None:
        self.path = path
        self.lock = threading.RLock()
        self.revision = 0
        self._immediate = False
        self.engine = create_engine(
            f"sqlite:///{path}", poolclass=StaticPool,
            connect_args={"timeout": timeout, "check_same_thread": False},
        )

        @event.listens_for(self.engine, "connect")
        def _connect(dbapi_conn, _record):
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (SQLAlchemy's recipe)
            # Per-connection settings, so that every connection the pool ever makes has them
            # (neither writes to the file: a foreign file is still refused untouched). The
            # journal mode is kept in the file itself and set once it is known to be ours.
            cur = dbapi_conn.cursor()
            for pragma in CONNECTION_PRAGMAS:
                cur.execute(pragma).fetchall()
            cur.close()

        @event.listens_for(self.engine, "begin")
        def _begin(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE" if self._immediate else "BEGIN")

    # ----------------------------------------------------------------- opening
    @classmethod
    def open(cls, path, timeout: float = 5.0,
             init: Optional[Callable[[Session], None]] = None) -> tuple["Store", bool]:
        """Open (or create, calling `init(session)` in the creating transaction) a history file.
        Returns the store and whether it was created."""
        path = Path(path).expanduser().absolute()
        if path.is_dir():
            raise HistoryError(f"{path} is a folder; choose a history file (e.g. history.elderdb).")
        created = not path.exists() or path.stat().st_size == 0
        if not created:
            with open(path, "rb") as f:
                if f.read(16) != SQLITE_MAGIC:
                    raise HistoryError(f"{path} is not an ELDER history (not an SQLite database). Choose another file.")
        else:
            if init is None:
                raise HistoryError(f"No history at {path}.")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise HistoryError(f"Cannot create the folder for {path}: {exc}") from None
        store = cls(path, timeout)
        try:
            if created:
                store._create(init)
            else:
                store._check_and_migrate()
        except HistoryError:
            store.engine.dispose()
            raise
        except (SQLAlchemyError, sqlite3.Error, OSError) as exc:
            store.engine.dispose()
            raise map_error(exc, path, "open the history") from None
        return store, created

    def _raw(self, *statements: str) -> list[list]:
        """Statements outside any transaction (journal mode, vacuum and checkpoint need that)."""
        with self.lock:
            raw = self.engine.raw_connection()
            try:
                cur = raw.cursor()
                out = [cur.execute(sql).fetchall() for sql in statements]
                cur.close()
                return out
            finally:
                raw.close()

    def _create(self, init) -> None:
        # Page size and auto_vacuum are only honoured before the first table exists. Small pages:
        # a stored tensor wastes half a page on average, and keyed profiles store thousands.
        self._raw(f"PRAGMA page_size={PAGE_SIZE}", "PRAGMA auto_vacuum=INCREMENTAL", "PRAGMA journal_mode=WAL")
        with self.write(check_revision=False) as s:
            s.connection().exec_driver_sql(f"PRAGMA application_id={APPLICATION_ID}")
            Base.metadata.create_all(s.connection())
            s.add(Info(key="schema_version", value=SCHEMA_VERSION))
            s.add(Info(key="revision", value=0))
            init(s)

    def _check_and_migrate(self) -> None:
        (tables, app_id) = self._raw("SELECT name FROM sqlite_master WHERE type='table'", "PRAGMA application_id")
        if app_id[0][0] != APPLICATION_ID or ("info",) not in tables:
            raise HistoryError(f"{self.path} is an SQLite database but not an ELDER history. Choose another file.")
        check = [r[0] for r in self._raw("PRAGMA quick_check")[0]]
        if check != ["ok"]:
            raise HistoryError(f"{self.path} is damaged ({'; '.join(check[:3])}). Restore a backup or start "
                               "a new history; an exported bundle can be imported into a new one.")
        version = self.read_info("schema_version")
        if not isinstance(version, int):
            raise HistoryError(f"{self.path} has no schema version; it is damaged or not an ELDER history.")
        if version > SCHEMA_VERSION:
            raise HistoryError(f"{self.path} was written by a newer ELDER Workbench (history format {version}, "
                               f"this one reads up to {SCHEMA_VERSION}). Update the app to open it.")
        self._raw("PRAGMA journal_mode=WAL")
        if version < SCHEMA_VERSION:
            self.migrate_from(version)
        self.revision = self.read_info("revision", 0)

    def migrate_from(self, version: int, target: Optional[int] = None, steps=None) -> None:
        """Upgrade the file in one transaction: a failed step leaves it at its old version."""
        target = SCHEMA_VERSION if target is None else target
        try:
            with self.write(check_revision=False) as s:
                conn = s.connection()
                new = migrate(conn, version, target, steps)
                s.merge(Info(key="schema_version", value=new))
        except KeyError as exc:
            raise HistoryError(f"{self.path} uses history format {version}, which this version cannot "
                               f"upgrade (missing step {exc}).") from None
        except HistoryError:
            raise
        except Exception as exc:  # a failed step rolled back: say so instead of a traceback
            raise HistoryError(f"Upgrading {self.path} from history format {version} failed ({exc}); "
                               "the file was left as it was.") from None

    # ------------------------------------------------------------ transactions
    @contextmanager
    def read(self) -> Iterator[Session]:
        with self.lock:
            try:
                with Session(self.engine, expire_on_commit=False) as s, s.begin():
                    yield s
            except (SQLAlchemyError, sqlite3.Error) as exc:
                raise map_error(exc, self.path, "read the history") from None

    @contextmanager
    def write(self, action: str = "save the change", check_revision: bool = True) -> Iterator[Session]:
        """One write transaction: all of it is committed, or none of it."""
        with self.lock:
            self._immediate = True
            try:
                with Session(self.engine, expire_on_commit=False) as s:
                    with s.begin():
                        s.connection()  # the session begins lazily: make it BEGIN IMMEDIATE now
                        self._immediate = False
                        if check_revision:
                            self._check_revision(s)
                        yield s
                        if check_revision:
                            s.merge(Info(key="revision", value=self.revision + 1))
                    if check_revision:
                        self.revision += 1
            except (SQLAlchemyError, sqlite3.Error, OSError) as exc:
                raise map_error(exc, self.path, action) from None
            finally:
                self._immediate = False

    def _check_revision(self, s: Session) -> None:
        found = s.get(Info, "revision")
        if found is None or found.value != self.revision:
            raise HistoryError(f"The history {self.path.name} was changed by another program since it was opened here; "
                               "close and reopen it (your last action was not saved).")

    def check_writable(self, action: str) -> None:
        """Fail fast (before a long computation) when the file is locked or was changed
        elsewhere: take the write lock, look, and roll back."""
        with self.lock:
            self._immediate = True
            try:
                with Session(self.engine) as s:
                    trans = s.begin()
                    try:
                        s.connection()
                        self._immediate = False
                        self._check_revision(s)
                    finally:
                        trans.rollback()
            except (SQLAlchemyError, sqlite3.Error, OSError) as exc:
                raise map_error(exc, self.path, action) from None
            finally:
                self._immediate = False

    def read_info(self, key: str, default=None):
        with self.read() as s:
            row = s.get(Info, key)
            return default if row is None else row.value

    # ------------------------------------------------------------------ upkeep
    def integrity_check(self) -> list[str]:
        return [r[0] for r in self._raw("PRAGMA integrity_check")[0]]

    def file_bytes(self) -> int:
        return sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal")) if p.exists())

    def compact(self) -> None:
        """Give freed pages back and fold the WAL into the file (best effort: skipped if busy)."""
        with self.lock:
            raw = self.engine.raw_connection()
            try:
                # executescript runs the pragma to completion; a plain execute frees one page.
                raw.driver_connection.executescript("PRAGMA incremental_vacuum; PRAGMA wal_checkpoint(TRUNCATE);")
            except (DBAPIError, sqlite3.Error):
                pass
            finally:
                raw.close()

    def close(self) -> None:
        self.compact()
        self.engine.dispose()
