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
    text = export(read_records(path), "A", None, None, "jsonl", key=KEY)
    out = [json.loads(x) for x in text.splitlines()]
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


# -- the head anchor, torn records, records of any size (file backend) -----------------------


def _anchored(tmp_path: Path, n: int) -> tuple[Path, Path]:
    write(tmp_path, n).close()
    return tmp_path / "audit.jsonl", tmp_path / "audit.head"


def test_the_head_names_records_cut_from_the_end(tmp_path: Path) -> None:
    path, head = _anchored(tmp_path, 6)
    rows = lines(path)
    path.write_bytes(b"".join(rows[:4]))
    assert verify_chain(path, KEY).ok  # the chain alone cannot see a cut end...
    check = verify_chain(path, KEY, head)  # ...the anchor can
    assert (check.ok, check.records, check.missing) == (False, 4, 2)
    log = AuditLog(tmp_path, KEY)
    assert "2 records missing" in log.state and not log.healthy()
    with pytest.raises(FvsError) as info:
        write(tmp_path, 1, log=log)
    assert info.value.code is ErrorCode.AUDIT_UNAVAILABLE
    log.close()
    assert len(lines(path)) == 4  # nothing was chained onto the cut trail


def test_a_deleted_or_forged_anchor_is_reported(tmp_path: Path) -> None:
    path, head = _anchored(tmp_path, 3)
    raw = head.read_bytes()
    forged = raw.replace(b'"seq":3', b'"seq":2')
    head.write_bytes(forged)
    assert "key check" in verify_chain(path, KEY, head).problem
    head.unlink()
    check = verify_chain(path, KEY, head)
    assert not check.ok and "no head anchor" in check.problem
    assert "no head anchor" in AuditLog(tmp_path, KEY).state
    head.write_bytes(raw)
    assert verify_chain(path, KEY, head).ok


def test_a_torn_last_record_is_named_then_set_aside_at_start(tmp_path: Path) -> None:
    path, head = _anchored(tmp_path, 4)
    whole = path.read_bytes()
    torn = b'{"agency":"A","outcome":"OK","seq":5,"prev":"ab'  # a write cut short by a kill
    path.write_bytes(whole + torn)
    check = verify_chain(path, KEY, head)
    assert (check.ok, check.records, check.first_bad_line, check.torn_bytes) == (
        False,
        4,
        5,
        len(torn),
    )
    assert "torn last record" in check.problem and "fvs audit repair" in check.hint
    log = AuditLog(tmp_path, KEY)  # a server starting again: no hand work
    assert log.healthy(), log.state
    assert log.repaired is not None
    assert log.repaired.evidence.read_bytes() == torn  # the evidence is kept
    assert path.read_bytes() == whole
    write(tmp_path, 1, log=log)
    log.close()
    assert verify_chain(path, KEY, head).records == 5


def test_repair_sets_a_torn_record_aside_and_refuses_an_edited_chain(tmp_path: Path) -> None:
    from fvs.audit.log import repair

    path, head = _anchored(tmp_path, 3)
    path.write_bytes(path.read_bytes() + b'{"seq":4')
    ok, what = repair(path, KEY, head, accept_loss=False)
    assert ok and "moved the torn last record (8 bytes)" in what
    assert verify_chain(path, KEY, head).ok
    rows = lines(path)
    rows[1] = rows[1].replace(b'"outcome":"OK"', b'"outcome":"REFUSED"')
    path.write_bytes(b"".join(rows))
    ok, what = repair(path, KEY, head, accept_loss=True)
    assert not ok and "edited" in what


def test_a_record_over_64_kib_written_before_bounding_is_read(tmp_path: Path) -> None:
    """An older trail may hold a 100 KB record (finding 1): reading and extending it works."""
    from fvs.audit.chain import GENESIS, Head, chain_hash
    from fvs.audit.log import HeadFile

    path = tmp_path / "audit.jsonl"
    entry = {"time": "2026-11-10T10:00:00+00:00", "agency": "A", "consent_ref": "R" * 100_000}
    entry.update(seq=1, prev=GENESIS)
    entry["hash"] = chain_hash(KEY, GENESIS, entry)
    path.write_bytes(json.dumps(entry).encode() + b"\n")
    anchor = HeadFile(tmp_path / "audit.head", KEY)
    anchor.reset(Head(1, entry["hash"], path.stat().st_size))
    anchor.close()
    log = AuditLog(tmp_path, KEY)
    assert log.healthy(), log.state
    second = log.append({"time": "2026-11-10T10:00:01+00:00", "consent_ref": "S" * 200_000})
    assert second["seq"] == 2 and len(second["consent_ref"]) < 200
    log.close()
    other = AuditLog(tmp_path, KEY)  # another process reads the big tail too
    write(tmp_path, 1, log=other)
    other.close()
    assert verify_chain(path, KEY, tmp_path / "audit.head").records == 3
    assert path.stat().st_size < 100_000 + 4_000  # only the old record is big


def test_bounding_keeps_small_records_and_digests_big_values() -> None:
    from fvs.audit.chain import MAX_RECORD_BYTES, bound_record, canonical

    small = {"a": "x" * 100, "n": 3, "f": 1.5, "d": {"k": ["v"]}}
    assert bound_record(small) == small
    big = bound_record({"a": "é" * 5000})
    assert big["a"].startswith("<omitted: 5000 chars, sha256 ")
    wide = bound_record({f"k{i}": "v" * 1024 for i in range(100)} | {"time": "t"})
    assert len(canonical(wide)) <= MAX_RECORD_BYTES
    assert wide["time"] == "t" and "oversized" in wide


def test_verify_while_another_writer_appends_sees_no_torn_record(tmp_path: Path) -> None:
    import threading

    writer = write(tmp_path, 2)
    stop = threading.Event()

    def keep_appending() -> None:
        while not stop.is_set():
            writer.append({"time": "2026-11-10T10:00:00+00:00", "details": {"x": "y" * 1000}})

    thread = threading.Thread(target=keep_appending)
    thread.start()
    try:
        checks = [
            verify_chain(tmp_path / "audit.jsonl", KEY, tmp_path / "audit.head") for _ in range(30)
        ]
    finally:
        stop.set()
        thread.join()
    writer.close()
    assert all(c.ok for c in checks), [c for c in checks if not c.ok][:1]
