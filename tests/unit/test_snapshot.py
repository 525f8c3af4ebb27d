"""Encrypted snapshots (fvs.store.snapshot): a round trip, and every way a snapshot can be
unusable answers None (the caller rebuilds), never wrong arrays."""

from __future__ import annotations

import logging
import stat
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fvs.store import snapshot
from fvs.store.crypto import TemplateCipher, write_new_key
from fvs.store.snapshot import SnapshotError, load_snapshot, save_snapshot

BINDING = {"store": "sqlite:/data/registry.sqlite3", "model_id": "m@1", "encoding": "i8"}


@pytest.fixture
def cipher(tmp_path: Path) -> TemplateCipher:
    write_new_key(tmp_path / "keys" / "template.key")
    return TemplateCipher(tmp_path / "keys" / "template.key")


@pytest.fixture(autouse=True)
def small_records(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshot, "CHUNK", 4096)  # many records from small arrays


def arrays() -> dict[str, Any]:
    rng = np.random.default_rng(7)
    return {
        "matrix": rng.integers(-127, 128, size=(300, 64), dtype=np.int8),
        "versions": np.arange(300, dtype=np.int32),
        "scales": rng.random(300, dtype=np.float32),
        "empty": np.empty((0, 64), np.float16),
        "ids": np.arange(10**12, 10**12 + 300, dtype=np.int64),
    }


def saved(tmp_path: Path, cipher: TemplateCipher) -> Path:
    path = tmp_path / "cache" / "index.snap"
    save_snapshot(path, arrays(), {"seq": 42, "anchor": ["1", "t"]}, cipher, BINDING)
    return path


def test_round_trip(tmp_path: Path, cipher: TemplateCipher) -> None:
    path = saved(tmp_path, cipher)
    loaded = load_snapshot(path, cipher, BINDING)
    assert loaded is not None
    got, meta = loaded
    assert meta == {"seq": 42, "anchor": ["1", "t"]}
    want = arrays()
    assert list(got) == list(want)
    for name, array in want.items():
        assert got[name].dtype == array.dtype
        np.testing.assert_array_equal(got[name], array)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["index.snap"]  # no temporary left


def test_nothing_sits_on_disk_in_clear(tmp_path: Path, cipher: TemplateCipher) -> None:
    marker = np.frombuffer(b"TEMPLATE-BYTES-IN-CLEAR" * 20, np.uint8)
    path = tmp_path / "s.snap"
    save_snapshot(path, {"m": marker}, {"secret": "META-IN-CLEAR"}, cipher, BINDING)
    raw = path.read_bytes()
    assert b"TEMPLATE-BYTES" not in raw
    assert b"META-IN-CLEAR" not in raw


def test_allocator_fills_callers_arrays(tmp_path: Path, cipher: TemplateCipher) -> None:
    path = saved(tmp_path, cipher)
    big = np.zeros((400, 64), np.int8)

    def allocate(name: str, shape: tuple[int, ...], dtype: np.dtype[Any]) -> Any:
        return big[: shape[0]] if name == "matrix" else np.empty(shape, dtype)

    assert load_snapshot(path, cipher, BINDING, allocate) is not None
    np.testing.assert_array_equal(big[:300], arrays()["matrix"])
    assert not big[300:].any()


def refused(path: Path, cipher: TemplateCipher, caplog: pytest.LogCaptureFixture) -> str:
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="fvs.store.snapshot"):
        assert load_snapshot(path, cipher, BINDING) is None
    return reason(caplog)


def reason(caplog: pytest.LogCaptureFixture) -> str:
    """The logged reason (the path, which names the test, left out)."""
    return caplog.records[-1].getMessage().rpartition(".snap")[2]


def test_missing(tmp_path: Path, cipher: TemplateCipher, caplog: pytest.LogCaptureFixture) -> None:
    refused(tmp_path / "none.snap", cipher, caplog)
    assert "no snapshot" in caplog.text


def test_truncated_anywhere(
    tmp_path: Path, cipher: TemplateCipher, caplog: pytest.LogCaptureFixture
) -> None:
    path = saved(tmp_path, cipher)
    whole = path.read_bytes()
    for cut in (3, 12, 200, len(whole) // 2, len(whole) - 30, len(whole) - 1):
        path.write_bytes(whole[:cut])
        assert "truncated" in refused(path, cipher, caplog), cut
    path.write_bytes(whole + b"x")
    assert "after the end" in refused(path, cipher, caplog)


def test_tampered(tmp_path: Path, cipher: TemplateCipher, caplog: pytest.LogCaptureFixture) -> None:
    path = saved(tmp_path, cipher)
    whole = bytearray(path.read_bytes())
    for offset in (len(whole) // 3, len(whole) - 40):
        edited = bytearray(whole)
        edited[offset] ^= 0x01
        path.write_bytes(bytes(edited))
        assert "integrity" in refused(path, cipher, caplog), offset


def test_header_edited_to_claim_another_binding(
    tmp_path: Path, cipher: TemplateCipher, caplog: pytest.LogCaptureFixture
) -> None:
    other = {**BINDING, "model_id": "m@2"}
    path = tmp_path / "s.snap"
    save_snapshot(path, arrays(), {}, cipher, other)
    # the clear header is rewritten to claim m@1: every record was sealed for the m@2 header
    path.write_bytes(path.read_bytes().replace(b'"m@2"', b'"m@1"'))
    assert "integrity" in refused(path, cipher, caplog)


def test_records_swapped(
    tmp_path: Path, cipher: TemplateCipher, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "s.snap"
    save_snapshot(
        path, {"a": np.zeros(4096, np.uint8), "b": np.ones(4096, np.uint8)}, {}, cipher, {}
    )
    raw = path.read_bytes()
    record = 4 + 12 + 4096 + 16
    end = len(raw) - (4 + 12 + 16)
    a, b = raw[end - 2 * record : end - record], raw[end - record : end]
    path.write_bytes(raw[: end - 2 * record] + b + a + raw[end:])
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="fvs.store.snapshot"):
        assert load_snapshot(path, cipher, {}) is None
    assert "integrity" in reason(caplog)


def test_another_model_store_or_encoding(
    tmp_path: Path, cipher: TemplateCipher, caplog: pytest.LogCaptureFixture
) -> None:
    path = saved(tmp_path, cipher)
    for key, value in (("model_id", "m@2"), ("store", "postgresql://x/y"), ("encoding", "f16")):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="fvs.store.snapshot"):
            assert load_snapshot(path, cipher, {**BINDING, key: value}) is None
        assert f"another {key}" in reason(caplog)


def test_another_key(
    tmp_path: Path, cipher: TemplateCipher, caplog: pytest.LogCaptureFixture
) -> None:
    path = saved(tmp_path, cipher)
    write_new_key(tmp_path / "other.key")
    assert "lacks" in refused(path, TemplateCipher(tmp_path / "other.key"), caplog)


def test_rotated_key_still_opens(tmp_path: Path, cipher: TemplateCipher) -> None:
    path = saved(tmp_path, cipher)
    write_new_key(cipher.path)  # a rotation adds a key; the old one stays in the file
    assert load_snapshot(path, TemplateCipher(cipher.path), BINDING) is not None


def test_check_meta_refuses_before_reading_arrays(
    tmp_path: Path, cipher: TemplateCipher, caplog: pytest.LogCaptureFixture
) -> None:
    path = saved(tmp_path, cipher)
    allocated: list[str] = []

    def allocate(name: str, shape: tuple[int, ...], dtype: np.dtype[Any]) -> Any:
        allocated.append(name)
        return np.empty(shape, dtype)

    with caplog.at_level(logging.INFO, logger="fvs.store.snapshot"):
        assert (
            load_snapshot(path, cipher, BINDING, allocate, lambda m: f"stale at {m['seq']}") is None
        )
    assert "stale at 42" in reason(caplog)
    assert allocated == []


def test_a_failed_write_keeps_the_previous_snapshot(
    tmp_path: Path, cipher: TemplateCipher, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = saved(tmp_path, cipher)
    before = path.read_bytes()
    calls = 0
    record = snapshot._Writer.record

    def failing(self: Any, payload: bytes, final: bool = False) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise OSError("No space left on device")
        record(self, payload, final)

    monkeypatch.setattr(snapshot._Writer, "record", failing)
    with pytest.raises(OSError, match="No space"):
        save_snapshot(path, arrays(), {}, cipher, BINDING)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["index.snap"]


def test_objects_are_refused(tmp_path: Path, cipher: TemplateCipher) -> None:
    with pytest.raises(SnapshotError, match="Python objects"):
        save_snapshot(tmp_path / "s.snap", {"o": np.array([object()])}, {}, cipher, BINDING)
