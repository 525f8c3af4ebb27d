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

# v3: the change log on SQLite too (several processes on one data directory, index snapshots),
# and the duplicate cases of 1:N search (issue 9: fvs.dedup).
_SQLITE_V3 = """
-- Every enrolment and erasure ('*' = a bulk change: rebuild, do not replay), in commit order.
CREATE TABLE template_changes (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    citizen_id  TEXT NOT NULL,
    changed_at  TEXT NOT NULL
);
CREATE INDEX template_changes_at ON template_changes (changed_at);
CREATE TABLE duplicate_cases (
    case_id            INTEGER PRIMARY KEY AUTOINCREMENT,
    opened_at          TEXT NOT NULL,
    source             TEXT NOT NULL CHECK (source IN ('refused', 'flagged', 'scan')),
    citizen_id         TEXT NOT NULL,    -- the enrolling citizen (or the scan pair's first)
    template_version   INTEGER NOT NULL, -- 0: refused, nothing was stored
    candidate_id       TEXT NOT NULL,    -- the best enrolled candidate
    candidate_version  INTEGER NOT NULL,
    similarity         REAL NOT NULL,
    score              REAL NOT NULL,
    candidates         INTEGER NOT NULL, -- citizens at or above the threshold
    model_id           TEXT NOT NULL,
    status             TEXT NOT NULL DEFAULT 'open'
                       CHECK (status IN ('open', 'same_person', 'different_people')),
    resolved_at        TEXT,
    resolved_by        TEXT NOT NULL DEFAULT '',
    note               TEXT NOT NULL DEFAULT ''
);
CREATE INDEX duplicate_cases_status ON duplicate_cases (status, case_id);
CREATE INDEX duplicate_cases_pair ON duplicate_cases (citizen_id, candidate_id);
-- Pairs adjudicated as different people (citizen_low < citizen_high): never raised again.
CREATE TABLE distinct_pairs (
    citizen_low   TEXT NOT NULL,
    citizen_high  TEXT NOT NULL,
    case_id       INTEGER NOT NULL,
    decided_at    TEXT NOT NULL,
    PRIMARY KEY (citizen_low, citizen_high)
) WITHOUT ROWID;
"""

_PG_V3 = """
CREATE TABLE duplicate_cases (
    case_id            BIGSERIAL PRIMARY KEY,
    opened_at          TIMESTAMPTZ NOT NULL,
    source             TEXT NOT NULL CHECK (source IN ('refused', 'flagged', 'scan')),
    citizen_id         TEXT NOT NULL,
    template_version   INTEGER NOT NULL,
    candidate_id       TEXT NOT NULL,
    candidate_version  INTEGER NOT NULL,
    similarity         DOUBLE PRECISION NOT NULL,
    score              DOUBLE PRECISION NOT NULL,
    candidates         INTEGER NOT NULL,
    model_id           TEXT NOT NULL,
    status             TEXT NOT NULL DEFAULT 'open'
                       CHECK (status IN ('open', 'same_person', 'different_people')),
    resolved_at        TIMESTAMPTZ,
    resolved_by        TEXT NOT NULL DEFAULT '',
    note               TEXT NOT NULL DEFAULT ''
);
CREATE INDEX duplicate_cases_status ON duplicate_cases (status, case_id);
CREATE INDEX duplicate_cases_pair ON duplicate_cases (citizen_id, candidate_id);
CREATE TABLE distinct_pairs (
    citizen_low   TEXT NOT NULL,
    citizen_high  TEXT NOT NULL,
    case_id       BIGINT NOT NULL,
    decided_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (citizen_low, citizen_high)
);
"""

REGISTRY_MIGRATIONS: dict[str, list[str]] = {
    "sqlite": [_SQLITE_V1, _SQLITE_V2, _SQLITE_V3],
    "postgresql": [_PG_V1, _PG_V2, _PG_V3],
}
