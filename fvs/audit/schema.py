"""The audit trail's tables, as versioned migrations (``fvs db migrate`` registers them).

``AUDIT_MIGRATIONS[backend][version - 1]`` is the SQL script that brings the audit component
from ``version - 1`` to ``version``. The embedded backend keeps its trail in a JSONL file, so
it has no SQL. Every script is idempotent (``IF NOT EXISTS`` / ``OR REPLACE``), so applying it
twice is harmless.

PostgreSQL layout:
- ``audit_records``: one row per record; ``record`` is the exact canonical JSON that was
  hashed (``seq``, ``prev`` and ``hash`` included), ``agency`` and ``at`` are copies for
  indexed exports and usage. UPDATE, DELETE and TRUNCATE are refused by a trigger (defence
  in depth: the chain and the anchor catch a superuser who disables it).
- ``audit_head``: the one-row anchor, (seq, hash) of the last record, the chain key's id and
  an HMAC with the chain key, which never lives in the database. Updated in the same
  transaction as the records it anchors.
"""

from __future__ import annotations

from typing import Any

COMPONENT = "audit"

_V1_POSTGRESQL = """
CREATE TABLE IF NOT EXISTS audit_records (
    seq bigint PRIMARY KEY CHECK (seq > 0),
    at timestamptz NOT NULL,
    agency text NOT NULL DEFAULT '',
    hash text NOT NULL,
    record text NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_records_agency_at ON audit_records (agency, at);
CREATE TABLE IF NOT EXISTS audit_head (
    id smallint PRIMARY KEY CHECK (id = 1),
    seq bigint NOT NULL,
    hash text NOT NULL,
    key_id text NOT NULL DEFAULT '',
    mac text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000')
ON CONFLICT (id) DO NOTHING;
CREATE OR REPLACE FUNCTION audit_records_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only (% refused)', TG_OP;
END
$$;
CREATE OR REPLACE TRIGGER audit_records_append_only
BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_records
FOR EACH STATEMENT EXECUTE FUNCTION audit_records_append_only();
"""

# No "sqlite" key: the embedded trail is a JSONL file with its head file, so `fvs db migrate`
# has nothing to do for it (the runner skips components without the store's backend).
AUDIT_MIGRATIONS: dict[str, list[str]] = {
    "postgresql": [_V1_POSTGRESQL],
}


def apply(conn: Any, backend: str = "postgresql") -> int:
    """Run every audit migration for ``backend`` on ``conn`` (a psycopg connection) in one
    transaction; returns the version reached. For tests and for the migration runner, which
    records the version in its own table."""
    scripts = AUDIT_MIGRATIONS.get(backend, [])
    with conn.transaction():
        for script in scripts:
            conn.execute(script)
    return len(scripts)


def ensure_schema_for_tests(conn: Any) -> None:
    apply(conn, "postgresql")
