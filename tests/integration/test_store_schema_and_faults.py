"""Schema versions (`fvs db migrate|status`), the last release's unversioned SQLite files, and
the database failing under a call: a clear error, nothing half-written, service resumed."""

from __future__ import annotations

import datetime as dt
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest

from fvs.cli import main
from fvs.config import StoreSettings
from fvs.domain import Citizen
from fvs.errors import ErrorCode, FvsError
from fvs.store.factory import open_access, open_registry
from fvs.store.migrate import SchemaError
from fvs.store.schema import REGISTRY_MIGRATIONS
from fvs.store.sqlite import SqliteStore
from fvs.store.synthetic import minimal_citizen, random_templates, synthetic_citizens
from tests.conftest import CITIZEN_A, migrate_all


def test_last_release_files_are_version_1_and_upgraded_only_by_migrate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # registry.sqlite3 exactly as the release without schema versions wrote it
    conn = sqlite3.connect(tmp_path / "registry.sqlite3")
    conn.executescript(REGISTRY_MIGRATIONS["sqlite"][0])
    vector = random_templates(1, 512, seed=4)[0]
    conn.execute(
        "INSERT INTO citizens VALUES (?,?,?,?,?,?,?,?,?,?,1,1,?)",
        (CITIZEN_A, "ก", "ข", "A", "B", "F", "1990-01-01", "p", "d", "ACTIVE", "2025-01-01"),
    )
    conn.execute(
        "INSERT INTO face_templates VALUES (?, 1, 'm@1', 512, ?, '2025-01-01T00:00:00+00:00', 1)",
        (CITIZEN_A, vector.astype("<f4").tobytes()),
    )
    conn.commit()
    conn.close()
    with pytest.raises(SchemaError, match=f"version 1; .* `fvs db migrate --data-dir {tmp_path}`"):
        SqliteStore(tmp_path)
    assert main(["db", "status", "--data-dir", str(tmp_path)]) == 1
    assert main(["db", "migrate", "--data-dir", str(tmp_path)]) == 0
    assert "registry: schema version 1 -> 3" in capsys.readouterr().out
    assert main(["db", "migrate", "--data-dir", str(tmp_path)]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert main(["db", "status", "--data-dir", str(tmp_path)]) == 0
    store = open_registry(StoreSettings(data_dir=tmp_path))
    try:
        template = store.active_template(CITIZEN_A)  # the old plaintext row still reads
        assert template is not None
        assert np.array_equal(template.vector, vector)
        done, failed = store.rotate()  # and rotate-key seals it
        assert (done, failed) == (1, 0)
        assert store.db.read("SELECT key_id FROM face_templates")[0][0] != ""
        sealed = store.active_template(CITIZEN_A)
        assert sealed is not None
        assert np.array_equal(sealed.vector, vector)
    finally:
        store.close()


def test_postgresql_is_never_initialised_implicitly(pg_url: str, tmp_path: Path) -> None:
    settings = StoreSettings(url=pg_url, data_dir=tmp_path)
    with pytest.raises(
        SchemaError, match=r"has no schema.*run `fvs db migrate --store postgresql://"
    ):
        open_access(settings)
    migrate_all(settings)
    open_access(settings).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE schema_versions SET version = 99 WHERE component = 'access'")
    with pytest.raises(SchemaError, match="version 99, newer than this FVS"):
        open_access(settings)


def test_wrong_database_or_server_is_store_unavailable(pg_url: str, tmp_path: Path) -> None:
    head, _, _ = pg_url.rpartition("/")
    for url, words in (
        (f"{head}/fvs_no_such_db", "does not exist"),
        ("postgresql://postgres@127.0.0.1:1/postgres", "refused"),
    ):
        with pytest.raises(FvsError) as info:
            open_access(StoreSettings(url=url, data_dir=tmp_path))
        assert info.value.code is ErrorCode.STORE_UNAVAILABLE
        assert words in info.value.message


@pytest.fixture
def pg_settings(pg_url: str, tmp_path: Path) -> Iterator[StoreSettings]:
    from fvs.store.crypto import write_new_key

    settings = StoreSettings(url=pg_url, data_dir=tmp_path)
    write_new_key(settings.key_file())
    migrate_all(settings)
    yield settings


def _terminate_others(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return len(rows)


_INSERT = "INSERT INTO citizens VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"


def _row(c: Citizen) -> tuple[object, ...]:
    from fvs.store.registry import _citizen_row

    return _citizen_row(c, 0, dt.datetime.now(dt.UTC))


def test_connection_killed_mid_write_leaves_nothing_and_service_resumes(
    pg_settings: StoreSettings,
) -> None:
    store = open_registry(pg_settings)
    url = pg_settings.url
    assert url is not None
    try:
        store.add_template(
            CITIZEN_A, "m@1", random_templates(1, 512, 1)[0], create=minimal_citizen(CITIZEN_A)
        )

        two = list(synthetic_citizens(2, seed=9))
        with pytest.raises(FvsError) as info, store.db.tx() as tx:
            tx.execute(_INSERT, _row(two[0]))
            assert _terminate_others(url) >= 1  # the transaction is open and half done
            tx.execute(_INSERT, _row(two[1]))
        assert info.value.code is ErrorCode.STORE_UNAVAILABLE
        assert "PostgreSQL at" in info.value.message
        # nothing half-written, and the next calls reconnect by themselves
        assert store.count_citizens() == 1
        _terminate_others(url)  # idle pooled connections die too: checked before lending
        assert store.get_citizen(CITIZEN_A) is not None
        assert store.add_citizens(synthetic_citizens(200, seed=9)) == 200
    finally:
        store.close()


def test_data_directory_and_files_are_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = StoreSettings(data_dir=data)
    registry = open_registry(settings)
    access = open_access(settings)
    registry.add_template(
        CITIZEN_A, "m@1", random_templates(1, 512, 1)[0], create=minimal_citizen(CITIZEN_A)
    )
    try:
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        files = [p for p in data.rglob("*") if p.is_file()]
        assert {p.name for p in files} >= {
            "registry.sqlite3", "registry.sqlite3-wal", "access.sqlite3", "template.key",
        }  # fmt: skip
        for f in files:
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
        assert stat.S_IMODE((data / "keys").stat().st_mode) == 0o700
    finally:
        registry.close()
        access.close()
    # an existing directory made 0755 by an older release is tightened on open
    data.chmod(0o755)
    open_access(settings).close()
    assert stat.S_IMODE(data.stat().st_mode) == 0o700


def test_serve_refuses_an_unmigrated_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conn = sqlite3.connect(tmp_path / "registry.sqlite3")
    conn.executescript(REGISTRY_MIGRATIONS["sqlite"][0])  # the last release's registry
    conn.close()
    code = main(["serve", "--insecure", "--data-dir", str(tmp_path), "--address", "127.0.0.1:0"])
    assert code == 2
    err = capsys.readouterr().err
    assert f"run `fvs db migrate --data-dir {tmp_path}`" in err
