"""Many servers, one truth: two `fvs serve` processes with mutual TLS on two ports sharing one
PostgreSQL database, a client alternating between them (benchmarks/propagation.py does the
same with more rounds and reports the distribution)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest

from benchmarks.propagation import CITIZEN, measure_index, measure_servers
from fvs.config import StoreSettings
from fvs.store.crypto import write_new_key
from fvs.store.factory import open_registry
from fvs.store.index import TemplateIndex
from fvs.store.sync import IndexSync
from fvs.store.synthetic import minimal_citizen, random_templates
from tests.conftest import migrate_all


@pytest.fixture
def shared(pg_url: str, tmp_path: Path) -> StoreSettings:
    store = StoreSettings(url=pg_url, data_dir=tmp_path / "data")
    write_new_key(store.key_file())
    migrate_all(store)
    return store


@pytest.mark.model
def test_changes_through_one_server_are_in_force_on_the_other_within_1s(
    shared: StoreSettings, tmp_path: Path
) -> None:
    result = measure_servers(shared, rounds=1, work=tmp_path)
    assert set(result) == {
        "re-enrol", "erase", "enrol", "suspend", "resume", "disable", "enable", "revoke",
    }  # fmt: skip
    for kind, stats in result.items():
        assert stats["max_ms"] <= 1000.0, (kind, stats)


def test_index_sync_by_notify_within_1s(shared: StoreSettings) -> None:
    stats = measure_index(shared, "notify", changes=20)
    assert stats["n"] == 20
    assert stats["max_ms"] <= 1000.0, stats


def test_index_catches_up_after_losing_its_connection(shared: StoreSettings) -> None:
    writer, reader = open_registry(shared), open_registry(shared)
    index = TemplateIndex("m@1", 512)
    sync = IndexSync(reader, index, IndexSync.database_time(reader))
    sync.start()
    vectors = random_templates(3, 512, seed=3)
    try:
        writer.add_template(CITIZEN, "m@1", vectors[0], create=minimal_citizen(CITIZEN))
        deadline = time.monotonic() + 5
        while index.version_of(CITIZEN) != 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert index.version_of(CITIZEN) == 1
        # kill every connection but the writer's: the listener misses what happens next
        assert shared.url is not None
        with psycopg.connect(shared.url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname ="
                " current_database() AND pid <> pg_backend_pid() AND query ILIKE 'LISTEN%'"
            )
        writer.add_template(CITIZEN, "m@1", vectors[1])
        writer.add_template(CITIZEN, "m@1", vectors[2])
        deadline = time.monotonic() + 10
        while index.version_of(CITIZEN) != 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert index.version_of(CITIZEN) == 3
        assert threading.active_count() >= 1
    finally:
        sync.stop()
        writer.close()
        reader.close()


@pytest.mark.model
def test_changes_through_one_process_are_in_force_on_the_other_on_sqlite(
    tmp_path: Path,
) -> None:
    """The same rounds on the embedded default: two processes on one SQLite data directory
    (what `fvs serve --processes N` runs), the index following by polling the change log and
    the access rules read on every call."""
    store = StoreSettings(url=f"sqlite:///{tmp_path / 'store'}", data_dir=tmp_path / "data")
    write_new_key(store.key_file())
    migrate_all(store)
    result = measure_servers(store, rounds=1, work=tmp_path)
    for kind, stats in result.items():
        assert stats["max_ms"] <= 1000.0, (kind, stats)
