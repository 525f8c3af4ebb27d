"""A SQLite database in WAL mode with one connection per thread: the plumbing both the
registry and the access store share."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fvs.errors import ErrorCode, FvsError


class Database:
    def __init__(self, path: Path, schema: str, page_size: int = 4096) -> None:
        self.path = path
        self.page_size = page_size
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FvsError(
                ErrorCode.STORE_UNAVAILABLE, f"cannot create data directory {path.parent}: {exc}"
            ) from exc
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        try:
            self.conn().executescript(schema)
        except sqlite3.Error as exc:
            raise FvsError(
                ErrorCode.STORE_UNAVAILABLE, f"cannot initialise the database {path}: {exc}"
            ) from exc

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
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE ... COMMIT, rolled back on any error)."""
        conn = self.conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.IntegrityError as exc:
            raise FvsError(ErrorCode.ALREADY_EXISTS, f"already exists: {exc}") from exc
        except sqlite3.Error as exc:
            raise FvsError(ErrorCode.STORE_UNAVAILABLE, f"database write failed: {exc}") from exc

    def read(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        try:
            return self.conn().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise FvsError(ErrorCode.STORE_UNAVAILABLE, f"database read failed: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()
