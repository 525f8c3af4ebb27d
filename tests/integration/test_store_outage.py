"""The database goes away and comes back: a private throw-away PostgreSQL cluster
(`FVS_TEST_PG_PRIVATE=1 scripts/ensure_postgres.sh`, port 55432) is stopped under an open
store and started again. Calls fail with STORE_UNAVAILABLE while it is down (promptly, never
a hang) and succeed again by themselves once it is back."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from fvs.config import StoreSettings
from fvs.errors import ErrorCode, FvsError
from fvs.store.crypto import write_new_key
from fvs.store.factory import open_access
from fvs.store.migrate import components, migrate

ROOT = Path(__file__).resolve().parents[2]
PRIVATE_DIR = Path(os.environ.get("FVS_TEST_PG_DIR", "/tmp/fvs-test-pg"))


def _pg_ctl(action: str) -> None:
    bindir = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: p.parent.name)[-1]
    run_as = ["runuser", "-u", "fvspg", "--"] if os.getuid() == 0 else []
    args = [str(bindir / "pg_ctl"), "-D", str(PRIVATE_DIR / "data"), "-w"]
    if action == "stop":
        args += ["-m", "fast", "stop"]
    else:
        args += ["-l", str(PRIVATE_DIR / "log"), "-o",
                 f"-p 55432 -k {PRIVATE_DIR} -c listen_addresses=127.0.0.1", "start"]  # fmt: skip
    subprocess.run([*run_as, *args], check=True, capture_output=True, timeout=60)


@pytest.fixture
def private_url() -> str:
    env = {k: v for k, v in os.environ.items() if k != "FVS_TEST_PG_URL"}
    done = subprocess.run(
        [str(ROOT / "scripts" / "ensure_postgres.sh")],
        env={**env, "FVS_TEST_PG_PRIVATE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"no private PostgreSQL cluster: {done.stderr.strip()}")
    base = done.stdout.strip()
    name = f"fvs_outage_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return f"{base.rpartition('/')[0]}/{name}"


def test_calls_fail_while_the_database_is_down_and_resume_when_it_is_back(
    private_url: str, tmp_path: Path
) -> None:
    settings = StoreSettings(url=private_url, data_dir=tmp_path)
    write_new_key(settings.key_file())
    from fvs.store.factory import open_database

    for name in ("registry", "access"):
        db = open_database(settings.location(), name, pool_size=2)
        migrate(db, name, components()[name])
        db.close()
    access = open_access(settings)
    try:
        assert access.conditions_version() == "2024-06-18"
        _pg_ctl("stop")
        try:
            start = time.monotonic()
            with pytest.raises(FvsError) as info:
                access.conditions_version()
            assert info.value.code is ErrorCode.STORE_UNAVAILABLE
            assert "PostgreSQL at postgresql://postgres@127.0.0.1:55432/" in info.value.message
            assert time.monotonic() - start < 15  # refused promptly, no hang
        finally:
            _pg_ctl("start")
        deadline = time.monotonic() + 15
        while True:  # the first call after the restart may still meet the old connection
            try:
                assert access.conditions_version() == "2024-06-18"
                break
            except FvsError as exc:
                assert exc.code is ErrorCode.STORE_UNAVAILABLE
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert access.purpose("KYC") is not None
    finally:
        access.close()
