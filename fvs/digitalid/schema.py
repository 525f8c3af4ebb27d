"""The Digital ID tables, per backend, as ordered migration scripts.

``DIGITALID_MIGRATIONS[backend]`` lists SQL scripts to run in order, once each (a migration
runner records which ran). Every statement is idempotent (IF NOT EXISTS), so the SQLite store
also runs them all at open until a runner takes over.

- ``digitalid_cards``: one row per citizen with a card: laser code (canonical, no dashes),
  birth date as registered (``YYYY-MM-DD``, month/day ``00`` when unknown), issue and expiry
  dates, status and reason, death date, house-registration address.
- ``digitalid_no_match``: one row per NO_MATCH answer (agency, keyed citizen hash, time), the
  sliding-window counter against attribute guessing; shared by every server on the store.
- ``digitalid_permit_services``: which services (FVS, DIGITAL_ID) each permit covers; a permit
  with no row covers FVS only. ``permit_id`` refers to the access store's permits (another
  database file under SQLite, hence no foreign key there).
"""

from __future__ import annotations

_SQLITE_V1 = """
CREATE TABLE IF NOT EXISTS digitalid_cards (
    citizen_id     TEXT PRIMARY KEY CHECK (length(citizen_id) = 13),
    laser_code     TEXT NOT NULL CHECK (length(laser_code) = 12),
    birth_date     TEXT NOT NULL CHECK (length(birth_date) = 10),
    issued_on      TEXT NOT NULL,
    expires_on     TEXT NOT NULL,
    card_status    TEXT NOT NULL CHECK (card_status IN ('ACTIVE', 'EXPIRED', 'REVOKED')),
    status_reason  TEXT NOT NULL DEFAULT ''
        CHECK (status_reason IN ('', 'LOST', 'STOLEN', 'DAMAGED', 'REPLACED', 'DECEASED')),
    deceased_on    TEXT,
    house_no       TEXT NOT NULL DEFAULT '',
    district       TEXT NOT NULL,
    province       TEXT NOT NULL,
    district_en    TEXT NOT NULL DEFAULT '',
    province_en    TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS digitalid_cards_laser ON digitalid_cards (laser_code);

CREATE TABLE IF NOT EXISTS digitalid_no_match (
    agency        TEXT NOT NULL,
    citizen_hash  TEXT NOT NULL,
    at            REAL NOT NULL      -- seconds since the epoch
);

CREATE INDEX IF NOT EXISTS digitalid_no_match_key
    ON digitalid_no_match (agency, citizen_hash, at);

CREATE TABLE IF NOT EXISTS digitalid_permit_services (
    permit_id  INTEGER NOT NULL,
    service    TEXT NOT NULL CHECK (service IN ('FVS', 'DIGITAL_ID')),
    PRIMARY KEY (permit_id, service)
) WITHOUT ROWID;
"""

_POSTGRESQL_V1 = """
CREATE TABLE IF NOT EXISTS digitalid_cards (
    citizen_id     CHAR(13) PRIMARY KEY,
    laser_code     CHAR(12) NOT NULL,
    birth_date     CHAR(10) NOT NULL,
    issued_on      DATE NOT NULL,
    expires_on     DATE NOT NULL,
    card_status    TEXT NOT NULL CHECK (card_status IN ('ACTIVE', 'EXPIRED', 'REVOKED')),
    status_reason  TEXT NOT NULL DEFAULT ''
        CHECK (status_reason IN ('', 'LOST', 'STOLEN', 'DAMAGED', 'REPLACED', 'DECEASED')),
    deceased_on    DATE,
    house_no       TEXT NOT NULL DEFAULT '',
    district       TEXT NOT NULL,
    province       TEXT NOT NULL,
    district_en    TEXT NOT NULL DEFAULT '',
    province_en    TEXT NOT NULL DEFAULT ''
);

CREATE INDEX IF NOT EXISTS digitalid_cards_laser ON digitalid_cards (laser_code);

CREATE TABLE IF NOT EXISTS digitalid_no_match (
    id            BIGSERIAL PRIMARY KEY,
    agency        TEXT NOT NULL,
    citizen_hash  TEXT NOT NULL,
    at            DOUBLE PRECISION NOT NULL
);

CREATE INDEX IF NOT EXISTS digitalid_no_match_key
    ON digitalid_no_match (agency, citizen_hash, at);

CREATE TABLE IF NOT EXISTS digitalid_permit_services (
    permit_id  BIGINT NOT NULL,
    service    TEXT NOT NULL CHECK (service IN ('FVS', 'DIGITAL_ID')),
    PRIMARY KEY (permit_id, service)
);
"""

DIGITALID_MIGRATIONS: dict[str, list[str]] = {
    "sqlite": [_SQLITE_V1],
    "postgresql": [_POSTGRESQL_V1],
}
