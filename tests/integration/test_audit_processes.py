"""The file audit trail under several processes (``fvs serve --processes N``): appends from
every process, at once, make one valid chain (the log's flock serialises them)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from fvs.audit.log import AuditLog, read_records, verify_chain
from fvs.audit.trail import audit_key, audit_path, head_path, log_dir

RECORDS = 150


def _append(data: str, writer: int) -> None:
    root = Path(data)
    log = AuditLog(log_dir(root), audit_key(root), head_path(root))
    for k in range(RECORDS):
        log.append({"operation": "Verify", "outcome": "OK", "writer": writer, "n": k})
    log.close()


def test_processes_appending_at_once_keep_one_chain(tmp_path: Path) -> None:
    data = tmp_path / "data"
    audit_key(data)  # created once, before the writers (as the supervisor's start does)
    _append(str(data), -1)  # the trail exists, as after a server's start
    ctx = multiprocessing.get_context("spawn")
    writers = [ctx.Process(target=_append, args=(str(data), w)) for w in range(3)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(timeout=120)
        assert w.exitcode == 0
    check = verify_chain(audit_path(data), audit_key(data), head_path(data))
    assert check.ok, check.describe()
    records = list(read_records(audit_path(data)))
    assert len(records) == 4 * RECORDS
    assert [r["seq"] for r in records] == sorted(r["seq"] for r in records)
    for w in range(3):  # each writer's records in its own order, none lost
        assert [r["n"] for r in records if r["writer"] == w] == list(range(RECORDS))
