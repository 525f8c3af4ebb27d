"""Agencies, supervisors, purposes, permits, systems and conditions, in SQLite
(``data_dir/access.sqlite3``, the embedded default) or PostgreSQL: one SQL implementation on a
:class:`fvs.store.db.Database`, and the :class:`AccessRecords` protocol the policy needs.

Nothing is cached here: several servers on one PostgreSQL database see a change made through
any of them on their very next call."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Protocol

from fvs.access.model import (
    Agency,
    AgencyKind,
    Permit,
    PermitStatus,
    Purpose,
    Role,
    Supervisor,
    System,
)
from fvs.errors import ErrorCode, FvsError
from fvs.store.db import Database, SqliteDatabase
from fvs.store.migrate import SQLITE_FILES, check

DB_FILE = SQLITE_FILES["access"]

_SQLITE_V1 = """
CREATE TABLE IF NOT EXISTS agencies (
    code                TEXT PRIMARY KEY,
    kind                TEXT NOT NULL CHECK (kind IN ('STATE', 'PRIVATE')),
    name                TEXT NOT NULL,
    registration_number TEXT NOT NULL UNIQUE,
    mission             TEXT NOT NULL,
    created_at          TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS supervisors (
    agency_code  TEXT NOT NULL REFERENCES agencies(code),
    name         TEXT NOT NULL,
    contact      TEXT NOT NULL,
    appointed_at TEXT NOT NULL,
    PRIMARY KEY (agency_code, name)
);
CREATE TABLE IF NOT EXISTS purposes (
    code        TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS permits (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    agency_code        TEXT NOT NULL REFERENCES agencies(code),
    status             TEXT NOT NULL CHECK (status IN ('ACTIVE', 'SUSPENDED', 'REVOKED')),
    status_reason      TEXT NOT NULL,
    status_changed_at  TEXT NOT NULL,
    valid_from         TEXT NOT NULL,
    valid_until        TEXT NOT NULL,
    conditions_version TEXT NOT NULL,
    granted_at         TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS permit_purposes (
    permit_id    INTEGER NOT NULL REFERENCES permits(id),
    purpose_code TEXT NOT NULL REFERENCES purposes(code),
    PRIMARY KEY (permit_id, purpose_code)
);
CREATE TABLE IF NOT EXISTS systems (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    agency_code   TEXT NOT NULL,            -- '' for operators
    name          TEXT NOT NULL,
    roles         TEXT NOT NULL,            -- comma-separated Role values
    fingerprint   TEXT NOT NULL UNIQUE,     -- sha256 of the DER client certificate
    subject       TEXT NOT NULL,
    active        INTEGER NOT NULL DEFAULT 1,
    registered_at TEXT NOT NULL,
    UNIQUE (agency_code, name)
);
CREATE TABLE IF NOT EXISTS conditions (
    version      TEXT PRIMARY KEY,
    summary      TEXT NOT NULL,
    effective_at TEXT NOT NULL
);
INSERT OR IGNORE INTO conditions VALUES ('2024-06-18',
    'DOPA announcement of 18 June 2024 on the Digital ID and FVS', '2024-06-18T00:00:00+00:00');
INSERT OR IGNORE INTO purposes VALUES
    ('KYC', 'Identity proofing when a customer opens an account or a service',
     '2024-06-18T00:00:00+00:00'),
    ('AUTH', 'Re-authenticating an existing customer before a sensitive transaction',
     '2024-06-18T00:00:00+00:00'),
    ('GOV_SERVICE', 'Proving identity to use a state e-service', '2024-06-18T00:00:00+00:00');
"""


_PG_V1 = """
CREATE TABLE agencies (
    code                TEXT PRIMARY KEY,
    kind                TEXT NOT NULL CHECK (kind IN ('STATE', 'PRIVATE')),
    name                TEXT NOT NULL,
    registration_number TEXT NOT NULL UNIQUE,
    mission             TEXT NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL
);
CREATE TABLE supervisors (
    agency_code  TEXT NOT NULL REFERENCES agencies(code),
    name         TEXT NOT NULL,
    contact      TEXT NOT NULL,
    appointed_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (agency_code, name)
);
CREATE TABLE purposes (
    code        TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE TABLE permits (
    id                 BIGSERIAL PRIMARY KEY,
    agency_code        TEXT NOT NULL REFERENCES agencies(code),
    status             TEXT NOT NULL CHECK (status IN ('ACTIVE', 'SUSPENDED', 'REVOKED')),
    status_reason      TEXT NOT NULL,
    status_changed_at  TIMESTAMPTZ NOT NULL,
    valid_from         TIMESTAMPTZ NOT NULL,
    valid_until        TIMESTAMPTZ NOT NULL,
    conditions_version TEXT NOT NULL,
    granted_at         TIMESTAMPTZ NOT NULL
);
CREATE TABLE permit_purposes (
    permit_id    BIGINT NOT NULL REFERENCES permits(id),
    purpose_code TEXT NOT NULL REFERENCES purposes(code),
    PRIMARY KEY (permit_id, purpose_code)
);
CREATE TABLE systems (
    id            BIGSERIAL PRIMARY KEY,
    agency_code   TEXT NOT NULL,
    name          TEXT NOT NULL,
    roles         TEXT NOT NULL,
    fingerprint   TEXT NOT NULL UNIQUE,
    subject       TEXT NOT NULL,
    active        INTEGER NOT NULL DEFAULT 1,
    registered_at TIMESTAMPTZ NOT NULL,
    UNIQUE (agency_code, name)
);
CREATE TABLE conditions (
    version      TEXT PRIMARY KEY,
    summary      TEXT NOT NULL,
    effective_at TIMESTAMPTZ NOT NULL,
    seq          BIGSERIAL NOT NULL
);
INSERT INTO conditions (version, summary, effective_at) VALUES ('2024-06-18',
    'DOPA announcement of 18 June 2024 on the Digital ID and FVS', '2024-06-18T00:00:00+00:00');
INSERT INTO purposes VALUES
    ('KYC', 'Identity proofing when a customer opens an account or a service',
     '2024-06-18T00:00:00+00:00'),
    ('AUTH', 'Re-authenticating an existing customer before a sensitive transaction',
     '2024-06-18T00:00:00+00:00'),
    ('GOV_SERVICE', 'Proving identity to use a state e-service', '2024-06-18T00:00:00+00:00');
"""

# Version 2: per-permit rate limits (issue 10), Verify calls per second and burst. No row: no
# limit.
_SQLITE_V2 = """
CREATE TABLE IF NOT EXISTS permit_rate_limits (
    permit_id   INTEGER PRIMARY KEY REFERENCES permits(id),
    calls_per_s REAL NOT NULL CHECK (calls_per_s > 0),
    burst       INTEGER NOT NULL CHECK (burst >= 1)
);
"""
_PG_V2 = """
CREATE TABLE IF NOT EXISTS permit_rate_limits (
    permit_id   BIGINT PRIMARY KEY REFERENCES permits(id),
    calls_per_s DOUBLE PRECISION NOT NULL CHECK (calls_per_s > 0),
    burst       INTEGER NOT NULL CHECK (burst >= 1)
);
"""

ACCESS_MIGRATIONS: dict[str, list[str]] = {
    "sqlite": [_SQLITE_V1, _SQLITE_V2],
    "postgresql": [_PG_V1, _PG_V2],
}

_PERMIT_SELECT = (
    "SELECT p.id, p.agency_code, p.status, p.status_reason, p.status_changed_at, p.valid_from,"
    " p.valid_until, p.conditions_version, p.granted_at, r.calls_per_s, r.burst"
    " FROM permits p LEFT JOIN permit_rate_limits r ON r.permit_id = p.id"
)


def _ts(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat()


def _dt(value: object) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC)
    return dt.datetime.fromisoformat(str(value))


class AccessRecords(Protocol):
    """What the access policy and the admin service read and write."""

    def agency(self, code: str) -> Agency: ...
    def agencies(self) -> list[Agency]: ...
    def add_agency(self, agency: Agency, now: dt.datetime) -> None: ...
    def add_supervisor(self, code: str, supervisor: Supervisor, now: dt.datetime) -> None: ...
    def add_purpose(self, purpose: Purpose, now: dt.datetime) -> None: ...
    def purpose(self, code: str) -> Purpose | None: ...
    def purposes(self) -> list[Purpose]: ...
    def grant_permit(
        self,
        agency_code: str,
        purposes: list[str],
        valid_from: dt.datetime,
        valid_until: dt.datetime,
        conditions_version: str,
        now: dt.datetime,
    ) -> Permit: ...
    def permit(self, permit_id: int) -> Permit: ...
    def permits_of(self, agency_code: str) -> list[Permit]: ...
    def set_permit_status(
        self, permit_id: int, status: PermitStatus, reason: str, now: dt.datetime
    ) -> Permit: ...
    def add_system(
        self,
        agency_code: str,
        name: str,
        roles: frozenset[Role],
        fingerprint: str,
        subject: str,
        now: dt.datetime,
    ) -> System: ...
    def set_system_active(self, agency_code: str, name: str, active: bool) -> None: ...
    def system_by_fingerprint(self, fingerprint: str) -> System | None: ...
    def systems_of(self, agency_code: str) -> list[System]: ...
    def set_conditions(self, version: str, summary: str, now: dt.datetime) -> None: ...
    def conditions_version(self) -> str: ...
    def close(self) -> None: ...


class AccessStore:
    """:class:`AccessRecords` in SQL. ``where``: a data directory (its SQLite file, created
    at the current schema when new) or an open, checked :class:`Database`."""

    def __init__(self, where: Path | str | Database) -> None:
        if isinstance(where, (Path, str)):
            db = SqliteDatabase(Path(where) / DB_FILE)
            try:
                check(db, "access", ACCESS_MIGRATIONS, f"fvs db migrate --data-dir {where}")
            except BaseException:
                db.close()
                raise
            self.db: Database = db
        else:
            self.db = where

    def close(self) -> None:
        self.db.close()

    # agencies -------------------------------------------------------------------------
    def add_agency(self, agency: Agency, now: dt.datetime) -> None:
        with self.db.tx() as conn:
            conn.execute(
                "INSERT INTO agencies VALUES (?,?,?,?,?,?)",
                (
                    agency.code,
                    agency.kind.value,
                    agency.name,
                    agency.registration_number,
                    agency.mission,
                    _ts(now),
                ),
            )
            for sup in agency.supervisors:
                conn.execute(
                    "INSERT INTO supervisors VALUES (?,?,?,?)",
                    (agency.code, sup.name, sup.contact, _ts(now)),
                )

    def add_supervisor(self, code: str, supervisor: Supervisor, now: dt.datetime) -> None:
        self.agency(code)
        with self.db.tx() as conn:
            conn.execute(
                "INSERT INTO supervisors VALUES (?,?,?,?)",
                (code, supervisor.name, supervisor.contact, _ts(now)),
            )

    def agency(self, code: str) -> Agency:
        rows = self.db.read("SELECT * FROM agencies WHERE code = ?", (code,))
        if not rows:
            raise FvsError(ErrorCode.AGENCY_NOT_FOUND, f"no agency {code!r}")
        r = rows[0]
        sups = self.db.read(
            "SELECT name, contact FROM supervisors WHERE agency_code = ? ORDER BY name", (code,)
        )
        return Agency(
            code=str(r[0]),
            kind=AgencyKind(r[1]),
            name=str(r[2]),
            registration_number=str(r[3]),
            mission=str(r[4]),
            supervisors=tuple(Supervisor(str(n), str(c)) for n, c in sups),
            created_at=_dt(r[5]),
        )

    def agencies(self) -> list[Agency]:
        return [
            self.agency(str(r[0])) for r in self.db.read("SELECT code FROM agencies ORDER BY code")
        ]

    # purposes -------------------------------------------------------------------------
    def add_purpose(self, purpose: Purpose, now: dt.datetime) -> None:
        with self.db.tx() as conn:
            conn.execute(
                "INSERT INTO purposes VALUES (?,?,?)", (purpose.code, purpose.description, _ts(now))
            )

    def purpose(self, code: str) -> Purpose | None:
        rows = self.db.read("SELECT code, description FROM purposes WHERE code = ?", (code,))
        return Purpose(str(rows[0][0]), str(rows[0][1])) if rows else None

    def purposes(self) -> list[Purpose]:
        rows = self.db.read("SELECT code, description FROM purposes ORDER BY code")
        return [Purpose(str(c), str(d)) for c, d in rows]

    # permits --------------------------------------------------------------------------
    def grant_permit(
        self,
        agency_code: str,
        purposes: list[str],
        valid_from: dt.datetime,
        valid_until: dt.datetime,
        conditions_version: str,
        now: dt.datetime,
    ) -> Permit:
        self.agency(agency_code)
        for code in purposes:
            if self.purpose(code) is None:
                raise FvsError(ErrorCode.UNKNOWN_PURPOSE, f"no purpose {code!r}", purpose=code)
        with self.db.tx() as conn:
            cur = conn.execute(
                "INSERT INTO permits (agency_code, status, status_reason, status_changed_at,"
                " valid_from, valid_until, conditions_version, granted_at)"
                " VALUES (?, 'ACTIVE', 'granted', ?, ?, ?, ?, ?) RETURNING id",
                (
                    agency_code,
                    _ts(now),
                    _ts(valid_from),
                    _ts(valid_until),
                    conditions_version,
                    _ts(now),
                ),
            )
            permit_id = int(cur.fetchone()[0])
            conn.executemany(
                "INSERT INTO permit_purposes VALUES (?, ?)", [(permit_id, p) for p in purposes]
            )
        return self.permit(permit_id)

    def permit(self, permit_id: int) -> Permit:
        rows = self.db.read(_PERMIT_SELECT + " WHERE p.id = ?", (permit_id,))
        if not rows:
            raise FvsError(ErrorCode.PERMIT_NOT_FOUND, f"no permit {permit_id}")
        return self._permit(rows[0])

    def _permit(self, r: tuple[object, ...]) -> Permit:
        purposes = self.db.read(
            "SELECT purpose_code FROM permit_purposes WHERE permit_id = ? ORDER BY purpose_code",
            (r[0],),
        )
        return Permit(
            id=int(str(r[0])),
            agency_code=str(r[1]),
            status=PermitStatus(r[2]),
            status_reason=str(r[3]),
            status_changed_at=_dt(r[4]),
            valid_from=_dt(r[5]),
            valid_until=_dt(r[6]),
            purposes=tuple(str(p[0]) for p in purposes),
            conditions_version=str(r[7]),
            granted_at=_dt(r[8]),
            rate_per_s=None if r[9] is None else float(str(r[9])),
            burst=None if r[10] is None else int(str(r[10])),
        )

    def permits_of(self, agency_code: str) -> list[Permit]:
        rows = self.db.read(
            _PERMIT_SELECT + " WHERE p.agency_code = ? ORDER BY p.id DESC", (agency_code,)
        )
        return [self._permit(r) for r in rows]

    def set_permit_status(
        self, permit_id: int, status: PermitStatus, reason: str, now: dt.datetime
    ) -> Permit:
        current = self.permit(permit_id)
        if current.status is PermitStatus.REVOKED:
            raise FvsError(
                ErrorCode.INVALID_TRANSITION, f"permit {permit_id} is revoked; grant a new one"
            )
        if current.status is status:
            raise FvsError(
                ErrorCode.INVALID_TRANSITION,
                f"permit {permit_id} is already {status.value.lower()}",
            )
        with self.db.tx() as conn:
            conn.execute(
                "UPDATE permits SET status = ?, status_reason = ?, status_changed_at = ?"
                " WHERE id = ?",
                (status.value, reason, _ts(now), permit_id),
            )
        return self.permit(permit_id)

    def set_rate_limit(self, permit_id: int, rate_per_s: float | None, burst: int) -> Permit:
        """Limit Verify calls under a permit (None: remove the limit)."""
        self.permit(permit_id)
        with self.db.tx() as conn:
            if rate_per_s is None:
                conn.execute("DELETE FROM permit_rate_limits WHERE permit_id = ?", (permit_id,))
            else:
                conn.execute(
                    "INSERT INTO permit_rate_limits VALUES (?, ?, ?) ON CONFLICT (permit_id)"
                    " DO UPDATE SET calls_per_s = excluded.calls_per_s, burst = excluded.burst",
                    (permit_id, rate_per_s, burst),
                )
        return self.permit(permit_id)

    # systems --------------------------------------------------------------------------
    def add_system(
        self,
        agency_code: str,
        name: str,
        roles: frozenset[Role],
        fingerprint: str,
        subject: str,
        now: dt.datetime,
    ) -> System:
        if agency_code:
            self.agency(agency_code)
        with self.db.tx() as conn:
            cur = conn.execute(
                "INSERT INTO systems (agency_code, name, roles, fingerprint, subject,"
                " registered_at) VALUES (?,?,?,?,?,?) RETURNING id",
                (
                    agency_code,
                    name,
                    ",".join(sorted(r.value for r in roles)),
                    fingerprint,
                    subject,
                    _ts(now),
                ),
            )
            system_id = int(cur.fetchone()[0])
        return System(system_id, name, agency_code, roles, fingerprint)

    def set_system_active(self, agency_code: str, name: str, active: bool) -> None:
        with self.db.tx() as conn:
            changed = conn.execute(
                "UPDATE systems SET active = ? WHERE agency_code = ? AND name = ?",
                (int(active), agency_code, name),
            ).rowcount
        if not changed:
            raise FvsError(ErrorCode.SYSTEM_NOT_FOUND, f"no system {agency_code}/{name}")

    def system_by_fingerprint(self, fingerprint: str) -> System | None:
        rows = self.db.read(
            "SELECT id, name, agency_code, roles, fingerprint, active FROM systems"
            " WHERE fingerprint = ?",
            (fingerprint,),
        )
        return self._system(rows[0]) if rows else None

    def systems_of(self, agency_code: str) -> list[System]:
        rows = self.db.read(
            "SELECT id, name, agency_code, roles, fingerprint, active FROM systems"
            " WHERE agency_code = ? ORDER BY name",
            (agency_code,),
        )
        return [self._system(r) for r in rows]

    @staticmethod
    def _system(r: tuple[object, ...]) -> System:
        return System(
            id=int(str(r[0])),
            name=str(r[1]),
            agency_code=str(r[2]),
            roles=frozenset(Role(x) for x in str(r[3]).split(",") if x),
            fingerprint=str(r[4]),
            active=bool(r[5]),
        )

    # conditions -----------------------------------------------------------------------
    def set_conditions(self, version: str, summary: str, now: dt.datetime) -> None:
        with self.db.tx() as conn:
            conn.execute(
                "INSERT INTO conditions (version, summary, effective_at) VALUES (?,?,?)",
                (version, summary, _ts(now)),
            )

    def conditions_version(self) -> str:
        order = "rowid" if self.db.backend == "sqlite" else "seq"
        rows = self.db.read(
            f"SELECT version FROM conditions ORDER BY effective_at DESC, {order} DESC LIMIT 1"
        )
        return str(rows[0][0]) if rows else ""
