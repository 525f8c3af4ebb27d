"""The audit trail's interface, its two backends chosen by the store URL, and what is read
from it (per-agency exports with pseudonyms, usage).

- ``sqlite:///DIR`` (the embedded default): ``DIR/audit/audit.jsonl`` with its head anchor in
  ``DIR/keys/audit-chain.head`` (``fvs.audit.log``).
- ``postgresql://...``: tables ``audit_records`` and ``audit_head`` (``fvs.audit.pg``), shared by
  every server on that database.

The chain key is a file in the data directory in both cases (``keys/audit-chain.key``); every
server writing one PostgreSQL trail needs the same key file.
"""

from __future__ import annotations

import csv
import datetime as dt
import getpass
import io
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from fvs.audit.chain import ChainCheck, canonical, pseudonym
from fvs.audit.keys import load_or_create_key
from fvs.audit.log import LOG_FILE, AuditLog
from fvs.audit.pg import PgAuditTrail
from fvs.store.url import StoreLocation

AUDIT_DIR = "audit"
KEYS_DIR = "keys"
KEY_NAME = "audit-chain"
HEAD_NAME = "audit-chain.head"

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


class AuditTrail(Protocol):
    """What the gate, the admin service and ``fvs audit`` need from a trail."""

    backend: str

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        """Chain ``record`` and return it (with seq, prev, hash) once it is durable; raise
        FvsError(AUDIT_UNAVAILABLE) otherwise, or while the trail fails its check."""
        ...

    def append_deferred(self, record: dict[str, Any]) -> tuple[dict[str, Any], Callable[[], None]]:
        """Chain and write ``record`` now; the returned function makes it durable (raising
        like :meth:`append`). The caller must call it before it acts on the record (answers
        the call). Lets the flush run on another thread than the one that wrote."""
        ...

    def append_all(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Chain ``records`` in order and return them once all are durable, with one flush
        (or commit) for the lot; raise like :meth:`append` (then none of them counts as
        recorded, though some may be)."""
        ...

    def records(self, agency: str | None = None) -> Iterator[dict[str, Any]]:
        """Every record (of one agency), in chain order."""
        ...

    def verify(self) -> ChainCheck:
        """Every record, the order, and the end against the anchored head."""
        ...

    @property
    def state(self) -> str:
        """Why the trail cannot be extended now ("" when it can): what health reads."""
        ...

    def healthy(self) -> bool: ...

    def close(self) -> None: ...


def audit_key(data_dir: Path) -> bytes:
    """The key the chain (and its anchor and pseudonyms) is made with; created on first use.
    It stays in the data directory, never in the database."""
    return load_or_create_key(Path(data_dir) / KEYS_DIR, KEY_NAME)


def head_path(data_dir: Path) -> Path:
    return Path(data_dir) / KEYS_DIR / HEAD_NAME


def log_dir(data_dir: Path) -> Path:
    return Path(data_dir) / AUDIT_DIR


def audit_path(data_dir: Path) -> Path:
    """The embedded (file) audit trail of a data directory."""
    return log_dir(data_dir) / LOG_FILE


def open_trail(location: StoreLocation, data_dir: Path, key: bytes | None = None) -> AuditTrail:
    """Open (and check) the trail at ``location``; keys from ``data_dir``. A trail that fails
    its start check opens, refuses every append (AUDIT_UNAVAILABLE) and reports its state."""
    key = key if key is not None else audit_key(data_dir)
    trail: AuditTrail
    if location.backend == "postgresql":
        assert location.dsn is not None
        trail = PgAuditTrail(location.dsn, key)
    else:
        root = location.sqlite_dir or data_dir
        log = AuditLog(log_dir(root), key, head_path(root))
        if log.repaired is not None and log.healthy():
            torn = log.repaired
            log.append(
                repair_record(
                    "set aside a torn last record at start",
                    {
                        "torn_offset": str(torn.offset),
                        "torn_bytes": str(torn.length),
                        "evidence": torn.evidence.name,
                    },
                    system="fvs/start",
                )
            )
        trail = log
    return trail


def repair_record(what: str, details: dict[str, str], system: str = "") -> dict[str, Any]:
    """The record a repair leaves in the trail, so the gap or the set-aside bytes are on it."""
    return {
        "time": dt.datetime.now(dt.UTC).isoformat(),
        "agency": "",
        "system": system or f"local/{getpass.getuser()}",
        "operation": "Audit/Repair",
        "outcome": "OK",
        "reason": "",
        "details": {"action": what, **details},
    }


# -- reading ------------------------------------------------------------------------------


def _in_window(
    record: dict[str, Any], since: dt.datetime | None, until: dt.datetime | None
) -> bool:
    when = dt.datetime.fromisoformat(record["time"])
    return (since is None or when >= since) and (until is None or when < until)


def export(
    records: Iterable[dict[str, Any]],
    agency: str,
    since: dt.datetime | None,
    until: dt.datetime | None,
    fmt: str,
    *,
    key: bytes,
    authority: bool = False,
) -> str:
    """The records of exactly one agency in [since, until), as JSON Lines or CSV.

    ``citizen`` is the agency's own pseudonym (HMAC(key, agency || citizen HMAC)): two
    agencies cannot join their exports on it. ``authority=True`` keeps the trail's global
    citizen HMAC, for the authority's own tools.
    """
    rows = []
    for record in records:
        if record.get("agency") != agency or not _in_window(record, since, until):
            continue
        if authority:
            rows.append(record)
        else:
            citizen = pseudonym(key, agency, str(record.get("citizen", "")))
            rows.append({**record, "citizen": citizen})
    if fmt == "jsonl":
        return "".join(canonical(r).decode() + "\n" for r in rows)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({**r, "details": json.dumps(r.get("details", {}), ensure_ascii=False)})
    return out.getvalue()


def usage(
    records: Iterable[dict[str, Any]], agency: str, month: str
) -> Counter[tuple[str, str, str, str, str]]:
    """Calls of ``agency`` in ``month`` (YYYY-MM) by (day, system, purpose, operation, outcome)."""
    counts: Counter[tuple[str, str, str, str, str]] = Counter()
    for r in records:
        if r.get("agency") == agency and str(r.get("time", "")).startswith(month):
            counts[
                (r["time"][:10], r["system"], r.get("purpose", ""), r["operation"], r["outcome"])
            ] += 1
    return counts
