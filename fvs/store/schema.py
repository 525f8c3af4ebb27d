"""The registry's schema, as ordered migrations per backend: script k takes a database from
version k to k + 1 (see :mod:`fvs.store.migrate`). Append, never edit a shipped script."""

from __future__ import annotations

_SQLITE_V1 = """
CREATE TABLE IF NOT EXISTS citizens (
    citizen_id     TEXT PRIMARY KEY CHECK (length(citizen_id) = 13),
    first_name_th  TEXT NOT NULL,
    last_name_th   TEXT NOT NULL,
    first_name_en  TEXT NOT NULL,
    last_name_en   TEXT NOT NULL,
    sex            TEXT NOT NULL CHECK (sex IN ('M', 'F')),
    birth_date     TEXT NOT NULL,
    province       TEXT NOT NULL,
    district       TEXT NOT NULL,
    card_status    TEXT NOT NULL CHECK (card_status IN ('ACTIVE', 'EXPIRED', 'REVOKED')),
    synthetic      INTEGER NOT NULL DEFAULT 1,
    -- Highest template version ever issued; versions are never reused, even after erasure.
    last_version   INTEGER NOT NULL DEFAULT 0,
    created_at     TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS face_templates (
    citizen_id   TEXT NOT NULL REFERENCES citizens(citizen_id),
    version      INTEGER NOT NULL,
    model_id     TEXT NOT NULL,
    dim          INTEGER NOT NULL,
    vector       BLOB NOT NULL,          -- dim little-endian float32, L2-normalised
    enrolled_at  TEXT NOT NULL,
    active       INTEGER NOT NULL,       -- 1 for the template verification uses, 0 for history
    PRIMARY KEY (citizen_id, version)
);

CREATE UNIQUE INDEX IF NOT EXISTS one_active_template
    ON face_templates (citizen_id) WHERE active = 1;
"""

# v2: templates encrypted at rest and stored compactly.
_SQLITE_V2 = """
-- encoding of the (decrypted) vector: f32 | f16 | i8 (fvs.store.codec)
ALTER TABLE face_templates ADD COLUMN encoding TEXT NOT NULL DEFAULT 'f32';
-- the key the vector is sealed with ('' = plaintext, written before v2)
ALTER TABLE face_templates ADD COLUMN key_id TEXT NOT NULL DEFAULT '';
CREATE TABLE template_keys (
    key_id      TEXT PRIMARY KEY,       -- a hash of the key; the key itself is never here
    created_at  TEXT NOT NULL
);
"""

_PG_V1 = """
CREATE TABLE citizens (
    citizen_id     TEXT PRIMARY KEY CHECK (length(citizen_id) = 13),
    first_name_th  TEXT NOT NULL,
    last_name_th   TEXT NOT NULL,
    first_name_en  TEXT NOT NULL,
    last_name_en   TEXT NOT NULL,
    sex            TEXT NOT NULL CHECK (sex IN ('M', 'F')),
    birth_date     DATE NOT NULL,
    province       TEXT NOT NULL,
    district       TEXT NOT NULL,
    card_status    TEXT NOT NULL CHECK (card_status IN ('ACTIVE', 'EXPIRED', 'REVOKED')),
    synthetic      INTEGER NOT NULL DEFAULT 1,
    last_version   INTEGER NOT NULL DEFAULT 0,
    created_at     TIMESTAMPTZ NOT NULL
);
CREATE TABLE face_templates (
    citizen_id   TEXT NOT NULL REFERENCES citizens(citizen_id),
    version      INTEGER NOT NULL,
    model_id     TEXT NOT NULL,
    dim          INTEGER NOT NULL,
    vector       BYTEA NOT NULL,
    enrolled_at  TIMESTAMPTZ NOT NULL,
    active       INTEGER NOT NULL,
    PRIMARY KEY (citizen_id, version)
);
CREATE UNIQUE INDEX one_active_template ON face_templates (citizen_id) WHERE active = 1;
"""

_PG_V2 = """
ALTER TABLE face_templates ADD COLUMN encoding TEXT NOT NULL DEFAULT 'f32';
ALTER TABLE face_templates ADD COLUMN key_id TEXT NOT NULL DEFAULT '';
ALTER TABLE face_templates ALTER COLUMN vector SET STORAGE EXTERNAL;
CREATE TABLE template_keys (
    key_id      TEXT PRIMARY KEY,
    created_at  TIMESTAMPTZ NOT NULL
);
-- Every enrolment and erasure, for servers that missed a notification (fvs.store.sync).
CREATE TABLE template_changes (
    seq         BIGSERIAL PRIMARY KEY,
    citizen_id  TEXT NOT NULL,
    changed_at  TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX template_changes_at ON template_changes (changed_at);
"""

REGISTRY_MIGRATIONS: dict[str, list[str]] = {
    "sqlite": [_SQLITE_V1, _SQLITE_V2],
    "postgresql": [_PG_V1, _PG_V2],
}
