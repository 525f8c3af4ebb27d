"""An append-only, keyed hash chain of JSON records in ``audit.jsonl``.

Each line is one record with ``seq`` (1, 2, ...), ``prev`` (the previous record's hash) and
``hash`` = HMAC-SHA256(chain key, prev + canonical JSON of the record without ``hash``).
Editing, deleting, inserting or reordering records breaks the chain at the first record
touched, and without the key a forger cannot recompute it. Records are written with
``fsync`` before ``append`` returns; several processes may append (``flock``).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import fcntl
import hashlib
import hmac
import io
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fvs.errors import ErrorCode, FvsError
from fvs.observability import hooks

LOG_FILE = "audit.jsonl"
GENESIS = "0" * 64
CSV_FIELDS = [
    "seq",
    "time",
    "agency",
    "system",
    "operation",
    "purpose",
    "consent_ref",
    "citizen",
    "outcome",
    "reason",
    "score",
    "similarity",
    "model",
    "request_id",
    "latency_ms",
    "conditions",
    "details",
    "prev",
    "hash",
]


def canonical(record: dict[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def chain_hash(key: bytes, prev: str, record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    return hmac.new(key, prev.encode() + b"\n" + canonical(body), hashlib.sha256).hexdigest()


def _unavailable(detail: str) -> FvsError:
    return FvsError(
        ErrorCode.AUDIT_UNAVAILABLE,
        "the audit trail cannot be written, so the call is refused",
        detail=detail[:200],
    )


class AuditLog:
    def __init__(self, folder: Path, key: bytes) -> None:
        self.path = folder / LOG_FILE
        self.key = key
        self._lock = threading.Lock()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise _unavailable(f"cannot open {self.path}: {exc}") from exc
        self._size = -1
        self._seq = 0
        self._prev = GENESIS
        self._sync_lock = threading.Lock()
        self._durable = 0  # bytes of the file known to be on disk
        self._failed = False

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def _sync_tail(self, size: int) -> None:
        """Re-read the last record when another process appended since we last wrote."""
        if size == self._size:
            return
        self._seq, self._prev = 0, GENESIS
        if size > 0:
            with self.path.open("rb") as handle:
                handle.seek(max(0, size - 65536))
                tail = handle.read(size - handle.tell()).splitlines()
            if not tail:
                raise _unavailable("the last audit record is unreadable")
            try:
                last = json.loads(tail[-1])
                self._seq, self._prev = int(last["seq"]), str(last["hash"])
            except (ValueError, KeyError, TypeError) as exc:
                raise _unavailable(f"the last audit record is corrupt: {exc}") from exc
        self._size = size

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        """Chain, write and fsync ``record``; raise AUDIT_UNAVAILABLE if it is not durable.

        Group commit: the chain lock covers only the write; the fsync that follows makes
        every record written so far durable, so concurrent appends share one flush.
        """
        start = time.perf_counter()
        entry, end = self._write(record)
        written = time.perf_counter()
        hooks.stage("audit_append", written - start)
        self._sync(end)
        hooks.stage("audit_flush", time.perf_counter() - written)
        return entry

    def _sync(self, end: int) -> None:
        """Return once the file is durable up to byte ``end``."""
        if self._durable >= end:
            return
        with self._sync_lock:
            if self._durable >= end:  # another writer's fsync covered this record
                return
            if self._failed:
                raise _unavailable("an earlier flush of the audit log failed")
            target = self._size  # everything written so far is covered by this fsync
            try:
                os.fsync(self._fd)
            except OSError as exc:
                self._failed = True  # fail closed from now on: durability is unknown
                raise _unavailable(f"flush failed: {exc}") from exc
            self._durable = max(self._durable, target)

    def _write(self, record: dict[str, Any]) -> tuple[dict[str, Any], int]:
        with self._lock:
            if self._fd < 0:
                raise _unavailable("the audit log is closed")
            if self._failed:
                raise _unavailable("an earlier flush of the audit log failed")
            try:
                if os.stat(self.path).st_ino != os.fstat(self._fd).st_ino:
                    raise _unavailable(f"{self.path} was removed or replaced")
            except OSError as exc:
                raise _unavailable(f"{self.path} is gone: {exc}") from exc
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            except OSError as exc:
                raise _unavailable(f"cannot lock the audit log: {exc}") from exc
            try:
                size = os.fstat(self._fd).st_size
                self._sync_tail(size)
                entry = {**record, "seq": self._seq + 1, "prev": self._prev}
                entry["hash"] = chain_hash(self.key, self._prev, entry)
                line = canonical(entry) + b"\n"
                try:
                    written = os.write(self._fd, line)
                    if written != len(line):
                        raise OSError(f"short write ({written} of {len(line)} bytes)")
                except OSError as exc:
                    with contextlib.suppress(OSError):  # leave no half record behind
                        os.ftruncate(self._fd, size)
                    raise _unavailable(f"write failed: {exc}") from exc
                self._size = size + len(line)
                self._seq, self._prev = entry["seq"], entry["hash"]
                return entry, self._size
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)


@dataclass(frozen=True)
class ChainCheck:
    ok: bool
    records: int
    first_bad_line: int = 0  # 1-based line of the first bad record; 0 when ok
    first_bad_seq: int = 0
    problem: str = ""


def verify_chain(path: Path, key: bytes) -> ChainCheck:
    """Walk the whole chain; name the first record that is edited, missing, extra or moved."""
    prev, count = GENESIS, 0
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            expected_seq = count + 1
            try:
                record = json.loads(raw)
                seq = int(record["seq"])
                claimed = str(record["hash"])
                claimed_prev = str(record["prev"])
            except (ValueError, KeyError, TypeError, OverflowError):  # OverflowError: seq 1e999
                return ChainCheck(False, count, line_no, expected_seq, "unreadable record")
            if seq != expected_seq:
                what = "missing records before it" if seq > expected_seq else "out of order"
                return ChainCheck(
                    False, count, line_no, seq, f"seq {seq} where {expected_seq} was due: {what}"
                )
            if claimed_prev != prev:
                return ChainCheck(
                    False, count, line_no, seq, "prev does not match the record before"
                )
            if not hmac.compare_digest(claimed.encode(), chain_hash(key, prev, record).encode()):
                return ChainCheck(
                    False, count, line_no, seq, "hash does not match the content: edited or forged"
                )
            prev, count = claimed, count + 1
    return ChainCheck(True, count)


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    with path.open("rb") as handle:
        for raw in handle:
            if raw.strip():
                yield json.loads(raw)


def _in_window(
    record: dict[str, Any], since: dt.datetime | None, until: dt.datetime | None
) -> bool:
    when = dt.datetime.fromisoformat(record["time"])
    return (since is None or when >= since) and (until is None or when < until)


def export(
    path: Path, agency: str, since: dt.datetime | None, until: dt.datetime | None, fmt: str
) -> str:
    """The records of exactly one agency in [since, until), as JSON Lines or CSV."""
    rows = [
        r for r in read_records(path) if r.get("agency") == agency and _in_window(r, since, until)
    ]
    if fmt == "jsonl":
        return "".join(canonical(r).decode() + "\n" for r in rows)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({**r, "details": json.dumps(r.get("details", {}), ensure_ascii=False)})
    return out.getvalue()


def usage(path: Path, agency: str, month: str) -> Counter[tuple[str, str, str, str, str]]:
    """Calls of ``agency`` in ``month`` (YYYY-MM) by (day, system, purpose, operation, outcome)."""
    counts: Counter[tuple[str, str, str, str, str]] = Counter()
    for r in read_records(path):
        if r.get("agency") == agency and str(r.get("time", "")).startswith(month):
            counts[
                (r["time"][:10], r["system"], r.get("purpose", ""), r["operation"], r["outcome"])
            ] += 1
    return counts
