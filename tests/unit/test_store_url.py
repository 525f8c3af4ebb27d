"""The store URL: one name for where the registry, access rules and audit trail live."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from fvs.errors import ErrorCode, FvsError
from fvs.store.url import parse_store_url


def test_default_is_the_sqlite_data_dir() -> None:
    loc = parse_store_url(None, Path("fvs-data"))
    assert (loc.backend, loc.sqlite_dir) == ("sqlite", Path("fvs-data"))


def test_sqlite_urls_relative_and_absolute() -> None:
    assert parse_store_url("sqlite:///rel/dir", Path("x")).sqlite_dir == Path("rel/dir")
    assert parse_store_url("sqlite:////abs/dir", Path("x")).sqlite_dir == Path("/abs/dir")


def test_postgresql_url_and_redaction() -> None:
    loc = parse_store_url("postgresql://fvs:secret@db:5432/fvs", Path("x"))
    assert loc.backend == "postgresql"
    assert loc.dsn == "postgresql://fvs:secret@db:5432/fvs"
    assert "secret" not in loc.redacted()
    assert parse_store_url("postgres://db/fvs", Path("x")).dsn == "postgresql://db/fvs"


@pytest.mark.parametrize("url", ["mysql://db/fvs", "just-a-path", "sqlite:///"])
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(FvsError) as err:
        parse_store_url(url, Path("x"))
    assert err.value.code is ErrorCode.INVALID_REQUEST


def test_pg_fixture_gives_a_fresh_database(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
    assert tables == (0,)
