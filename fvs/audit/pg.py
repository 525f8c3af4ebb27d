"""The PostgreSQL backend of the audit trail: one global hash chain shared by every server.

Group commit in two layers. In a process, callers queue their records; the first caller to find
no commit in progress leads: it takes everything queued (up to MAX_BATCH) and writes it in ONE
transaction, so N threads share one commit, then hands the lead to the next waiter
(leader/follower: no extra thread, no hand-off when a caller is alone). Across processes, the
chain is linked under the row lock of the one-row ``audit_head`` table (``SELECT ... FOR
UPDATE``): a batch reads the head, chains its records after it, inserts them and moves the head
with its HMAC in the same transaction, then commits (``synchronous_commit = on``: durable
before any caller is answered). Servers take turns per batch, not per record, so they do not
serialise on one flush; the chain stays one total order that ``verify`` checks record by
record.

The chain key never lives in the database: the head row holds its id and an HMAC with it, so
emptying the table or deleting its newest rows leaves an anchor that names the records missing,
and nobody without the key can move the anchor back.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from fvs.audit.chain import (
    GENESIS,
    ChainCheck,
    Head,
    bound_record,
    canonical,
    chain_hash,
    key_id,
    unavailable,
)
from fvs.errors import ConfigError, FvsError

log = logging.getLogger(__name__)

MAX_BATCH = 512
APPEND_TIMEOUT_S = 10.0


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SET synchronous_commit TO on")  # a commit is on disk before it returns
    conn.commit()


def _time(record: dict[str, Any]) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(str(record["time"]))
        return when if when.tzinfo else when.replace(tzinfo=dt.UTC)
    except (KeyError, ValueError):
        return dt.datetime.now(dt.UTC)


def _nothing() -> None:
    pass


@dataclass(eq=False)
class _Waiter:
    """One caller's record in the queue; ``done`` is set with its entry or error, or with
    neither when the caller is handed the lead."""

    record: dict[str, Any]
    done: threading.Event = field(default_factory=threading.Event)
    entry: dict[str, Any] | None = None
    error: FvsError | None = None
    abandoned: bool = False


class PgAuditTrail:
    backend = "postgresql"

    def __init__(self, dsn: str, key: bytes, *, pool_size: int = 3) -> None:
        self.key = key
        self.key_id = key_id(key)
        self._queue: list[_Waiter] = []
        self._lock = threading.Lock()
        self._flushing = False  # a caller is committing a batch (the leader)
        self._closing = False
        self._state = ""  # a failed start check: the trail must not be extended
        self._last_error = ""  # the last flush failed (clears on the next success)
        try:
            self._pool = ConnectionPool(
                dsn,
                min_size=1,
                max_size=pool_size,
                configure=_configure,
                open=True,
                timeout=APPEND_TIMEOUT_S,
                name="fvs-audit",
            )
            self._pool.wait(timeout=APPEND_TIMEOUT_S)
        except (psycopg.Error, PoolTimeout) as exc:
            raise unavailable(f"cannot reach the audit database: {exc}") from exc
        try:
            self._state = self._start_check()
        except psycopg.errors.UndefinedTable as exc:
            self._pool.close()
            raise ConfigError(
                "the audit tables are missing from this database: run `fvs db migrate "
                "--store URL` first"
            ) from exc
        except psycopg.Error as exc:
            self._state = f"cannot check the audit trail: {exc}"
        if self._state:
            log.error("audit trail refuses to be extended: %s", self._state)

    # -- state ------------------------------------------------------------------------------

    @property
    def state(self) -> str:
        return self._state or self._last_error or ("closed" if self._closing else "")

    def healthy(self) -> bool:
        return not self.state

    def close(self) -> None:
        with self._lock:
            if self._closing:
                return
            self._closing = True
        deadline = time.monotonic() + APPEND_TIMEOUT_S
        while self._flushing and time.monotonic() < deadline:
            time.sleep(0.01)  # the batch in flight commits or fails first
        self._pool.close()

    def _check_head(self, row: tuple[Any, ...] | None, last: tuple[Any, ...] | None) -> str:
        """Is the head row genuine and does it match the last record? A problem or ""."""
        if row is None:
            return "the audit head row is missing"
        seq, hash_, kid, mac = int(row[0]), str(row[1]), str(row[2]), str(row[3])
        last_seq = int(last[0]) if last else 0
        if not kid:
            if seq == 0 and last_seq == 0:
                return ""  # a new trail; the first append claims it with our key
            return (
                f"the audit head carries no key id but records exist up to seq {last_seq}: "
                "the anchor was reset"
            )
        if kid != self.key_id:
            return (
                f"this trail is chained with another key (id {kid}, ours {self.key_id}): "
                "every server must use the same audit-chain key"
            )
        if not Head(seq, hash_).valid(self.key, mac):
            return "the audit head fails its key check: forged or edited"
        if seq > last_seq:
            return (
                f"{seq - last_seq} records missing from the end (anchored seq {seq}, "
                f"last {last_seq})"
            )
        if seq < last_seq:
            return f"records after the anchored seq {seq} up to {last_seq}: written around FVS"
        if last is not None and str(last[1]) != hash_:
            return f"the anchored record seq {seq} was changed"
        return ""

    def _start_check(self) -> str:
        # One statement, one snapshot: a batch committed by another server cannot fall
        # between reading the head and reading the last record.
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT h.seq, h.hash, h.key_id, h.mac, r.seq, r.hash FROM audit_head h "
                "LEFT JOIN LATERAL (SELECT seq, hash FROM audit_records ORDER BY seq DESC "
                "LIMIT 1) r ON true WHERE h.id = 1"
            ).fetchone()
            conn.rollback()
        if row is None:
            return self._check_head(None, None)
        return self._check_head(row[:4], row[4:] if row[4] is not None else None)

    # -- writing ----------------------------------------------------------------------------

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        """Chain ``record`` in the next group commit; return once it is committed."""
        return self.append_all([record])[0]

    def append_deferred(self, record: dict[str, Any]) -> tuple[dict[str, Any], Callable[[], None]]:
        """A commit is the flush: ``record`` is committed now, and nothing is left to do."""
        return self.append(record), _nothing

    def append_all(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Queue ``records`` together (one batch unless MAX_BATCH splits them); return once
        every one is committed."""
        if self._state:
            raise unavailable(self._state)
        mine = [_Waiter(bound_record(record)) for record in records]
        with self._lock:
            if self._closing:
                raise unavailable("the audit trail is closed")
            self._queue.extend(mine)
            lead = not self._flushing
            self._flushing = True
        if lead:
            self._lead()
        deadline = time.monotonic() + APPEND_TIMEOUT_S
        entries: list[dict[str, Any]] = []
        failed: FvsError | None = None
        for me in mine:  # every one waited for: one of them may be handed the lead
            try:
                entries.append(self._wait(me, deadline))
            except FvsError as exc:
                failed = failed or exc
        if failed is not None:
            raise failed
        return entries

    def _wait(self, me: _Waiter, deadline: float) -> dict[str, Any]:
        while True:
            if not me.done.wait(max(0.0, deadline - time.monotonic())):
                with self._lock:
                    if not me.done.is_set():
                        me.abandoned = True  # never handed the lead from now on
                        raise unavailable("the audit database did not commit in time")
            if me.entry is not None:
                return me.entry
            if me.error is not None:
                raise me.error
            me.done.clear()  # handed the lead: commit the queue, our own record with it
            self._lead()

    def _lead(self) -> None:
        """Commit one batch of everything queued (up to MAX_BATCH); then hand the lead to the
        first waiter still queued, so no caller flushes for others for long."""
        while True:
            with self._lock:
                batch = self._queue[:MAX_BATCH]
                del self._queue[:MAX_BATCH]
            if batch:
                self._flush(batch)
            with self._lock:
                if not self._queue:
                    self._flushing = False
                    return
                heir = next((w for w in self._queue if not w.abandoned), None)
                if heir is not None:
                    heir.done.set()  # done without entry or error: "you lead now"
                    return

    def _flush(self, batch: list[_Waiter]) -> None:
        try:
            entries = self._commit([w.record for w in batch])
        except Exception as exc:  # every waiter must get an answer
            detail = str(exc) if isinstance(exc, psycopg.Error) else repr(exc)
            self._last_error = f"the audit database refused the batch: {detail}"
            log.error("audit flush failed: %s", detail)
            error = unavailable(self._last_error)
            for waiter in batch:
                waiter.error = error
                waiter.done.set()
            return
        self._last_error = ""
        for waiter, entry in zip(batch, entries, strict=True):
            waiter.entry = entry
            waiter.done.set()

    def _commit(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if self._state:
            raise RuntimeError(self._state)
        with self._pool.connection() as conn, conn.transaction():
            row = conn.execute(
                "SELECT seq, hash, key_id, mac FROM audit_head WHERE id = 1 FOR UPDATE"
            ).fetchone()
            last = conn.execute(
                "SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            problem = self._check_head(row, last)
            if problem:
                self._state = problem  # refuse to extend a trail that fails its check
                raise RuntimeError(problem)
            assert row is not None
            seq, prev = int(row[0]), str(row[1])
            entries, rows = [], []
            for record in records:
                seq += 1
                entry = {**record, "seq": seq, "prev": prev}
                entry["hash"] = prev = chain_hash(self.key, prev, entry)
                entries.append(entry)
                agency = str(entry.get("agency", ""))
                rows.append((seq, _time(entry), agency, prev, canonical(entry).decode()))
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO audit_records (seq, at, agency, hash, record) "
                    "VALUES (%s, %s, %s, %s, %s)",
                    rows,
                )
            conn.execute(
                "UPDATE audit_head SET seq = %s, hash = %s, key_id = %s, mac = %s, "
                "updated_at = now() WHERE id = 1",
                (seq, prev, self.key_id, Head(seq, prev).mac(self.key)),
            )
        return entries

    # -- reading ----------------------------------------------------------------------------

    def records(self, agency: str | None = None) -> Iterator[dict[str, Any]]:
        query = "SELECT record FROM audit_records"
        params: tuple[Any, ...] = ()
        if agency is not None:
            query += " WHERE agency = %s"
            params = (agency,)
        with (
            self._pool.connection() as conn,
            conn.transaction(),
            conn.cursor(name="fvs_audit_read") as cur,
        ):
            cur.itersize = 2000
            cur.execute(query + " ORDER BY seq", params)
            for (text,) in cur:
                yield json.loads(text)

    def verify(self) -> ChainCheck:
        """Every record, in order, against the chain; then the anchor against the end."""
        prev, count = GENESIS, 0
        with (
            self._pool.connection() as conn,
            conn.transaction(),
            conn.cursor(name="fvs_audit_verify") as cur,
        ):
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            head = conn.execute(
                "SELECT seq, hash, key_id, mac FROM audit_head WHERE id = 1"
            ).fetchone()
            anchored = int(head[0]) if head else 0
            cur.itersize = 2000
            cur.execute("SELECT seq, hash, record FROM audit_records ORDER BY seq")
            for position, (seq, column_hash, text) in enumerate(cur, start=1):
                expected = count + 1

                def bad(
                    problem: str, at_seq: int, pos: int = position, intact: int = count
                ) -> ChainCheck:
                    return ChainCheck(False, intact, pos, at_seq, problem, anchored_seq=anchored)

                if seq != expected:
                    what = "missing records before it" if seq > expected else "out of order"
                    return bad(f"seq {seq} where {expected} was due: {what}", int(seq))
                try:
                    record = json.loads(text)
                    claimed, claimed_prev = str(record["hash"]), str(record["prev"])
                    inner_seq = int(record["seq"])
                except (ValueError, KeyError, TypeError):
                    return bad("unreadable record", int(seq))
                if inner_seq != seq or column_hash != claimed:
                    return bad("the row's columns do not match its record", int(seq))
                if claimed_prev != prev:
                    return bad("prev does not match the record before", int(seq))
                if not hmac.compare_digest(claimed, chain_hash(self.key, prev, record)):
                    return bad("hash does not match the content: edited or forged", int(seq))
                prev, count = claimed, count + 1
        last = (count, prev) if count else None
        problem = self._check_head(head, last)
        if problem:
            missing = anchored - count if anchored > count else 0
            hint = (
                "the cut records cannot be recovered here; `fvs audit repair --accept-loss` "
                "records the loss in the trail and re-anchors it"
                if missing
                else ""
            )
            return ChainCheck(
                False, count, 0, 0, problem, missing=missing, anchored_seq=anchored, hint=hint
            )
        return ChainCheck(True, count, anchored_seq=anchored)

    def repair(self, accept_loss: bool) -> tuple[bool, str]:
        """Re-anchor at the last intact record (only with ``accept_loss``: records are lost).
        A broken chain is never repaired. There are no torn records: rows are transactional."""
        check = self.verify()
        if check.ok:
            return True, "nothing to repair"
        if check.first_bad_seq:
            return False, f"not repaired: {check.describe()} (an edited chain is evidence)"
        if not accept_loss:
            return False, (
                f"{check.problem}: rerun with --accept-loss to re-anchor at seq {check.records}"
            )
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SELECT 1 FROM audit_head WHERE id = 1 FOR UPDATE")
            last = conn.execute(
                "SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            seq, hash_ = (int(last[0]), str(last[1])) if last else (0, GENESIS)
            conn.execute(
                "UPDATE audit_head SET seq = %s, hash = %s, key_id = %s, mac = %s, "
                "updated_at = now() WHERE id = 1",
                (seq, hash_, self.key_id, Head(seq, hash_).mac(self.key)),
            )
        self._state = ""
        lost = f" ({check.missing} records lost)" if check.missing else ""
        return True, f"re-anchored the chain at seq {seq}{lost}"
