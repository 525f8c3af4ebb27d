"""One conformance suite for the audit trail, run against both backends: the embedded file
(sqlite:///DIR) and a real PostgreSQL database (a fresh one per test, `pg_url`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from fvs.audit.chain import MAX_RECORD_BYTES, canonical
from fvs.audit.log import LOG_FILE
from fvs.audit.schema import AUDIT_MIGRATIONS, apply
from fvs.audit.trail import AuditTrail, audit_key, export, head_path, log_dir, open_trail, usage
from fvs.errors import ErrorCode, FvsError
from fvs.store.url import StoreLocation, parse_store_url

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Backend:
    name: str
    location: StoreLocation
    data_dir: Path
    url: str

    def open(self) -> AuditTrail:
        return open_trail(self.location, self.data_dir)

    # What an attacker with write access to the storage does (bypassing FVS).
    def cut_newest(self, n: int) -> None:
        if self.name == "file":
            path = log_dir(self.data_dir) / LOG_FILE
            rows = path.read_bytes().splitlines(keepends=True)
            path.write_bytes(b"".join(rows[: len(rows) - n]))
        else:
            self._sql(
                "ALTER TABLE audit_records DISABLE TRIGGER USER;"
                f"DELETE FROM audit_records WHERE seq > (SELECT max(seq) - {n} "
                "FROM audit_records)"
            )

    def empty(self) -> None:
        if self.name == "file":
            (log_dir(self.data_dir) / LOG_FILE).write_bytes(b"")
        else:
            self._sql("ALTER TABLE audit_records DISABLE TRIGGER USER; TRUNCATE audit_records")

    def edit(self, seq: int) -> None:
        if self.name == "file":
            path = log_dir(self.data_dir) / LOG_FILE
            rows = path.read_bytes().splitlines(keepends=True)
            record = json.loads(rows[seq - 1])
            record["outcome"] = "REFUSED"
            rows[seq - 1] = canonical(record) + b"\n"
            path.write_bytes(b"".join(rows))
        else:
            self._sql(
                "ALTER TABLE audit_records DISABLE TRIGGER USER;"
                'UPDATE audit_records SET record = replace(record, \'"outcome":"OK"\', '
                f'\'"outcome":"REFUSED"\') WHERE seq = {seq}'
            )

    def _sql(self, sql: str) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql)


@pytest.fixture(params=["file", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    data = tmp_path / "data"
    if request.param == "file":
        url = f"sqlite:///{data}"
    else:
        url = request.getfixturevalue("pg_url")
        with psycopg.connect(url, autocommit=True) as conn:
            apply(conn, "postgresql")
    return Backend(request.param, parse_store_url(url, data), data, url)


@pytest.fixture
def trail(backend: Backend) -> Iterator[AuditTrail]:
    opened = backend.open()
    yield opened
    opened.close()


def record(i: int, agency: str = "BANK-A", **extra: Any) -> dict[str, Any]:
    return {
        "time": f"2026-11-{10 + i % 3:02d}T10:00:00+00:00",
        "agency": agency,
        "system": f"{agency}/gw",
        "operation": "Verify",
        "purpose": "KYC",
        "outcome": "OK",
        "reason": "",
        "citizen": "c" * 64 if i % 2 else "d" * 64,
        "i": i,
        **extra,
    }


def fill(trail: AuditTrail, n: int, agency: str = "BANK-A") -> None:
    for i in range(n):
        trail.append(record(i, agency))


def refused(trail: AuditTrail) -> FvsError:
    with pytest.raises(FvsError) as info:
        trail.append(record(0))
    assert info.value.code is ErrorCode.AUDIT_UNAVAILABLE
    return info.value


def test_appends_chain_in_order_and_verify(trail: AuditTrail) -> None:
    first = trail.append(record(0))
    second = trail.append(record(1))
    assert (first["seq"], second["seq"]) == (1, 2)
    assert second["prev"] == first["hash"]
    fill(trail, 5)
    check = trail.verify()
    assert check.ok, check
    assert (check.records, check.anchored_seq) == (7, 7)
    assert [r["seq"] for r in trail.records()] == list(range(1, 8))
    assert trail.healthy() and trail.state == ""


def test_append_all_chains_a_batch_in_order_with_one_flush(trail: AuditTrail) -> None:
    """A batch (the refusals of a storm) is chained in order, interleaved correctly with
    single appends from other threads, and anchored: the head covers the last of it."""
    trail.append(record(0))
    singles = threading.Thread(target=fill, args=(trail, 20, "OTHER"))
    singles.start()
    entries = trail.append_all([record(i, "STORM") for i in range(1, 41)])
    singles.join()
    assert [e["i"] for e in entries] == list(range(1, 41))
    seqs = [e["seq"] for e in entries]
    assert seqs == sorted(seqs) and len(set(seqs)) == 40
    check = trail.verify()
    assert check.ok, check
    assert (check.records, check.anchored_seq) == (61, 61)
    storm = [r for r in trail.records("STORM")]
    assert [r["i"] for r in storm] == list(range(1, 41))
    assert trail.append_all([]) == []


def test_concurrent_writers_in_two_trails_keep_one_chain(backend: Backend) -> None:
    """Two servers (two trail objects) with 4 threads each append to one store at once."""
    first, second = backend.open(), backend.open()

    def work(t: AuditTrail, agency: str) -> None:
        fill(t, 15, agency)

    threads = [
        threading.Thread(target=work, args=(t, f"A{k}")) for k, t in enumerate([first, second] * 4)
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    check = first.verify()
    assert check.ok, check
    assert check.records == 120
    assert check.anchored_seq == 120
    first.close()
    second.close()


def test_a_server_starting_while_another_appends_passes_its_check(backend: Backend) -> None:
    """The start check reads the head and the last record as one snapshot."""
    busy = backend.open()
    stop = threading.Event()

    def keep_appending() -> None:
        i = 0
        while not stop.is_set():
            busy.append(record(i))
            i += 1

    writers = [threading.Thread(target=keep_appending) for _ in range(4)]
    for w in writers:
        w.start()
    try:
        for _ in range(15):
            starting = backend.open()
            state = starting.state
            starting.close()
            assert state == ""
    finally:
        stop.set()
        for w in writers:
            w.join()
    assert busy.verify().ok
    busy.close()


def test_oversized_values_are_bounded_and_the_trail_goes_on(trail: AuditTrail) -> None:
    huge = "R" * 100_000
    entry = trail.append(record(0, consent_ref=huge, details={"note": huge}))
    assert huge not in json.dumps(entry)
    assert entry["consent_ref"].startswith("<omitted: 100000 chars, sha256 ")
    many = trail.append(record(1, details={f"k{i}": "v" * 1000 for i in range(200)}))
    assert len(canonical(many)) <= MAX_RECORD_BYTES + 200  # + seq, prev, hash
    fill(trail, 3)
    check = trail.verify()
    assert check.ok and check.records == 5
    stored = list(trail.records())
    assert stored[0]["consent_ref"] == entry["consent_ref"]


def test_cutting_the_newest_records_is_reported_and_not_extended(backend: Backend) -> None:
    trail = backend.open()
    fill(trail, 10)
    trail.close()
    backend.cut_newest(3)
    reopened = backend.open()
    try:
        check = reopened.verify()
        assert not check.ok
        assert (check.records, check.missing, check.anchored_seq) == (7, 3, 10)
        assert "3 records missing" in check.problem
        assert not reopened.healthy()
        assert "3 records missing" in reopened.state
        refused(reopened)  # the server refuses to extend a trail that fails its check
    finally:
        reopened.close()


def test_emptying_the_trail_is_reported(backend: Backend) -> None:
    trail = backend.open()
    fill(trail, 6)
    trail.close()
    backend.empty()
    reopened = backend.open()
    try:
        check = reopened.verify()
        assert (check.ok, check.records, check.missing) == (False, 0, 6)
        refused(reopened)
    finally:
        reopened.close()


def test_an_edited_record_is_named(backend: Backend) -> None:
    trail = backend.open()
    fill(trail, 6)
    backend.edit(4)
    check = trail.verify()
    assert (check.ok, check.first_bad_seq, check.records) == (False, 4, 3)
    assert "edited" in check.problem
    trail.close()


def test_another_key_is_refused(backend: Backend) -> None:
    trail = backend.open()
    fill(trail, 2)
    trail.close()
    other = open_trail(backend.location, backend.data_dir, b"z" * 32)
    try:
        assert not other.verify().ok
        refused(other)
    finally:
        other.close()


def test_repair_with_accepted_loss_re_anchors_and_records_it(backend: Backend) -> None:
    trail = backend.open()
    fill(trail, 8)
    trail.close()
    backend.cut_newest(2)
    done = _cli("audit", "repair", "--store", backend.url, "--data-dir", str(backend.data_dir))
    assert done.returncode == 1 and "--accept-loss" in done.stderr
    done = _cli(
        "audit",
        "repair",
        "--accept-loss",
        "--store",
        backend.url,
        "--data-dir",
        str(backend.data_dir),
    )
    assert done.returncode == 0, done.stderr
    assert "2 records lost" in done.stdout
    again = backend.open()
    try:
        assert again.healthy(), again.state
        last = list(again.records())[-1]
        assert last["operation"] == "Audit/Repair" and "2 records lost" in str(last["details"])
        again.append(record(9))
        assert again.verify().ok
    finally:
        again.close()


def test_usage_and_per_agency_pseudonymous_exports(trail: AuditTrail, backend: Backend) -> None:
    fill(trail, 4, "BANK-A")
    fill(trail, 3, "GOV-B")
    counts = usage(trail.records("BANK-A"), "BANK-A", "2026-11")
    assert sum(counts.values()) == 4
    assert counts[("2026-11-10", "BANK-A/gw", "KYC", "Verify", "OK")] == 2
    key = audit_key(backend.data_dir)

    def citizens(agency: str, authority: bool = False) -> set[str]:
        text = export(
            trail.records(agency), agency, None, None, "jsonl", key=key, authority=authority
        )
        rows = [json.loads(x) for x in text.splitlines()]
        assert rows and {r["agency"] for r in rows} == {agency}
        return {r["citizen"] for r in rows}

    bank, gov = citizens("BANK-A"), citizens("GOV-B")
    assert len(bank) == len(gov) == 2  # the same two citizens in both agencies' calls...
    assert not bank & gov  # ...cannot be joined across the two exports
    assert citizens("BANK-A", authority=True) == citizens("GOV-B", authority=True)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "fvs", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
        check=False,
    )


_WRITER = """
import sys, threading
from pathlib import Path
from fvs.audit.trail import open_trail
from fvs.store.url import parse_store_url

trail = open_trail(parse_store_url(sys.argv[1], Path(sys.argv[2])), Path(sys.argv[2]))
lock = threading.Lock()

def work(k):
    i = 0
    while True:
        i += 1
        entry = trail.append({"time": "2026-11-27T10:00:00+00:00", "agency": "BANK-A",
                              "system": "BANK-A/gw", "operation": "Verify", "outcome": "OK",
                              "details": {f"f{j}": "x" * 900 for j in range(k * 4 + 4)}})
        with lock:
            sys.stdout.write(f"{entry['seq']} {entry['hash']}\\n")
            sys.stdout.flush()

for k in range(4):
    threading.Thread(target=work, args=(k,), daemon=True).start()
threading.Event().wait()
"""


def test_sigkill_while_appending_loses_no_acknowledged_record(backend: Backend) -> None:
    """A real child process appends from 4 threads at speed and is killed with SIGKILL."""
    backend.open().close()  # create the trail (and its anchor)
    child = subprocess.Popen(
        [sys.executable, "-c", _WRITER, backend.url, str(backend.data_dir)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert child.stdout is not None
    acked: dict[int, str] = {}
    deadline = time.monotonic() + 60
    while len(acked) < 300 and time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            break
        seq, hash_ = line.split()
        acked[int(seq)] = hash_
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    # Lines the child printed before it died were acknowledged too.
    for line in child.stdout.read().splitlines():
        if len(line.split()) == 2:
            seq, hash_ = line.split()
            acked[int(seq)] = hash_
    child.stdout.close()
    assert len(acked) >= 300, "the child appended too slowly"
    where = ("--store", backend.url, "--data-dir", str(backend.data_dir))
    checked = _cli("audit", "verify", *where)
    if checked.returncode != 0:  # only a torn last record is acceptable, and it is named
        assert "torn last record" in checked.stderr and "fvs audit repair" in checked.stderr
        repaired = _cli("audit", "repair", *where)
        assert repaired.returncode == 0, repaired.stderr
    assert _cli("audit", "verify", *where).returncode == 0
    trail = backend.open()  # a server starting again: no hand work
    try:
        assert trail.healthy(), trail.state
        stored = {r["seq"]: r["hash"] for r in trail.records()}
        assert {s: stored.get(s) for s in acked} == acked  # every acknowledged record
        trail.append(record(0))
        assert trail.verify().ok
    finally:
        trail.close()


def test_schema_is_declared_for_postgresql_only() -> None:
    """The embedded trail is a JSONL file: `fvs db migrate` has no SQLite audit schema to
    apply (and makes no audit database file)."""
    from fvs.store.migrate import components

    assert set(AUDIT_MIGRATIONS) == {"postgresql"}
    assert len(AUDIT_MIGRATIONS["postgresql"]) == 1
    assert components()["audit"] == AUDIT_MIGRATIONS


def test_postgresql_refuses_deletes_and_needs_its_schema(pg_url: str, tmp_path: Path) -> None:
    location = parse_store_url(pg_url, tmp_path)
    from fvs.errors import ConfigError

    with pytest.raises(ConfigError, match="fvs db migrate"):
        open_trail(location, tmp_path)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        apply(conn, "postgresql")
        apply(conn, "postgresql")  # idempotent
    trail = open_trail(location, tmp_path)
    fill(trail, 2)
    with psycopg.connect(pg_url, autocommit=True) as conn, pytest.raises(psycopg.Error):
        conn.execute("DELETE FROM audit_records WHERE seq = 2")
    assert trail.verify().ok
    trail.close()


def test_file_trail_anchor_lives_apart_from_the_log(tmp_path: Path) -> None:
    trail = open_trail(parse_store_url(None, tmp_path), tmp_path)
    fill(trail, 3)
    trail.close()
    assert head_path(tmp_path).parent != log_dir(tmp_path)
    assert head_path(tmp_path).stat().st_mode & 0o777 == 0o600
    # Removing the whole audit folder is caught by the anchor kept in keys/.
    for f in log_dir(tmp_path).iterdir():
        f.unlink()
    check = open_trail(parse_store_url(None, tmp_path), tmp_path)
    assert "3 records missing" in check.state
    check.close()


def test_postgresql_connections_killed_fail_closed_then_resume(pg_url: str, tmp_path: Path) -> None:
    """The database drops every FVS connection: appends fail with AUDIT_UNAVAILABLE or
    succeed whole, none is half-written, and the trail resumes by itself."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        apply(conn, "postgresql")
    trail = open_trail(parse_store_url(pg_url, tmp_path), tmp_path)
    try:
        fill(trail, 3)
        acked = 3
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        failures = 0
        for i in range(6):
            try:
                trail.append(record(i))
                acked += 1
            except FvsError as exc:
                assert exc.code is ErrorCode.AUDIT_UNAVAILABLE
                failures += 1
        assert failures >= 1  # the dead connection was noticed, not ignored
        assert acked >= 6  # and the pool reconnected by itself
        assert trail.healthy(), trail.state
        check = trail.verify()
        assert check.ok and check.records == acked
    finally:
        trail.close()
