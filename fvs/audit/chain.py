"""What every audit backend shares: the record's canonical form, the keyed chain hash, the
bound on what one record may hold, the keyed head anchor and the per-agency pseudonym.

A record is hashed as HMAC-SHA256(chain key, prev + "\\n" + canonical JSON without ``hash``).
The *head anchor* is the last record's (seq, hash) kept apart from the records and keyed with
the same secret: cutting records from the end, or emptying the trail, leaves the anchor ahead
of what is left, and without the key nobody can move the anchor back.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from fvs.errors import ErrorCode, FvsError

GENESIS = "0" * 64

# Bounds on one record (defence in depth: the request layer bounds caller text first).
# A longer string is stored as its length and SHA-256, so an agency can still prove what it
# sent, but 100 KB of caller text never reaches the trail.
MAX_TEXT_CHARS = 1024
MAX_KEY_CHARS = 64
MAX_ITEMS = 64
MAX_DEPTH = 4
MAX_RECORD_BYTES = 32 * 1024
# Fields kept when a record is still over MAX_RECORD_BYTES after bounding each value.
_CORE_FIELDS = ("time", "agency", "system", "operation", "outcome", "reason", "request_id")


def canonical(record: dict[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def chain_hash(key: bytes, prev: str, record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    return hmac.new(key, prev.encode() + b"\n" + canonical(body), hashlib.sha256).hexdigest()


def unavailable(detail: str) -> FvsError:
    return FvsError(
        ErrorCode.AUDIT_UNAVAILABLE,
        "the audit trail cannot be written, so the call is refused",
        detail=detail[:200],
    )


def _digest(data: bytes, length: int) -> str:
    return f"<omitted: {length} chars, sha256 {hashlib.sha256(data).hexdigest()}>"


def _bound(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        if len(value) <= MAX_TEXT_CHARS:
            return value
        return _digest(value.encode("utf-8", "surrogatepass"), len(value))
    if depth >= MAX_DEPTH:
        text = json.dumps(value, sort_keys=True, default=str)
        return _digest(text.encode(), len(text))
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        keys = sorted(value, key=str)
        limit = MAX_ITEMS if depth else len(keys)  # the record's own fields are FVS's
        for k in keys[:limit]:
            name = str(k)
            if len(name) > MAX_KEY_CHARS:
                name = _digest(name.encode("utf-8", "surrogatepass"), len(name))
            out[name] = _bound(value[k], depth + 1)
        if len(keys) > limit:
            out["_omitted_items"] = len(keys) - limit
        return out
    if isinstance(value, list | tuple):
        items = [_bound(v, depth + 1) for v in list(value)[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            items.append(f"<omitted: {len(value) - MAX_ITEMS} more items>")
        return items
    return _bound(str(value), depth)


def bound_record(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with every value bounded; its canonical form is at most MAX_RECORD_BYTES."""
    bounded: dict[str, Any] = _bound(record, 0)
    size = len(canonical(bounded))
    if size <= MAX_RECORD_BYTES:
        return bounded
    whole = canonical(bounded)
    core = {k: bounded[k] for k in _CORE_FIELDS if k in bounded}
    core["oversized"] = {"bytes": size, "sha256": hashlib.sha256(whole).hexdigest()}
    return core


@dataclass(frozen=True)
class Head:
    """The anchored end of the chain: record ``seq`` has hash ``hash`` and (file backend)
    ends at byte ``size`` of the log."""

    seq: int
    hash: str
    size: int = 0

    def mac(self, key: bytes) -> str:
        message = f"fvs-audit-head\n{self.seq}\n{self.hash}\n{self.size}".encode()
        return hmac.new(key, message, hashlib.sha256).hexdigest()

    def valid(self, key: bytes, mac: str) -> bool:
        return hmac.compare_digest(self.mac(key), mac)


def key_id(key: bytes) -> str:
    """Names the chain key without revealing it (the PostgreSQL head row holds this)."""
    return hmac.new(key, b"fvs-audit-key-id", hashlib.sha256).hexdigest()[:16]


def pseudonym(key: bytes, agency: str, citizen: str) -> str:
    """The citizen as one agency's export shows it: HMAC(key, agency || citizen HMAC).

    Two agencies' exports cannot be joined on it; the authority (which holds the key and
    the trail) can still link every pseudonym back to the trail's global citizen HMAC.
    """
    if not citizen:
        return ""
    message = b"fvs-audit-pseudonym\n" + agency.encode() + b"\n" + citizen.encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class ChainCheck:
    ok: bool
    records: int
    first_bad_line: int = 0  # 1-based line (file) or position (database); 0 when ok
    first_bad_seq: int = 0
    problem: str = ""
    # Records the anchored head says existed beyond what is left (the end was cut).
    missing: int = 0
    # A record left half-written at the end by a killed process (file backend).
    torn_bytes: int = 0
    anchored_seq: int = 0
    hint: str = ""

    def describe(self) -> str:
        if self.ok:
            return (
                f"audit trail intact: {self.records} records "
                f"(anchored head at seq {self.anchored_seq})"
            )
        where = f" at line {self.first_bad_line}" if self.first_bad_line else ""
        seq = f" (record seq {self.first_bad_seq})" if self.first_bad_seq else ""
        text = (
            f"audit trail BROKEN{where}{seq}: {self.problem}; "
            f"{self.records} records before it are intact"
        )
        return text + (f". {self.hint}" if self.hint else "")
