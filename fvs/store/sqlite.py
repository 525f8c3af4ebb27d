"""SQLite (WAL) implementation of the civil-registration store, the embedded default."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from fvs.domain import CardStatus, Citizen, CitizenView, Embedding, Sex, Template
from fvs.errors import ErrorCode, FvsError
from fvs.store.db import Database

log = logging.getLogger(__name__)

DB_FILE = "registry.sqlite3"

_SCHEMA = """
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


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class SqliteStore:
    """The registry in ``data_dir/registry.sqlite3``."""

    def __init__(self, data_dir: Path) -> None:
        # 8 KiB pages hold three 512-d templates; at 4 KiB each 2 KiB template takes a page.
        self.db = Database(Path(data_dir) / DB_FILE, _SCHEMA, page_size=8192)
        self.path = self.db.path
        self._tx = self.db.tx
        self._read = self.db.read

    def get_citizen(self, citizen_id: str) -> CitizenView | None:
        rows = self._read(
            "SELECT c.citizen_id, first_name_th, last_name_th, first_name_en, last_name_en, sex,"
            " birth_date, province, district, card_status, synthetic,"
            " coalesce(t.version, 0), coalesce(t.model_id, '')"
            " FROM citizens c LEFT JOIN face_templates t"
            " ON t.citizen_id = c.citizen_id AND t.active = 1 WHERE c.citizen_id = ?",
            (citizen_id,),
        )
        if not rows:
            return None
        r = rows[0]
        citizen = Citizen(
            citizen_id=str(r[0]),
            first_name_th=str(r[1]),
            last_name_th=str(r[2]),
            first_name_en=str(r[3]),
            last_name_en=str(r[4]),
            sex=Sex(r[5]),
            birth_date=dt.date.fromisoformat(str(r[6])),
            province=str(r[7]),
            district=str(r[8]),
            card_status=CardStatus(r[9]),
            synthetic=bool(r[10]),
        )
        return CitizenView(
            citizen=citizen, template_version=int(str(r[11])), template_model=str(r[12])
        )

    def add_citizen(self, citizen: Citizen) -> bool:
        with self._tx() as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO citizens VALUES (?,?,?,?,?,?,?,?,?,?,?,0,?)",
                _citizen_row(citizen, _now()),
            )
            return cur.rowcount == 1

    def add_citizens(
        self,
        citizens: Iterable[Citizen],
        templates: Iterable[tuple[str, np.ndarray]] | None = None,
        model_id: str = "",
    ) -> int:
        """Bulk insert (one transaction); existing IDs are skipped. Returns rows inserted."""
        now = _now()
        with self._tx() as conn:
            before = conn.total_changes
            conn.executemany(
                "INSERT OR IGNORE INTO citizens VALUES (?,?,?,?,?,?,?,?,?,?,?,0,?)",
                (_citizen_row(c, now) for c in citizens),
            )
            inserted = conn.total_changes - before
            if templates is not None:
                stamp = now.isoformat()
                conn.executemany(
                    "INSERT INTO face_templates SELECT ?, last_version + 1, ?, ?, ?, ?, 1"
                    " FROM citizens WHERE citizen_id = ? AND last_version = 0",
                    (
                        (cid, model_id, int(v.shape[0]), _blob(v), stamp, cid)
                        for cid, v in templates
                    ),
                )
                conn.execute(
                    "UPDATE citizens SET last_version = 1 WHERE last_version = 0 AND EXISTS"
                    " (SELECT 1 FROM face_templates t WHERE t.citizen_id = citizens.citizen_id)"
                )
        return inserted

    def active_template(self, citizen_id: str) -> Template | None:
        rows = self._read(
            "SELECT model_id, dim, vector, version, enrolled_at FROM face_templates"
            " WHERE citizen_id = ? AND active = 1",
            (citizen_id,),
        )
        if not rows:
            return None
        model_id, dim, blob, version, enrolled_at = rows[0]
        vector = np.frombuffer(blob, dtype="<f4")  # type: ignore[call-overload]
        if vector.shape[0] != dim:
            raise FvsError(ErrorCode.INTERNAL, "stored template is corrupt")
        return Template(
            citizen_id=citizen_id,
            model_id=str(model_id),
            vector=vector.astype(np.float32),
            version=int(str(version)),
            enrolled_at=dt.datetime.fromisoformat(str(enrolled_at)),
        )

    def add_template(
        self, citizen_id: str, model_id: str, vector: Embedding, create: Citizen | None = None
    ) -> tuple[Template, bool]:
        now = _now()
        created = False
        with self._tx() as conn:
            if create is not None:
                created = (
                    conn.execute(
                        "INSERT OR IGNORE INTO citizens VALUES (?,?,?,?,?,?,?,?,?,?,?,0,?)",
                        _citizen_row(create, now),
                    ).rowcount
                    == 1
                )
            row = conn.execute(
                "SELECT last_version FROM citizens WHERE citizen_id = ?", (citizen_id,)
            ).fetchone()
            if row is None:
                raise FvsError(ErrorCode.CITIZEN_NOT_FOUND, "no citizen with this ID")
            version = int(row[0]) + 1
            conn.execute(
                "UPDATE face_templates SET active = 0 WHERE citizen_id = ? AND active = 1",
                (citizen_id,),
            )
            conn.execute(
                "INSERT INTO face_templates VALUES (?,?,?,?,?,?,1)",
                (
                    citizen_id,
                    version,
                    model_id,
                    int(vector.shape[0]),
                    _blob(vector),
                    now.isoformat(),
                ),
            )
            conn.execute(
                "UPDATE citizens SET last_version = ? WHERE citizen_id = ?", (version, citizen_id)
            )
        return Template(citizen_id, model_id, vector, version, now), created

    def delete_templates(self, citizen_id: str) -> int:
        with self._tx() as conn:
            if (
                conn.execute(
                    "SELECT 1 FROM citizens WHERE citizen_id = ?", (citizen_id,)
                ).fetchone()
                is None
            ):
                raise FvsError(ErrorCode.CITIZEN_NOT_FOUND, "no citizen with this ID")
            return conn.execute(
                "DELETE FROM face_templates WHERE citizen_id = ?", (citizen_id,)
            ).rowcount

    def active_templates(
        self, model_id: str, batch: int = 65536
    ) -> Iterator[tuple[list[str], np.ndarray, list[int]]]:
        """Every active template of ``model_id``, in chunks of (ids, (n, D) vectors, versions)."""
        cursor = self.db.conn().execute(
            "SELECT citizen_id, vector, version FROM face_templates"
            " WHERE active = 1 AND model_id = ?",
            (model_id,),
        )
        while rows := cursor.fetchmany(batch):
            ids = [str(r[0]) for r in rows]
            vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(
                len(rows), -1
            )
            yield ids, vectors.astype(np.float32), [int(r[2]) for r in rows]

    def count_citizens(self) -> int:
        return int(str(self._read("SELECT count(*) FROM citizens", ())[0][0]))

    def close(self) -> None:
        self.db.close()


def _blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def _citizen_row(c: Citizen, now: dt.datetime) -> tuple[object, ...]:
    return (
        c.citizen_id,
        c.first_name_th,
        c.last_name_th,
        c.first_name_en,
        c.last_name_en,
        c.sex.value,
        c.birth_date.isoformat(),
        c.province,
        c.district,
        c.card_status.value,
        int(c.synthetic),
        now.isoformat(),
    )
