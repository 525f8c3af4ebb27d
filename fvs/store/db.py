"""The SQL plumbing every store shares, whatever the backend.

A :class:`Database` runs ``?``-style SQL in transactions and reads; :class:`SqliteDatabase`
(here, the only module that imports sqlite3) is a file in WAL mode with one connection per
thread, :class:`fvs.store.pg.PgDatabase` a psycopg pool. Stores write SQL both backends
understand (``ON CONFLICT DO NOTHING``, ``RETURNING``) and branch on ``backend`` where they
must. Every driver failure becomes an :class:`FvsError`: a uniqueness conflict
ALREADY_EXISTS, anything else STORE_UNAVAILABLE (the transaction rolled back: nothing is
half-written).
"""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

from fvs.errors import ErrorCode, FvsError

Row = tuple[Any, ...]

DIR_MODE = 0o700
# SQLite's page cache (negative: KiB) for a connection that bulk-loads (BULK_ROWS or more
# in one call: a seeding, never a serving call's card or record): keeps the B-tree pages of a
# 10^7-row load in memory rather than re-reading them (default: 2 MiB).
BULK_CACHE_KIB = -262_144
BULK_ROWS = 10_000
FILE_MODE = 0o600


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Tx(Protocol):
    """One open transaction."""

    def execute(self, sql: str, params: Sequence[object] = ()) -> Cursor: ...

    def executemany(self, sql: str, rows: Any) -> int:
        """Runs ``sql`` once per row; returns the rows changed."""
        ...

    def script(self, sql: str) -> None:
        """Several statements (a migration), inside this transaction."""
        ...


class Database(Protocol):
    backend: str  # "sqlite" | "postgresql"
    where: str  # for messages: a path or a redacted URL

    def tx(self) -> AbstractContextManager[Tx]: ...

    def read(self, sql: str, params: Sequence[object] = ()) -> list[Row]: ...

    def stream(self, sql: str, params: Sequence[object], batch: int) -> Iterator[list[Row]]:
        """Rows of a large read, ``batch`` at a time."""
        ...

    def is_empty(self) -> bool:
        """True when the database holds no table at all (a brand-new one)."""
        ...

    def insert_new(self, table: str, columns: Sequence[str], rows: Sequence[Row]) -> int:
        """Bulk insert in one transaction, skipping rows whose key exists; returns the rows
        inserted (PostgreSQL: COPY through a staging table)."""
        ...

    def close(self) -> None: ...


def size_for_bulk(tx: Tx, rows: int) -> None:
    """On SQLite, before writing ``rows`` in ``tx``: a bulk load (BULK_ROWS or more) gets
    BULK_CACHE_KIB of page cache on its connection."""
    if rows >= BULK_ROWS:
        tx.execute(f"PRAGMA cache_size={BULK_CACHE_KIB}")


def private_dir(path: Path) -> None:
    """Create ``path`` (and parents) and make it 0700: templates are biometric data."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        if stat.S_IMODE(path.stat().st_mode) != DIR_MODE:
            path.chmod(DIR_MODE)
    except OSError as exc:
        raise FvsError(
            ErrorCode.STORE_UNAVAILABLE, f"cannot create data directory {path}: {exc}"
        ) from exc


def _private_files(db_path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        f = db_path.with_name(db_path.name + suffix)
        try:
            if f.exists() and stat.S_IMODE(f.stat().st_mode) != FILE_MODE:
                f.chmod(FILE_MODE)
        except OSError:
            pass  # not ours to fix (read-only mount): the directory mode still protects it


class _SqliteTx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[object] = ()) -> Cursor:
        return self.conn.execute(sql, tuple(params))

    def executemany(self, sql: str, rows: Any) -> int:
        return self.conn.executemany(sql, rows).rowcount

    def script(self, sql: str) -> None:
        pending = ""
        for line in sql.splitlines(keepends=True):
            pending += line
            if sqlite3.complete_statement(pending):
                self.conn.execute(pending)
                pending = ""
        if pending.strip():
            self.conn.execute(pending)


class SqliteDatabase:
    backend = "sqlite"

    def __init__(self, path: Path, page_size: int = 4096) -> None:
        self.path = path
        self.where = str(path)
        self.page_size = page_size
        private_dir(self.path.parent)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        # Files are created 0600 (the umask only takes bits away), then checked.
        old = os.umask(0o077)
        try:
            self.conn()
        finally:
            os.umask(old)
        _private_files(path)

    def conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(
                    self.path, timeout=10.0, isolation_level=None, check_same_thread=False
                )
                # Only takes effect on a new database, before WAL is enabled.
                conn.execute(f"PRAGMA page_size={int(self.page_size)}")
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA foreign_keys=ON")
            except sqlite3.Error as exc:
                raise FvsError(
                    ErrorCode.STORE_UNAVAILABLE, f"cannot open the database {self.path}: {exc}"
                ) from exc
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def tx(self) -> Iterator[Tx]:
        """A write transaction (BEGIN IMMEDIATE ... COMMIT, rolled back on any error)."""
        conn = self.conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield _SqliteTx(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.IntegrityError as exc:
            raise FvsError(ErrorCode.ALREADY_EXISTS, f"already exists: {exc}") from exc
        except sqlite3.Error as exc:
            raise FvsError(ErrorCode.STORE_UNAVAILABLE, f"database write failed: {exc}") from exc

    def read(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        try:
            return self.conn().execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as exc:
            raise FvsError(ErrorCode.STORE_UNAVAILABLE, f"database read failed: {exc}") from exc

    def stream(self, sql: str, params: Sequence[object], batch: int) -> Iterator[list[Row]]:
        try:
            cursor = self.conn().execute(sql, tuple(params))
            while rows := cursor.fetchmany(batch):
                yield rows
        except sqlite3.Error as exc:
            raise FvsError(ErrorCode.STORE_UNAVAILABLE, f"database read failed: {exc}") from exc

    def is_empty(self) -> bool:
        return not self.read("SELECT 1 FROM sqlite_master WHERE type = 'table' LIMIT 1")

    def insert_new(self, table: str, columns: Sequence[str], rows: Sequence[Row]) -> int:
        marks = ", ".join("?" * len(columns))
        with self.tx() as tx:
            size_for_bulk(tx, len(rows))
            return tx.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
                " ON CONFLICT DO NOTHING",
                rows,
            )

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()
