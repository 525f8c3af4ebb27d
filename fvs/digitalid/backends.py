"""Open the Digital ID store where the deployment's store URL points."""

from __future__ import annotations

from fvs.digitalid.postgres import PostgresIdCardStore
from fvs.digitalid.store import IdCardStore, SqliteIdCardStore
from fvs.store.url import StoreLocation


def open_card_store(location: StoreLocation) -> IdCardStore:
    """SQLite: tables in ``registry.sqlite3`` of the data directory; PostgreSQL: tables in
    that database (created if missing, until the migration runner owns them)."""
    if location.backend == "postgresql" and location.dsn:
        return PostgresIdCardStore(location.dsn)
    assert location.sqlite_dir is not None
    return SqliteIdCardStore(location.sqlite_dir)
