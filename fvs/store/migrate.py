"""Versioned schema migrations, per database and per component.

Each database has a ``schema_versions`` table with one row per component ("registry",
"access", "audit") and the version its schema is at. A component's migrations are ordered SQL
scripts per backend (script k takes version k to k + 1); ``migrate`` runs the missing ones,
each in one transaction with its version bump (a second run is a no-op; two runs at once
queue on a lock). ``check`` is what opening a store does: the schema must be exactly the
version this FVS knows, or it refuses with the command to run.

SQLite data directories of the release before versions existed hold the version-1 schema with
no ``schema_versions`` table: they are recognised by their tables and read as version 1.
A brand-new, empty SQLite database is initialised to the current schema on first open (the
embedded default needs no setup); PostgreSQL never is: run ``fvs db migrate``.
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
from dataclasses import dataclass

from fvs.errors import ConfigError
from fvs.store.db import Database, Tx

log = logging.getLogger(__name__)

Migrations = dict[str, list[str]]  # backend -> ordered scripts

# The table a component's version-1 schema is recognised by (unversioned SQLite files).
LEGACY_TABLE = {"registry": "citizens", "access": "agencies"}
# SQLite: one file per component in the data directory.
SQLITE_FILES = {
    "registry": "registry.sqlite3",
    "access": "access.sqlite3",
    "audit": "audit.sqlite3",
    # the Digital ID tables (issue 14) live beside the registry's
    "digitalid": "registry.sqlite3",
}
# The audit trail's schema is provided by fvs.audit.schema (when that module exists).
AUDIT_SCHEMA_MODULE = "fvs.audit.schema"

_VERSIONS = """
CREATE TABLE IF NOT EXISTS schema_versions (
    component   TEXT PRIMARY KEY,
    version     INTEGER NOT NULL,
    updated_at  TEXT NOT NULL
)
"""


class SchemaError(ConfigError):
    """The database's schema is not the one this FVS runs on."""


def components() -> dict[str, Migrations]:
    """Every component's migrations: registry and access always, audit when provided."""
    from fvs.access.store import ACCESS_MIGRATIONS  # noqa: PLC0415  (it imports this module)
    from fvs.store.schema import REGISTRY_MIGRATIONS  # noqa: PLC0415

    found: dict[str, Migrations] = {
        "registry": REGISTRY_MIGRATIONS,
        "access": ACCESS_MIGRATIONS,
    }
    try:
        module = importlib.import_module(AUDIT_SCHEMA_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != AUDIT_SCHEMA_MODULE:
            raise
    else:
        found["audit"] = dict(module.AUDIT_MIGRATIONS)
    from fvs.digitalid.schema import DIGITALID_MIGRATIONS  # noqa: PLC0415

    found["digitalid"] = dict(DIGITALID_MIGRATIONS)
    return found


def _has_table(db: Database, name: str) -> bool:
    if db.backend == "sqlite":
        sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
    else:
        sql = (
            "SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema()"
            " AND table_name = ?"
        )
    return bool(db.read(sql, (name,)))


def current_version(db: Database, component: str) -> int:
    """The component's schema version in ``db`` (0: none)."""
    if _has_table(db, "schema_versions"):
        rows = db.read("SELECT version FROM schema_versions WHERE component = ?", (component,))
        if rows:
            return int(rows[0][0])
    legacy = LEGACY_TABLE.get(component)
    if legacy and _has_table(db, legacy):
        return 1
    return 0


def _version_in_tx(tx: Tx, db: Database, component: str) -> int:
    row = tx.execute(
        "SELECT version FROM schema_versions WHERE component = ?", (component,)
    ).fetchone()
    if row is not None:
        return int(row[0])
    legacy = LEGACY_TABLE.get(component)
    return 1 if legacy and _has_table(db, legacy) else 0


@dataclass(frozen=True)
class Status:
    component: str
    where: str
    version: int
    latest: int

    @property
    def state(self) -> str:
        if self.version == self.latest:
            return "current"
        if self.version > self.latest:
            return "newer than this FVS"
        return "empty" if self.version == 0 else "needs migration"


def status(db: Database, component: str, migrations: Migrations) -> Status:
    scripts = migrations.get(db.backend, [])
    return Status(component, db.where, current_version(db, component), len(scripts))


def migrate(db: Database, component: str, migrations: Migrations) -> tuple[int, int]:
    """Bring ``component`` to the latest version. Returns (from, to); from == to: no-op."""
    scripts = migrations.get(db.backend)
    if scripts is None:
        raise SchemaError(f"component {component} has no schema for {db.backend}")
    start = current_version(db, component)
    if start > len(scripts):
        raise _newer(db, component, start, len(scripts))
    if start == len(scripts):
        return start, start
    with db.tx() as tx:
        tx.execute(_VERSIONS)
    version = start
    while True:
        with db.tx() as tx:
            if db.backend == "postgresql":  # one migrator at a time, across machines
                tx.execute("SELECT pg_advisory_xact_lock(hashtext('fvs-schema-migrate'))")
            version = _version_in_tx(tx, db, component)
            if version >= len(scripts):
                break
            tx.script(scripts[version])
            tx.execute(
                "INSERT INTO schema_versions VALUES (?, ?, ?) ON CONFLICT (component)"
                " DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at",
                (component, version + 1, dt.datetime.now(dt.UTC).isoformat()),
            )
            log.info("%s in %s: schema version %d -> %d", component, db.where, version, version + 1)
    return start, version


def _newer(db: Database, component: str, version: int, latest: int) -> SchemaError:
    return SchemaError(
        f"the {component} schema in {db.where} is at version {version}, newer than this FVS "
        f"knows ({latest}): run a newer FVS (downgrades are not supported)"
    )


def check(db: Database, component: str, migrations: Migrations, how_to_migrate: str) -> None:
    """Refuse unless ``component`` is at the latest version; a brand-new empty SQLite
    database is first initialised to it."""
    scripts = migrations.get(db.backend, [])
    version = current_version(db, component)
    if version == 0 and db.backend == "sqlite" and db.is_empty():
        migrate(db, component, migrations)
        return
    if version == len(scripts):
        return
    if version > len(scripts):
        raise _newer(db, component, version, len(scripts))
    state = "has no schema" if version == 0 else f"is at schema version {version}"
    raise SchemaError(
        f"the {component} store in {db.where} {state}; this FVS needs version {len(scripts)}: "
        f"run `{how_to_migrate}`"
    )
