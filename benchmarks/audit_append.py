"""Audit appends per second: 1, 4 and 16 concurrent writers, in one process and in two
processes sharing one trail, for the file backend and PostgreSQL (group commit), against the
baseline measured in the same run: PostgreSQL with one transaction per record (the same SQL
and row lock, no batching).

    python -m benchmarks.audit_append --pg postgresql://postgres@127.0.0.1:5432/postgres

A fresh database is created on that server for the run and dropped after. Every append is
durable before it counts (fsync / synchronous commit), exactly as a Verify call waits for it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

from benchmarks.common import write_json
from fvs.audit.chain import bound_record
from fvs.audit.pg import PgAuditTrail
from fvs.audit.schema import apply
from fvs.audit.trail import AuditTrail, open_trail
from fvs.store.url import parse_store_url

KEY = b"b" * 32


def _record(k: int, i: int) -> dict[str, Any]:
    return {
        "time": "2026-11-27T10:00:00+00:00",
        "agency": f"AG-{k % 4}",
        "system": f"AG-{k % 4}/gw",
        "operation": "Verify",
        "purpose": "KYC",
        "consent_ref": f"CONSENT-{k}-{i}",
        "citizen": "c" * 64,
        "outcome": "OK",
        "reason": "",
        "score": 97.5,
        "request_id": uuid.uuid4().hex,
        "latency_ms": 12.5,
    }


def _worker(args: tuple[str, str, str, int, float, float]) -> int:
    """One process: ``threads`` writers append until ``start + seconds``; returns the count."""
    mode, url, data_dir, threads, start, seconds = args
    trail: AuditTrail
    if mode == "pg-per-record":
        pg = PgAuditTrail(url, KEY, pool_size=threads)
        trail = pg

        def append(record: dict[str, Any]) -> None:
            pg._commit([bound_record(record)])  # one transaction (and commit) per record

    else:
        trail = open_trail(parse_store_url(url, Path(data_dir)), Path(data_dir), KEY)
        append = trail.append  # type: ignore[assignment]
    counts = [0] * threads
    errors: list[BaseException] = []

    def run(k: int) -> None:
        while time.time() < start:
            time.sleep(0.001)
        end = start + seconds
        i = 0
        try:
            while time.time() < end:
                append(_record(k, i))
                i += 1
        except BaseException as exc:  # a failed append spoils the point: report it
            errors.append(exc)
        counts[k] = i

    workers = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    trail.close()
    if errors:
        raise RuntimeError(f"{len(errors)} writers failed: {errors[0]!r}")
    return sum(counts)


def measure(mode: str, url: str, data_dir: str, writers: int, processes: int, seconds: float):  # type: ignore[no-untyped-def]
    ctx = mp.get_context("spawn")
    start = time.time() + 2.5  # every process opened its trail before the clock starts
    with ctx.Pool(processes) as pool:
        counts = pool.map(_worker, [(mode, url, data_dir, writers, start, seconds)] * processes)
    return sum(counts) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pg", required=True, help="a PostgreSQL server URL (trust auth)")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--writers", default="1,4,16")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    name = f"fvs_bench_audit_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.pg, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    db = f"{args.pg.rpartition('/')[0]}/{name}"
    results: list[dict[str, Any]] = []
    try:
        with psycopg.connect(db, autocommit=True) as conn:
            apply(conn, "postgresql")
        with tempfile.TemporaryDirectory() as tmp:
            file_url = f"sqlite:///{tmp}"
            for writers in [int(w) for w in args.writers.split(",")]:
                for processes in (1, 2):
                    row: dict[str, Any] = {"writers_per_process": writers, "processes": processes}
                    for mode, url in (
                        ("pg-per-record", db),
                        ("pg-group-commit", db),
                        ("file", file_url),
                    ):
                        row[mode] = round(measure(mode, url, tmp, writers, processes, args.seconds))
                    row["group_vs_per_record"] = round(
                        row["pg-group-commit"] / max(row["pg-per-record"], 1), 2
                    )
                    print(json.dumps(row), flush=True)
                    results.append(row)
            check = open_trail(parse_store_url(db, Path(tmp)), Path(tmp), KEY)
            verified = check.verify()
            check.close()
            file_check = open_trail(parse_store_url(file_url, Path(tmp)), Path(tmp), KEY)
            file_verified = file_check.verify()
            file_check.close()
    finally:
        with psycopg.connect(args.pg, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    payload = {
        "benchmark": "audit_append",
        "unit": "durable appends per second (all processes together)",
        "seconds_per_point": args.seconds,
        "results": results,
        "postgresql_trail_verified": {"ok": verified.ok, "records": verified.records},
        "file_trail_verified": {"ok": file_verified.ok, "records": file_verified.records},
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print(
        json.dumps(payload["postgresql_trail_verified"]), json.dumps(payload["file_trail_verified"])
    )
    print(f"written to {write_json('audit_append', payload, args.out)}")


if __name__ == "__main__":
    main()
