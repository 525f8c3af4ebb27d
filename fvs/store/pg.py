"""PostgreSQL behind the :class:`fvs.store.db.Database` interface: a psycopg 3 connection pool
that several servers may share one database through. The only module that imports psycopg.

Faults: a database that is down, a wrong password or a wrong database name fail the opening
with STORE_UNAVAILABLE and the server's own words; a connection that breaks mid-call (the
backend terminated, the server restarted) fails that call with STORE_UNAVAILABLE after its
transaction rolled back, and the pool checks connections before lending them, so the next
call reconnects by itself once the database answers again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
import psycopg.errors
from psycopg_pool import ConnectionPool, PoolTimeout

from fvs.errors import ErrorCode, FvsError
from fvs.store.db import Cursor, Row, Tx
from fvs.store.url import StoreLocation

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5
# How long a call waits for a pooled connection (all busy, or the database unreachable).
POOL_TIMEOUT_S = 5.0

_SQL_CACHE: dict[str, str] = {}


def pg_sql(sql: str) -> str:
    """``?`` placeholders as psycopg's ``%s`` (the stores never use ``?`` or ``%`` otherwise)."""
    out = _SQL_CACHE.get(sql)
    if out is None:
        out = _SQL_CACHE[sql] = sql.replace("%", "%%").replace("?", "%s")
    return out


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def unavailable(where: str, exc: BaseException, doing: str) -> FvsError:
    return FvsError(
        ErrorCode.STORE_UNAVAILABLE, f"PostgreSQL at {where}: {doing} failed: {_first_line(exc)}"
    )


class _PgTx:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[object] = ()) -> Cursor:
        return self.conn.execute(pg_sql(sql), tuple(params))

    def executemany(self, sql: str, rows: Any) -> int:
        with self.conn.cursor() as cur:
            cur.executemany(pg_sql(sql), rows)
            return cur.rowcount

    def script(self, sql: str) -> None:
        self.conn.execute(sql.encode())  # several statements: one simple query


class PgDatabase:
    backend = "postgresql"

    def __init__(self, location: StoreLocation, max_size: int = 8) -> None:
        if location.dsn is None:
            raise ValueError("not a PostgreSQL location")
        self.dsn = location.dsn
        self.where = location.redacted()
        # One direct connection first: its error says what is wrong (refused, password,
        # no such database) where the pool would only time out.
        try:
            psycopg.connect(self.dsn, connect_timeout=CONNECT_TIMEOUT_S).close()
        except psycopg.Error as exc:
            raise unavailable(self.where, exc, "connecting") from exc
        self.pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            self.dsn,
            min_size=1,
            max_size=max(2, max_size),
            kwargs={"connect_timeout": CONNECT_TIMEOUT_S},
            check=ConnectionPool.check_connection,
            timeout=POOL_TIMEOUT_S,
            # A failed reconnection is given up at once (no backoff): the next call tries
            # again, so service resumes with the first call after the database is back.
            reconnect_timeout=0,
            name="fvs",
            open=False,
        )
        self.pool.open(wait=True, timeout=CONNECT_TIMEOUT_S * 2)
        self._closed = threading.Event()

    @contextmanager
    def tx(self) -> Iterator[Tx]:
        try:
            with self.pool.connection() as conn, conn.transaction():
                yield _PgTx(conn)
        except psycopg.errors.IntegrityError as exc:
            raise FvsError(ErrorCode.ALREADY_EXISTS, f"already exists: {_first_line(exc)}") from exc
        except (psycopg.Error, PoolTimeout) as exc:
            raise unavailable(self.where, exc, "a write") from exc

    def read(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        try:
            with self.pool.connection() as conn:
                return conn.execute(pg_sql(sql), tuple(params)).fetchall()
        except (psycopg.Error, PoolTimeout) as exc:
            raise unavailable(self.where, exc, "a read") from exc

    def stream(self, sql: str, params: Sequence[object], batch: int) -> Iterator[list[Row]]:
        try:
            with (
                self.pool.connection() as conn,
                conn.transaction(),
                conn.cursor(name="fvs_stream") as cur,
            ):
                cur.itersize = batch
                cur.execute(pg_sql(sql), tuple(params))
                while rows := cur.fetchmany(batch):
                    yield rows
        except (psycopg.Error, PoolTimeout) as exc:
            raise unavailable(self.where, exc, "a read") from exc

    @contextmanager
    def _bulk(self) -> Iterator[tuple[psycopg.Connection[Any], psycopg.Cursor[Any]]]:
        """One bulk load's transaction: a uniqueness conflict ALREADY_EXISTS, any other
        failure STORE_UNAVAILABLE (rolled back: nothing half-written)."""
        try:
            with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                yield conn, cur
        except psycopg.errors.IntegrityError as exc:
            raise FvsError(ErrorCode.ALREADY_EXISTS, f"already exists: {_first_line(exc)}") from exc
        except (psycopg.Error, PoolTimeout) as exc:
            raise unavailable(self.where, exc, "a bulk load") from exc

    @staticmethod
    def _stage(
        conn: psycopg.Connection[Any],
        cur: psycopg.Cursor[Any],
        table: str,
        rows: Sequence[Row],
        columns: Sequence[str] | None = None,
    ) -> str:
        """COPY ``rows`` (of ``columns``, default all) into a temporary copy of ``table``
        dropped at commit; returns its name."""
        stage = f"stage_{table}"
        conn.execute(f"CREATE TEMP TABLE {stage} (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DROP")
        cols = f" ({', '.join(columns)})" if columns else ""
        with cur.copy(f"COPY {stage}{cols} FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return stage

    def bulk_add_citizens(self, citizens: Sequence[Row], templates: Sequence[Row]) -> int:
        """COPY citizen rows (and template rows for them) into staging tables, then insert
        those whose ID is new, in one transaction; returns the citizens inserted. Template
        rows of citizens that already existed are dropped (their history is not touched)."""
        with self._bulk() as (conn, cur):
            stage_c = self._stage(conn, cur, "citizens", citizens)
            stage_t = self._stage(conn, cur, "face_templates", templates)
            cur.execute(
                f"WITH new AS (INSERT INTO citizens SELECT * FROM {stage_c}"
                " ON CONFLICT DO NOTHING RETURNING citizen_id),"
                f" tpl AS (INSERT INTO face_templates SELECT t.* FROM {stage_t} t"
                " JOIN new USING (citizen_id) RETURNING 1)"
                " SELECT (SELECT count(*) FROM new), (SELECT count(*) FROM tpl)"
            )
            counts: Any = cur.fetchone()
            return int(counts[0]) if counts else 0

    def insert_new(self, table: str, columns: Sequence[str], rows: Sequence[Row]) -> int:
        cols = ", ".join(columns)
        with self._bulk() as (conn, cur):
            stage = self._stage(conn, cur, table, rows, columns)
            cur.execute(
                f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {stage} ON CONFLICT DO NOTHING"
            )
            return cur.rowcount

    def is_empty(self) -> bool:
        return not self.read(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() LIMIT 1"
        )

    def connect(self) -> psycopg.Connection[Any]:
        """A connection of its own, outside the pool (LISTEN)."""
        return psycopg.connect(self.dsn, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True)

    def close(self) -> None:
        self._closed.set()
        self.pool.close()
