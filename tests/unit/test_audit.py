import json
from pathlib import Path

import pytest

from fvs.audit.keys import citizen_hash, load_or_create_key
from fvs.audit.log import AuditLog, read_records, verify_chain
from fvs.audit.trail import export, usage
from fvs.errors import ErrorCode, FvsError

KEY = b"k" * 32


def write(folder: Path, n: int, agency: str = "A", log: AuditLog | None = None) -> AuditLog:
    log = log or AuditLog(folder, KEY)
    for i in range(n):
        log.append(
            {
                "time": f"2026-11-{10 + i % 3:02d}T10:00:00+00:00",
                "agency": agency,
                "system": f"{agency}/gw",
                "operation": "Verify",
                "purpose": "KYC",
                "outcome": "OK",
                "i": i,
            }
        )
    return log


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


@pytest.fixture
def chain(tmp_path: Path) -> Path:
    write(tmp_path, 6).close()
    return tmp_path / "audit.jsonl"


def test_intact_chain_verifies(chain: Path) -> None:
    check = verify_chain(chain, KEY)
    assert check.ok
    assert check.records == 6


def test_wrong_key_fails_at_the_first_record(chain: Path) -> None:
    check = verify_chain(chain, b"x" * 32)
    assert not check.ok
    assert check.first_bad_line == 1


def test_edited_record_is_named(chain: Path) -> None:
    rows = lines(chain)
    record = json.loads(rows[3])
    record["outcome"] = "REFUSED"
    rows[3] = json.dumps(record).encode() + b"\n"
    chain.write_bytes(b"".join(rows))
    check = verify_chain(chain, KEY)
    assert (check.ok, check.first_bad_line, check.first_bad_seq) == (False, 4, 4)
    assert "edited" in check.problem
    assert check.records == 3


def test_deleted_record_is_named(chain: Path) -> None:
    rows = lines(chain)
    del rows[2]
    chain.write_bytes(b"".join(rows))
    check = verify_chain(chain, KEY)
    assert (check.ok, check.first_bad_line, check.first_bad_seq) == (False, 3, 4)
    assert "missing" in check.problem


def test_inserted_record_is_named(chain: Path) -> None:
    rows = lines(chain)
    forged = json.loads(rows[1])
    forged.update(seq=3, prev=forged["hash"], outcome="OK", i=99)
    rows.insert(2, json.dumps(forged).encode() + b"\n")
    chain.write_bytes(b"".join(rows))
    check = verify_chain(chain, KEY)
    assert (check.ok, check.first_bad_line) == (False, 3)


def test_reordered_records_are_named(chain: Path) -> None:
    rows = lines(chain)
    rows[1], rows[2] = rows[2], rows[1]
    chain.write_bytes(b"".join(rows))
    check = verify_chain(chain, KEY)
    assert (check.ok, check.first_bad_line) == (False, 2)


def test_garbage_line_is_named(chain: Path) -> None:
    rows = lines(chain)
    rows[4] = b"{not json\n"
    chain.write_bytes(b"".join(rows))
    check = verify_chain(chain, KEY)
    assert (check.ok, check.first_bad_line, check.problem) == (False, 5, "unreadable record")


def test_two_writers_on_one_file_keep_one_chain(tmp_path: Path) -> None:
    """A server and an admin CLI append to the same file (two processes in real life)."""
    first, second = AuditLog(tmp_path, KEY), AuditLog(tmp_path, KEY)
    for _ in range(5):
        write(tmp_path, 1, "A", first)
        write(tmp_path, 2, "B", second)
    first.close()
    second.close()
    check = verify_chain(tmp_path / "audit.jsonl", KEY)
    assert check.ok
    assert check.records == 15


def test_replaced_file_fails_closed(tmp_path: Path) -> None:
    log = write(tmp_path, 2)
    path = tmp_path / "audit.jsonl"
    path.rename(tmp_path / "moved.jsonl")
    with pytest.raises(FvsError) as info:
        write(tmp_path, 1, log=log)
    assert info.value.code is ErrorCode.AUDIT_UNAVAILABLE
    (tmp_path / "moved.jsonl").rename(path)
    write(tmp_path, 1, log=log)  # the same file back: appends again
    log.close()
    assert verify_chain(path, KEY).records == 3


def test_export_gives_exactly_one_agency(tmp_path: Path) -> None:
    log = write(tmp_path, 4, "A")
    write(tmp_path, 3, "B", log)
    log.close()
    path = tmp_path / "audit.jsonl"
    out = [json.loads(x) for x in export(read_records(path), "A", None, None, "jsonl", key=KEY).splitlines()]
    assert len(out) == 4
    assert {r["agency"] for r in out} == {"A"}
    csv_text = export(read_records(path), "B", None, None, "csv", key=KEY)
    assert csv_text.splitlines()[0].startswith("seq,time,agency")
    assert len(csv_text.splitlines()) == 4
    import datetime as dt

    since = dt.datetime(2026, 11, 11, tzinfo=dt.UTC)
    windowed = export(read_records(path), "A", since, None, "jsonl", key=KEY).splitlines()
    assert all(json.loads(r)["time"] >= "2026-11-11" for r in windowed)
    assert 0 < len(windowed) < 4


def test_usage_counts_by_day(tmp_path: Path) -> None:
    write(tmp_path, 6, "A").close()
    counts = usage(read_records(tmp_path / "audit.jsonl"), "A", "2026-11")
    assert sum(counts.values()) == 6
    assert counts[("2026-11-10", "A/gw", "KYC", "Verify", "OK")] == 2
    assert not usage(read_records(tmp_path / "audit.jsonl"), "A", "2026-10")


def test_keys_are_created_once_and_private(tmp_path: Path) -> None:
    first = load_or_create_key(tmp_path, "k")
    assert load_or_create_key(tmp_path, "k") == first
    assert (tmp_path / "k.key").stat().st_mode & 0o777 == 0o600
    assert citizen_hash(first, "3100600445635") != "3100600445635"
    assert len(citizen_hash(first, "3100600445635")) == 64
    assert citizen_hash(first, "3100600445635") != citizen_hash(b"z" * 32, "3100600445635")


def test_concurrent_appends_share_flushes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    import time as _time

    import fvs.audit.log as audit_log

    flushes = []
    real = audit_log.os.fsync

    def slow_fsync(fd: int) -> None:
        flushes.append(fd)
        _time.sleep(0.01)  # a disk flush takes a while: others pile up behind it
        real(fd)

    monkeypatch.setattr(audit_log.os, "fsync", slow_fsync)
    log = AuditLog(tmp_path, KEY)
    threads = [threading.Thread(target=write, args=(tmp_path, 10, f"T{k}", log)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    check = verify_chain(tmp_path / "audit.jsonl", KEY)
    assert check.ok and check.records == 80
    assert len(flushes) < 80  # group commit: one flush made several records durable


def test_a_failed_flush_fails_closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import fvs.audit.log as audit_log

    log = write(tmp_path, 2)

    def broken(fd: int) -> None:
        raise OSError(5, "I/O error")

    monkeypatch.setattr(audit_log.os, "fsync", broken)
    with pytest.raises(FvsError) as info:
        write(tmp_path, 1, log=log)
    assert info.value.code is ErrorCode.AUDIT_UNAVAILABLE
    monkeypatch.undo()
    with pytest.raises(FvsError):  # durability unknown: refuse until restarted
        write(tmp_path, 1, log=log)
    log.close()
