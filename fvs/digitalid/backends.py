"""Open the Digital ID store where the deployment's store URL points."""

from __future__ import annotations

from fvs.digitalid.schema import DIGITALID_MIGRATIONS
from fvs.digitalid.store import IdCardStore, SqlIdCardStore, SqliteIdCardStore
from fvs.store.factory import open_checked
from fvs.store.url import StoreLocation

POOL_SIZE = 4  # PostgreSQL connections of the Digital ID store, per server


def open_card_store(location: StoreLocation) -> IdCardStore:
    """SQLite: tables in ``registry.sqlite3`` of the data directory (brought to the current
    schema on open); PostgreSQL: tables in that database, whose schema must be current (run
    `fvs db migrate`, as for the registry and the access rules)."""
    if location.backend == "sqlite":
        assert location.sqlite_dir is not None
        return SqliteIdCardStore(location.sqlite_dir)
    return SqlIdCardStore(open_checked(location, "digitalid", DIGITALID_MIGRATIONS, POOL_SIZE))
