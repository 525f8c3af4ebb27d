"""The embedded audit backend: an append-only, keyed hash chain of JSON lines in ``audit.jsonl``,
with its head anchored in a separate keyed file.

Each line is one record with ``seq`` (1, 2, ...), ``prev`` (the previous record's hash) and
``hash`` = HMAC-SHA256(chain key, prev + canonical JSON of the record without ``hash``).
Editing, deleting, inserting or reordering records breaks the chain at the first record
touched, and without the key a forger cannot recompute it.

Cutting the end is caught by the *head file* (``keys/audit-chain.head`` in a data directory,
apart from the log): two fixed 256-byte slots, written alternately, each holding the last
durable record's (seq, hash, byte offset) and an HMAC over them. Every flush writes the log
first, then the head, then answers: every acknowledged record is at or before the anchor, so a
log that ends before the anchor has lost records, and the count is known. A record half-written
by a killed process lies beyond the anchor (it was never acknowledged): it is moved aside to an
evidence file, never deleted, and the chain carries on. Several processes may append
(``flock``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hmac
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from fvs.audit.chain import (
    GENESIS,
    ChainCheck,
    Head,
    bound_record,
    canonical,
    chain_hash,
    unavailable,
)
from fvs.observability import hooks

log = logging.getLogger(__name__)

LOG_FILE = "audit.jsonl"
HEAD_FILE = "audit.head"
SLOT_BYTES = 256
_CHUNK = 64 * 1024
REPAIR_HINT = "run `fvs audit repair` (it moves the torn bytes aside and re-anchors the chain)"

# Kept for callers that imported them from here.
__all__ = [
    "GENESIS",
    "LOG_FILE",
    "AuditLog",
    "ChainCheck",
    "canonical",
    "chain_hash",
    "read_records",
    "verify_chain",
]


# -- reading the log ----------------------------------------------------------------------


def last_line(fd: int, end: int) -> tuple[int, bytes]:
    """The line that ends with the newline at byte ``end - 1``: (its start, its bytes without
    the newline). Reads backwards in chunks, so a record of any size is found whole."""
    pos = end - 1
    parts: list[bytes] = []
    start = 0
    while pos > 0:
        step = min(_CHUNK, pos)
        data = os.pread(fd, step, pos - step)
        cut = data.rfind(b"\n")
        if cut >= 0:
            parts.append(data[cut + 1 :])
            start = pos - step + cut + 1
            break
        parts.append(data)
        pos -= step
    return start, b"".join(reversed(parts))


def torn_start(fd: int, size: int) -> int:
    """Where a final line without its newline (a torn record) starts; ``size`` when none."""
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return size
    start, _ = last_line(fd, size + 1)  # as if the missing newline were there
    return start


def _record_at(fd: int, end: int, key: bytes) -> dict[str, Any]:
    """The record whose line ends at byte ``end`` (newline included), its own hash checked."""
    if end <= 0 or os.pread(fd, 1, end - 1) != b"\n":
        raise ValueError(f"no record ends at byte {end}")
    _, raw = last_line(fd, end)
    record = json.loads(raw)
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    int(record["seq"])
    if not hmac.compare_digest(str(record["hash"]), chain_hash(key, str(record["prev"]), record)):
        raise ValueError("its hash does not match its content")
    return record


def _lines_upto(handle: BinaryIO, end: int) -> Iterator[bytes]:
    """The lines of ``handle`` within its first ``end`` bytes (the last may lack its newline)."""
    left = end
    while left > 0:
        raw = handle.readline(left)
        if not raw:
            return
        left -= len(raw)
        yield raw


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """Every complete record (a torn last line, not newline-terminated, is left out)."""
    with path.open("rb") as handle:
        for raw in handle:
            if raw.endswith(b"\n") and raw.strip():
                yield json.loads(raw)


# -- the head anchor ----------------------------------------------------------------------


def _parse_slot(raw: bytes, key: bytes) -> Head | None:
    try:
        data = json.loads(raw.strip(b" \n\0") or b"null")
        if not isinstance(data, dict):
            return None
        head = Head(int(data["seq"]), str(data["hash"]), int(data["size"]))
        return head if head.valid(key, str(data["mac"])) else None
    except (ValueError, KeyError, TypeError):
        return None


def _read_slots(fd: int, key: bytes) -> tuple[Head | None, int, bool]:
    """(best head, its slot, whether a written slot fails its key check). Both slots must be
    genuine or empty: falling back to the older slot would let anyone who breaks the newer one
    cut the last flush's records."""
    raw = os.pread(fd, 2 * SLOT_BYTES, 0)
    best: Head | None = None
    slot, forged = -1, False
    for i in (0, 1):
        chunk = raw[i * SLOT_BYTES : (i + 1) * SLOT_BYTES]
        if not chunk.strip(b" \n\0"):
            continue
        head = _parse_slot(chunk, key)
        if head is None:
            forged = True
        elif best is None or head.seq > best.seq:
            best, slot = head, i
    return best, slot, forged


def _slot_bytes(head: Head, key: bytes) -> bytes:
    body = json.dumps(
        {"seq": head.seq, "hash": head.hash, "size": head.size, "mac": head.mac(key)},
        separators=(",", ":"),
    ).encode()
    return body.ljust(SLOT_BYTES - 1) + b"\n"


def read_head(path: Path, key: bytes) -> tuple[Head | None, str]:
    """(the anchored head or None when there is none, a problem or "")."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None, ""
    try:
        head, _, forged = _read_slots(fd, key)
    finally:
        os.close(fd)
    if forged:
        return None, (
            f"the head anchor {path} fails its key check (forged, damaged or made with another key)"
        )
    return head, ""


class HeadFile:
    def __init__(self, path: Path, key: bytes) -> None:
        self.path = path
        self.key = key
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def advance(self, head: Head) -> None:
        """Anchor ``head`` unless a later one is anchored already (another process)."""
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        try:
            best, slot, _ = _read_slots(self.fd, self.key)
            if best is not None and best.seq >= head.seq:
                return
            target = 1 - slot if slot >= 0 else 0
            self._put(target, head)
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def reset(self, head: Head) -> None:
        """Set the anchor to ``head`` even backwards (repair, new trail): both slots."""
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        try:
            self._put(0, head)
            self._put(1, head)
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def _put(self, slot: int, head: Head) -> None:
        data = _slot_bytes(head, self.key)
        if os.pwrite(self.fd, data, slot * SLOT_BYTES) != len(data):
            raise OSError("short write of the audit head")
        os.fdatasync(self.fd)


# -- the writer ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TornTail:
    offset: int
    length: int
    evidence: Path


def _set_aside(fd: int, path: Path, start: int, size: int) -> TornTail:
    """Copy bytes [start, size) of the log to an evidence file, then cut them off the log."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    evidence = path.with_name(f"{path.name}.torn-{stamp}-at-{start}")
    data = os.pread(fd, size - start, start)
    out = os.open(evidence, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(out, data)
        os.fsync(out)
    finally:
        os.close(out)
    os.ftruncate(fd, start)
    os.fsync(fd)
    log.warning(
        "audit trail %s: a torn last record (%d bytes at offset %d, never acknowledged) was "
        "moved to %s",
        path,
        size - start,
        start,
        evidence,
    )
    return TornTail(start, size - start, evidence)


class AuditLog:
    """The file backend of the audit trail (see the module docstring)."""

    backend = "file"

    def __init__(self, folder: Path, key: bytes, head_path: Path | None = None) -> None:
        self.path = folder / LOG_FILE
        self.key = key
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._size = -1
        self._seq = 0
        self._prev = GENESIS
        self._durable = 0  # bytes of the file known to be on disk and anchored
        self._failed = False
        self._state = ""  # why this trail must not be extended ("" = it may)
        self.repaired: TornTail | None = None
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            self.head = HeadFile(head_path or folder / HEAD_FILE, key)
        except OSError as exc:
            raise unavailable(f"cannot open {self.path}: {exc}") from exc
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                self._state = self._start_check()
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        except OSError as exc:
            self._state = f"cannot check the audit trail: {exc}"
        if self._state:
            log.error("audit trail %s refuses to be extended: %s", self.path, self._state)

    # The state the health check reads.
    @property
    def state(self) -> str:
        if self._state:
            return self._state
        if self._failed:
            return "an earlier flush of the audit log failed"
        if self._fd < 0:
            return "the audit log is closed"
        return ""

    def healthy(self) -> bool:
        return not self.state

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            self.head.close()

    def _start_check(self) -> str:
        """Check the log against its anchor; set a torn tail aside. Returns a problem or ""."""
        head, problem = read_head(self.head.path, self.key)
        if problem:
            return problem
        size = os.fstat(self._fd).st_size
        torn = torn_start(self._fd, size)
        if torn < size:
            if head is not None and torn < head.size:
                return (
                    f"the log ends in a broken record at offset {torn}, inside the anchored "
                    f"part (anchor at byte {head.size}): cut or damaged"
                )
            self.repaired = _set_aside(self._fd, self.path, torn, size)
            size = torn
        if size == 0:
            if head is not None and head.seq > 0:
                return (
                    f"the audit log is empty but its anchor names {head.seq} records: "
                    f"{head.seq} records missing"
                )
            if head is None:
                self.head.reset(Head(0, GENESIS, 0))  # a new trail, anchored from its start
            self._size = 0
            return ""
        try:
            last = _record_at(self._fd, size, self.key)
        except (ValueError, KeyError, TypeError) as exc:
            return f"the last audit record is corrupt: {exc}"
        if head is None:
            return (
                f"the audit log holds records up to seq {last['seq']} but has no head anchor "
                f"at {self.head.path}: run `fvs audit verify`, then `fvs audit repair "
                "--accept-loss` to anchor what is there"
            )
        if head.seq > int(last["seq"]):
            missing = head.seq - int(last["seq"])
            return (
                f"{missing} records missing from the end (anchored seq {head.seq}, "
                f"last seq {last['seq']})"
            )
        if head.seq > 0:
            try:
                anchored = _record_at(self._fd, head.size, self.key)
                same = int(anchored["seq"]) == head.seq and anchored["hash"] == head.hash
            except (ValueError, KeyError, TypeError):
                same = False
            if not same:
                return f"the anchored record seq {head.seq} was changed or moved"
        self._size = size
        self._seq, self._prev = int(last["seq"]), str(last["hash"])
        return ""

    def _sync_tail(self, size: int) -> None:
        """Re-read the last record when another process appended since we last wrote."""
        if size == self._size:
            return
        if size < self._size:
            self._state = f"the audit log shrank from {self._size} to {size} bytes while open"
            raise unavailable(self._state)
        torn = torn_start(self._fd, size)
        if torn < size:  # another writer was killed mid-record: set it aside, carry on
            head, _ = read_head(self.head.path, self.key)
            if head is not None and torn < head.size:
                self._state = f"the log ends in a broken record inside its anchored part ({torn})"
                raise unavailable(self._state)
            self.repaired = _set_aside(self._fd, self.path, torn, size)
            size = torn
        self._seq, self._prev = 0, GENESIS
        if size > 0:
            try:
                last = _record_at(self._fd, size, self.key)
                self._seq, self._prev = int(last["seq"]), str(last["hash"])
            except (ValueError, KeyError, TypeError) as exc:
                raise unavailable(f"the last audit record is corrupt: {exc}") from exc
        self._size = size

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        """Chain, write, flush and anchor ``record``; raise AUDIT_UNAVAILABLE if it is not.

        The record is bounded first (oversized values become length + SHA-256). Group commit:
        the chain lock covers only the write; the flush that follows makes every record
        written so far durable and anchors the newest, so concurrent appends share one flush.
        """
        start = time.perf_counter()
        entry, end = self._write(bound_record(record))
        written = time.perf_counter()
        hooks.stage("audit_append", written - start)
        self._sync(end)
        hooks.stage("audit_flush", time.perf_counter() - written)
        return entry

    def append_deferred(self, record: dict[str, Any]) -> tuple[dict[str, Any], Callable[[], None]]:
        """Chain and write ``record``; the returned function flushes and anchors it (group
        commit: it returns at once if another flush already covered the record)."""
        start = time.perf_counter()
        entry, end = self._write(bound_record(record))
        hooks.stage("audit_append", time.perf_counter() - start)

        def flush() -> None:
            began = time.perf_counter()
            self._sync(end)
            hooks.stage("audit_flush", time.perf_counter() - began)

        return entry, flush

    def append_all(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Chain and write ``records``, then one flush and anchor for them all."""
        start = time.perf_counter()
        entries, end = [], 0
        for record in records:
            entry, end = self._write(bound_record(record))
            entries.append(entry)
        written = time.perf_counter()
        hooks.stage("audit_append", written - start)
        self._sync(end)
        hooks.stage("audit_flush", time.perf_counter() - written)
        return entries

    def _sync(self, end: int) -> None:
        """Return once the file is durable and anchored up to byte ``end``."""
        if self._durable >= end:
            return
        with self._sync_lock:
            if self._durable >= end:  # another writer's flush covered this record
                return
            if self._failed:
                raise unavailable("an earlier flush of the audit log failed")
            with self._lock:  # everything written so far is covered by this flush
                target, head = self._size, Head(self._seq, self._prev, self._size)
            try:
                os.fsync(self._fd)
                self.head.advance(head)
            except OSError as exc:
                self._failed = True  # fail closed from now on: durability is unknown
                raise unavailable(f"flush failed: {exc}") from exc
            self._durable = max(self._durable, target)

    def _write(self, record: dict[str, Any]) -> tuple[dict[str, Any], int]:
        with self._lock:
            if self._fd < 0:
                raise unavailable("the audit log is closed")
            if self._state:
                raise unavailable(self._state)
            if self._failed:
                raise unavailable("an earlier flush of the audit log failed")
            try:
                if os.stat(self.path).st_ino != os.fstat(self._fd).st_ino:
                    raise unavailable(f"{self.path} was removed or replaced")
            except OSError as exc:
                raise unavailable(f"{self.path} is gone: {exc}") from exc
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            except OSError as exc:
                raise unavailable(f"cannot lock the audit log: {exc}") from exc
            try:
                size = os.fstat(self._fd).st_size
                self._sync_tail(size)
                size = self._size
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
                    raise unavailable(f"write failed: {exc}") from exc
                self._size = size + len(line)
                self._seq, self._prev = entry["seq"], entry["hash"]
                return entry, self._size
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def records(self, agency: str | None = None) -> Iterator[dict[str, Any]]:
        for record in read_records(self.path):
            if agency is None or record.get("agency") == agency:
                yield record

    def verify(self) -> ChainCheck:
        return verify_chain(self.path, self.key, self.head.path)


# -- checking and repairing ---------------------------------------------------------------


def verify_chain(
    path: Path, key: bytes, head_path: Path | None = None, *, lock: bool = True
) -> ChainCheck:
    """Walk the whole chain; name the first record that is edited, missing, extra or moved,
    a torn last record, and (with ``head_path``) records cut from the end. ``lock=False``
    when the caller holds the log's lock already."""
    head: Head | None = None
    if head_path is not None:
        head, problem = read_head(head_path, key)
        if problem:
            return ChainCheck(False, 0, problem=problem)
    anchored = head.seq if head else 0

    def bad(count: int, line: int, seq: int, problem: str, **kw: Any) -> ChainCheck:
        return ChainCheck(False, count, line, seq, problem, anchored_seq=anchored, **kw)

    prev, count, offset, line_no = GENESIS, 0, 0, 0
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        if anchored:
            problem = f"the audit log is gone; {anchored} records missing"
            return bad(0, 0, 0, problem, missing=anchored)
        raise
    with handle:
        # The end as of now, taken between two writers' appends (they write under LOCK_EX),
        # after the anchor was read: a record being written meanwhile is neither seen half
        # nor anchored beyond what is checked.
        if lock:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
        try:
            end = os.fstat(handle.fileno()).st_size
        finally:
            if lock:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        for line_no, raw in enumerate(_lines_upto(handle, end), start=1):
            expected_seq = count + 1
            if not raw.endswith(b"\n"):
                inside = head is not None and offset < head.size
                return bad(
                    count,
                    line_no,
                    expected_seq,
                    f"torn last record ({len(raw)} bytes without their newline, at byte "
                    f"{offset}): "
                    + (
                        "inside the anchored part, so cut or damaged"
                        if inside
                        else "written when a process was killed, never acknowledged"
                    ),
                    torn_bytes=len(raw),
                    hint="" if inside else REPAIR_HINT,
                )
            offset += len(raw)
            try:
                record = json.loads(raw)
                seq = int(record["seq"])
                claimed = str(record["hash"])
                claimed_prev = str(record["prev"])
            except (ValueError, KeyError, TypeError, OverflowError):  # OverflowError: seq 1e999
                return bad(count, line_no, expected_seq, "unreadable record")
            if seq != expected_seq:
                what = "missing records before it" if seq > expected_seq else "out of order"
                return bad(count, line_no, seq, f"seq {seq} where {expected_seq} was due: {what}")
            if claimed_prev != prev:
                return bad(count, line_no, seq, "prev does not match the record before")
            if not hmac.compare_digest(claimed.encode(), chain_hash(key, prev, record).encode()):
                return bad(count, line_no, seq, "hash does not match the content: edited or forged")
            if (
                head is not None
                and seq == head.seq
                and (claimed != head.hash or offset != head.size)
            ):
                return bad(count, line_no, seq, "the anchored record was changed or moved")
            prev, count = claimed, count + 1
    if head_path is not None and head is None and count > 0:
        return bad(
            count,
            0,
            0,
            f"no head anchor at {head_path}: the end of the trail cannot be checked",
            hint="if this trail predates anchoring, `fvs audit repair --accept-loss` anchors "
            "what is there",
        )
    if anchored > count:
        return bad(
            count,
            line_no + 1,
            count + 1,
            f"{anchored - count} records missing from the end (the anchor names seq "
            f"{anchored}, the log ends at seq {count})",
            missing=anchored - count,
            hint="the cut records cannot be recovered here; `fvs audit repair --accept-loss` "
            "records the loss in the trail and re-anchors it",
        )
    return ChainCheck(True, count, anchored_seq=anchored)


def repair(path: Path, key: bytes, head_path: Path, accept_loss: bool) -> tuple[bool, str]:
    """Bring a trail that fails its check back to one that may be extended, keeping evidence.

    A torn last record beyond the anchor is moved to an evidence file (always allowed: it was
    never acknowledged). Records missing from the end, a missing anchor, or torn bytes inside
    the anchored part are a loss: only with ``accept_loss`` is the anchor moved back to what
    is there (the caller then appends a record stating the loss). An edited or reordered
    record is never repaired. Returns (repaired?, what was done or why not).
    """
    done: list[str] = []
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    heads = HeadFile(head_path, key)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        torn = torn_start(fd, size)
        head, problem = read_head(head_path, key)
        if torn < size:
            if head is not None and torn < head.size and not accept_loss:
                return False, (
                    f"the torn record at byte {torn} lies inside the anchored part: that is a "
                    "loss; rerun with --accept-loss to set it aside and re-anchor"
                )
            tail = _set_aside(fd, path, torn, size)
            done.append(f"moved the torn last record ({tail.length} bytes) to {tail.evidence}")
        check = verify_chain(path, key, None, lock=False)  # we hold the lock
        if not check.ok:
            return False, f"not repaired: {check.describe()} (an edited chain is evidence)"
        end = os.fstat(fd).st_size
        last = _record_at(fd, end, key) if end else None
        actual = Head(int(last["seq"]), str(last["hash"]), end) if last else Head(0, GENESIS, 0)
        if problem or head is None or head.seq > actual.seq:
            if (problem or head is not None or actual.seq > 0) and not accept_loss:
                why = problem or (
                    "no head anchor"
                    if head is None
                    else f"{head.seq - actual.seq} records missing from the end"
                )
                return False, f"{why}: rerun with --accept-loss to re-anchor at seq {actual.seq}"
            heads.reset(actual)
            lost = head.seq - actual.seq if head is not None and not problem else None
            done.append(
                f"re-anchored the chain at seq {actual.seq}"
                + (f" ({lost} records lost)" if lost else " (no earlier anchor to compare)")
            )
        elif head.seq < actual.seq:
            heads.advance(actual)
            done.append(f"anchored the records after seq {head.seq} up to seq {actual.seq}")
    finally:
        heads.close()
        os.close(fd)
    return True, "; ".join(done) if done else "nothing to repair"
