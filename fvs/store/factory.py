"""Opening the stores a location names: one place that turns ``Settings.store`` into the
registry and the access rules, on SQLite files or one PostgreSQL database, with their schema
checked and the template key loaded."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from fvs.config import StoreSettings
from fvs.errors import ConfigError
from fvs.store.crypto import TemplateCipher, write_new_key
from fvs.store.db import Database, SqliteDatabase, private_dir
from fvs.store.index_snapshot import IndexSnapshots
from fvs.store.migrate import SQLITE_FILES, Migrations, check, components
from fvs.store.registry import SqlCitizenStore
from fvs.store.url import StoreLocation

if TYPE_CHECKING:
    from fvs.access.store import AccessStore

log = logging.getLogger(__name__)


def migrate_command(location: StoreLocation) -> str:
    """The command that migrates ``location`` (for messages)."""
    if location.backend == "sqlite":
        return f"fvs db migrate --data-dir {location.sqlite_dir}"
    return f"fvs db migrate --store {location.redacted()}"


def open_database(location: StoreLocation, component: str, pool_size: int = 8) -> Database:
    """The database ``component`` lives in, schema not checked."""
    if location.backend == "sqlite":
        assert location.sqlite_dir is not None
        page = 8192 if component == "registry" else 4096
        return SqliteDatabase(location.sqlite_dir / SQLITE_FILES[component], page_size=page)
    from fvs.store.pg import PgDatabase  # noqa: PLC0415  (psycopg only when asked for)

    return PgDatabase(location, max_size=pool_size)


def open_checked(
    location: StoreLocation, component: str, migrations: Migrations, pool_size: int = 8
) -> Database:
    db = open_database(location, component, pool_size)
    try:
        check(db, component, migrations, migrate_command(location))
    except BaseException:
        db.close()
        raise
    return db


def open_cipher(settings: StoreSettings, registry_db: Database) -> TemplateCipher:
    """The template key; created (0600) beside the data for a new embedded registry only."""
    path = settings.key_file()
    if not path.exists() and settings.template_key_file is None:
        sealed = registry_db.read("SELECT 1 FROM template_keys LIMIT 1")
        if registry_db.backend == "sqlite" and not sealed:
            private_dir(path.parent)
            kid = write_new_key(path)
            log.info("created template key %s in %s (mode 0600)", kid, path)
        elif registry_db.backend == "sqlite":
            raise ConfigError(
                f"the registry holds encrypted templates but the template key file {path} is "
                "missing: restore it, or give it with --template-key-file"
            )
    return TemplateCipher(Path(path))


def open_registry(settings: StoreSettings, pool_size: int = 8) -> SqlCitizenStore:
    """The registry with its template key, refused (ConfigError) on a schema that is not
    current or a key file that does not hold the keys its rows are sealed with."""
    location = settings.location()
    db = open_checked(location, "registry", components()["registry"], pool_size)
    try:
        store = SqlCitizenStore(db, open_cipher(settings, db), settings.template_encoding)
        store.check_keys()
    except BaseException:
        db.close()
        raise
    return store


def open_access(settings: StoreSettings, pool_size: int = 8) -> AccessStore:
    from fvs.access.store import AccessStore  # noqa: PLC0415  (access.store imports store)

    location = settings.location()
    return AccessStore(open_checked(location, "access", components()["access"], pool_size))


def open_snapshots(settings: StoreSettings, registry: SqlCitizenStore) -> IndexSnapshots | None:
    """Where this server keeps snapshots of its template index (data_dir/cache), or None
    when they are turned off (``index_snapshot``) or there is no template key to seal them."""
    if not settings.index_snapshot or registry.cipher is None:
        return None
    return IndexSnapshots(registry, settings.data_dir / "cache", settings.snapshot_interval_s)
