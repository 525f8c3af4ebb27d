"""The civil-registration store in SQL, one implementation for SQLite and PostgreSQL.

Templates are sealed with :class:`fvs.store.crypto.TemplateCipher` (associated data: citizen
ID, version, model id, encoding) when the store has one; rows sealed before encryption
(key id '') are read as plaintext until ``fvs registry rotate-key`` seals them. On
PostgreSQL every enrolment and erasure also appends to ``template_changes`` and notifies
``fvs_templates`` in its transaction, which is how other servers keep their template index in
step (:mod:`fvs.store.sync`).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from fvs.domain import CardStatus, Citizen, CitizenView, Embedding, Sex, Template
from fvs.errors import ConfigError, ErrorCode, FvsError
from fvs.store import codec
from fvs.store.base import TemplateChunk
from fvs.store.crypto import PLAINTEXT, TemplateCipher
from fvs.store.db import Database, Row, Tx, size_for_bulk

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "fvs_templates"
# The change-log entry of a bulk load (seed, import): readers rebuild rather than replay.
BULK_CHANGE = "*"
_CITIZEN_INSERT = "INSERT INTO citizens VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING"
_TEMPLATE_INSERT = (
    "INSERT INTO face_templates (citizen_id, version, model_id, dim, vector, enrolled_at,"
    " active, encoding, key_id) VALUES (?,?,?,?,?,?,1,?,?)"
)


# IDs per ``IN (...)`` list (SQLite allows 32,766 parameters a statement).
_IN_BATCH = 10_000


@dataclass(frozen=True)
class BulkRows:
    """A bulk load's rows: ``citizens`` as ``citizens`` table rows, ``templates`` as
    ``face_templates`` rows (version 1, active, sealed)."""

    citizens: list[Row]
    templates: list[Row]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _time(value: object) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value))


def _date(value: object) -> dt.date:
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))


class SqlCitizenStore:
    """Implements :class:`fvs.store.base.CitizenStore` on a :class:`Database`."""

    def __init__(
        self, db: Database, cipher: TemplateCipher | None = None, encoding: str = "f32"
    ) -> None:
        if encoding not in codec.ENCODINGS:
            raise ValueError(f"unknown template encoding {encoding!r}")
        self.db = db
        self.cipher = cipher
        self.encoding = encoding
        self._known_keys: set[str] = set()

    @property
    def backend(self) -> str:
        return self.db.backend

    # citizens -----------------------------------------------------------------------
    def get_citizen(self, citizen_id: str) -> CitizenView | None:
        rows = self.db.read(
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
            birth_date=_date(r[6]),
            province=str(r[7]),
            district=str(r[8]),
            card_status=CardStatus(r[9]),
            synthetic=bool(r[10]),
        )
        return CitizenView(citizen=citizen, template_version=int(r[11]), template_model=str(r[12]))

    def add_citizen(self, citizen: Citizen) -> bool:
        with self.db.tx() as tx:
            return tx.execute(_CITIZEN_INSERT, _citizen_row(citizen, 0, _now())).rowcount == 1

    def add_citizens(
        self,
        citizens: Iterable[Citizen],
        templates: Iterable[tuple[str, np.ndarray]] | None = None,
        model_id: str = "",
    ) -> int:
        """Bulk insert (one transaction); existing IDs are skipped, and so are templates for
        them. Returns the citizens inserted."""
        return self.add_bulk(self.bulk_rows(citizens, templates, model_id))

    def bulk_rows(
        self,
        citizens: Iterable[Citizen],
        templates: Iterable[tuple[str, np.ndarray]] | None = None,
        model_id: str = "",
    ) -> BulkRows:
        """The rows of :meth:`add_citizens` (see :func:`bulk_rows`)."""
        return bulk_rows(self.cipher, self.encoding, citizens, templates, model_id)

    def add_bulk(self, rows: BulkRows) -> int:
        """Writes :meth:`bulk_rows` in one transaction: citizens whose ID is new, and the
        templates of those; returns the citizens inserted. A template of a citizen that
        already existed is dropped (its history is not touched)."""
        if self.db.backend == "postgresql":
            return self._bulk_copy(rows)
        with self.db.tx() as tx:
            size_for_bulk(tx, len(rows.citizens))
            ids = [r[0] for r in rows.citizens]
            existing: set[str] = set()
            for i in range(0, len(ids), _IN_BATCH):
                part = ids[i : i + _IN_BATCH]
                marks = ",".join("?" * len(part))
                found = tx.execute(
                    f"SELECT citizen_id FROM citizens WHERE citizen_id IN ({marks})", part
                ).fetchall()
                existing.update(str(r[0]) for r in found)
            inserted = tx.executemany(
                _CITIZEN_INSERT, (r for r in rows.citizens if r[0] not in existing)
            )
            templates = [r for r in rows.templates if r[0] not in existing]
            if templates:
                self._register_key(tx, {str(r[8]) for r in templates})
                tx.executemany(
                    "INSERT INTO face_templates (citizen_id, version, model_id, dim, vector,"
                    " enrolled_at, active, encoding, key_id) VALUES (?,?,?,?,?,?,?,?,?)"
                    " ON CONFLICT DO NOTHING",
                    templates,
                )
                self._changed(tx, BULK_CHANGE)
        return inserted

    def _bulk_copy(self, rows: BulkRows) -> int:
        """PostgreSQL: COPY through staging tables (fvs.store.pg)."""
        from fvs.store.pg import PgDatabase  # noqa: PLC0415

        assert isinstance(self.db, PgDatabase)
        if rows.templates:
            with self.db.tx() as tx:
                self._register_key(tx, {str(r[8]) for r in rows.templates})
        inserted = self.db.bulk_add_citizens(rows.citizens, rows.templates)
        if rows.templates:
            with self.db.tx() as tx:
                self._changed(tx, BULK_CHANGE)
        return inserted

    def count_citizens(self) -> int:
        return int(self.db.read("SELECT count(*) FROM citizens")[0][0])

    # templates ----------------------------------------------------------------------
    def _aad(self, citizen_id: str, version: int, model_id: str, encoding: str) -> bytes:
        return TemplateCipher.associated_data(citizen_id, version, model_id, encoding)

    def _seal(
        self, citizen_id: str, version: int, model_id: str, vector: np.ndarray
    ) -> tuple[str, bytes]:
        payload = codec.encode(vector, self.encoding)
        if self.cipher is None:
            return PLAINTEXT, payload
        aad = self._aad(citizen_id, version, model_id, self.encoding)
        return self.cipher.seal(payload, aad)

    def _open(
        self, citizen_id: str, version: int, model_id: str, encoding: str, key_id: str, blob: bytes
    ) -> bytes:
        if key_id == PLAINTEXT:
            return blob
        if self.cipher is None:
            raise FvsError(
                ErrorCode.TEMPLATE_INTEGRITY,
                "the enrolled template is encrypted and this store was opened without the "
                "template key",
            )
        return self.cipher.open(key_id, blob, self._aad(citizen_id, version, model_id, encoding))

    def _register_key(self, tx: Tx, key_ids: set[str]) -> None:
        for kid in key_ids - self._known_keys - {PLAINTEXT}:
            tx.execute(
                "INSERT INTO template_keys VALUES (?, ?) ON CONFLICT DO NOTHING",
                (kid, _now().isoformat()),
            )
            self._known_keys.add(kid)

    def _changed(self, tx: Tx, citizen_id: str) -> None:
        """Log a change to ``citizen_id``'s templates (``BULK_CHANGE``: many at once) in the
        same transaction; PostgreSQL also notifies the other servers at commit."""
        if self.db.backend == "postgresql":
            tx.execute("INSERT INTO template_changes (citizen_id) VALUES (?)", (citizen_id,))
            tx.execute("SELECT pg_notify(?, ?)", (NOTIFY_CHANNEL, citizen_id))
        else:
            tx.execute(
                "INSERT INTO template_changes (citizen_id, changed_at) VALUES (?, ?)",
                (citizen_id, _now().isoformat()),
            )

    def last_change(self) -> int:
        """The change log's last sequence number (0 when empty): an index that has applied
        every change up to it is in step with the store."""
        rows = self.db.read("SELECT coalesce(max(seq), 0) FROM template_changes")
        return int(rows[0][0])

    def changes_since(self, seq: int, limit: int = 100_000) -> list[tuple[int, str]]:
        """(seq, citizen id) of the changes after ``seq``, in order; ``BULK_CHANGE`` marks a
        bulk load (the reader rebuilds instead of replaying)."""
        rows = self.db.read(
            "SELECT seq, citizen_id FROM template_changes WHERE seq > ? ORDER BY seq LIMIT ?",
            (seq, limit),
        )
        return [(int(r[0]), str(r[1])) for r in rows]

    def first_change(self) -> int:
        """The oldest sequence number still in the change log (0 when empty): a reader that
        last applied a change before ``first_change() - 1`` may have missed pruned ones."""
        rows = self.db.read("SELECT coalesce(min(seq), 0) FROM template_changes")
        return int(rows[0][0])

    def active_template(self, citizen_id: str) -> Template | None:
        rows = self.db.read(
            "SELECT model_id, dim, vector, version, enrolled_at, encoding, key_id"
            " FROM face_templates WHERE citizen_id = ? AND active = 1",
            (citizen_id,),
        )
        if not rows:
            return None
        model_id, dim, blob, version, enrolled_at, encoding, key_id = rows[0]
        payload = self._open(
            citizen_id, int(version), str(model_id), str(encoding), str(key_id), bytes(blob)
        )
        return Template(
            citizen_id=citizen_id,
            model_id=str(model_id),
            vector=codec.decode(payload, str(encoding), int(dim)),
            version=int(version),
            enrolled_at=_time(enrolled_at),
        )

    def add_template(
        self, citizen_id: str, model_id: str, vector: Embedding, create: Citizen | None = None
    ) -> tuple[Template, bool]:
        now = _now()
        created = False
        with self.db.tx() as tx:
            if create is not None:
                created = tx.execute(_CITIZEN_INSERT, _citizen_row(create, 0, now)).rowcount == 1
            # Takes the citizen's row lock (PostgreSQL) / the write lock (SQLite): concurrent
            # enrolments of one citizen, from any server, queue here and get 1, 2, 3, ...
            row = tx.execute(
                "UPDATE citizens SET last_version = last_version + 1 WHERE citizen_id = ?"
                " RETURNING last_version",
                (citizen_id,),
            ).fetchone()
            if row is None:
                raise FvsError(ErrorCode.CITIZEN_NOT_FOUND, "no citizen with this ID")
            version = int(row[0])
            key_id, blob = self._seal(citizen_id, version, model_id, vector)
            self._register_key(tx, {key_id})
            tx.execute(
                "UPDATE face_templates SET active = 0 WHERE citizen_id = ? AND active = 1",
                (citizen_id,),
            )
            tx.execute(
                _TEMPLATE_INSERT,
                (
                    citizen_id,
                    version,
                    model_id,
                    int(vector.shape[0]),
                    blob,
                    now.isoformat(),
                    self.encoding,
                    key_id,
                ),
            )
            self._changed(tx, citizen_id)
        stored = codec.decode(codec.encode(vector, self.encoding), self.encoding, vector.shape[0])
        return Template(citizen_id, model_id, stored, version, now), created

    def delete_templates(self, citizen_id: str) -> int:
        with self.db.tx() as tx:
            if (
                tx.execute("SELECT 1 FROM citizens WHERE citizen_id = ?", (citizen_id,)).fetchone()
                is None
            ):
                raise FvsError(ErrorCode.CITIZEN_NOT_FOUND, "no citizen with this ID")
            deleted = tx.execute(
                "DELETE FROM face_templates WHERE citizen_id = ?", (citizen_id,)
            ).rowcount
            self._changed(tx, citizen_id)
            return deleted

    def active_templates(self, model_id: str, batch: int = 65536) -> Iterator[TemplateChunk]:
        """Every active template of ``model_id``, opened and decoded, in chunks."""
        for rows in self.db.stream(
            "SELECT citizen_id, vector, version, encoding, key_id, dim FROM face_templates"
            " WHERE active = 1 AND model_id = ?",
            (model_id,),
            batch,
        ):
            yield self._chunk(rows, model_id)

    def _chunk(self, rows: list[Row], model_id: str) -> TemplateChunk:
        ids: list[str] = []
        versions: list[int] = []
        payloads: list[bytes] = []
        failed: list[str] = []
        dims = {int(r[5]) for r in rows}
        encodings = {str(r[3]) for r in rows}
        if len(dims) > 1 or len(encodings) > 1:  # mixed: decode one by one
            vecs = []
            for cid, blob, version, enc, kid, dim in rows:
                try:
                    payload = self._open(cid, int(version), model_id, enc, kid, bytes(blob))
                    vecs.append(codec.decode(payload, enc, int(dim)))
                except FvsError:
                    failed.append(str(cid))
                    continue
                ids.append(str(cid))
                versions.append(int(version))
            dim0 = max(dims)
            matrix = np.stack(vecs) if vecs else np.empty((0, dim0), np.float32)
            return TemplateChunk(ids, matrix, versions, failed)
        (dim,) = dims or {0}
        (encoding,) = encodings or {"f32"}
        size = len(codec.encode(np.zeros(dim, np.float32), encoding)) if dim else 0
        for cid, blob, version, _enc, kid, _dim in rows:
            try:
                payload = self._open(str(cid), int(version), model_id, encoding, kid, bytes(blob))
            except FvsError:
                failed.append(str(cid))
                continue
            if len(payload) != size:
                failed.append(str(cid))
                continue
            ids.append(str(cid))
            versions.append(int(version))
            payloads.append(payload)
        matrix = (
            codec.decode_many(payloads, encoding, dim)
            if payloads
            else np.empty((0, dim), np.float32)
        )
        return TemplateChunk(ids, matrix, versions, failed)

    # keys ---------------------------------------------------------------------------
    def key_ids_in_use(self) -> set[str]:
        return {str(r[0]) for r in self.db.read("SELECT key_id FROM template_keys")}

    def check_keys(self) -> None:
        """Refuse (ConfigError) when rows are sealed with keys the key file lacks."""
        used = self.key_ids_in_use()
        have = self.cipher.key_ids if self.cipher is not None else frozenset()
        missing = sorted(used - have)
        if missing:
            where = self.cipher.path if self.cipher is not None else "(none given)"
            raise ConfigError(
                f"the registry in {self.db.where} holds templates sealed with key(s) "
                f"{', '.join(missing)} that the template key file {where} does not have: "
                "wrong or missing --template-key-file"
            )

    def rotate(
        self, batch: int = 2000, progress: Callable[[int], None] | None = None
    ) -> tuple[int, int]:
        """Re-seal every template (history included) not under the current key, a batch per
        transaction, while servers keep serving (index rows hold opened vectors, and a row
        keeps its version: nothing for them to reload). Returns (re-sealed, failed)."""
        if self.cipher is None:
            raise ValueError("rotate needs a template key")
        self.cipher.refresh()
        current = self.cipher.current
        done = failed = 0
        last = ("", 0)
        while True:
            rows = self.db.read(
                "SELECT citizen_id, version, model_id, encoding, key_id, vector"
                " FROM face_templates WHERE key_id <> ? AND (citizen_id > ? OR"
                " (citizen_id = ? AND version > ?)) ORDER BY citizen_id, version LIMIT ?",
                (current, last[0], last[0], last[1], batch),
            )
            if not rows:
                break
            last = (str(rows[-1][0]), int(rows[-1][1]))
            with self.db.tx() as tx:
                self._register_key(tx, {current})
                for cid, version, model_id, enc, kid, blob in rows:
                    try:
                        payload = self._open(cid, int(version), model_id, enc, kid, bytes(blob))
                    except FvsError:
                        failed += 1  # left as it is: that citizen keeps its reason
                        continue
                    aad = self._aad(cid, int(version), model_id, enc)
                    new_kid, sealed = self.cipher.seal(payload, aad)
                    tx.execute(
                        "UPDATE face_templates SET vector = ?, key_id = ?"
                        " WHERE citizen_id = ? AND version = ? AND key_id = ?",
                        (sealed, new_kid, cid, int(version), kid),
                    )
                    done += 1
            if progress is not None:
                progress(len(rows))
        with self.db.tx() as tx:
            tx.execute(
                "DELETE FROM template_keys WHERE key_id <> ? AND NOT EXISTS"
                " (SELECT 1 FROM face_templates t WHERE t.key_id = template_keys.key_id)",
                (current,),
            )
        return done, failed

    def close(self) -> None:
        self.db.close()


def seal_many(
    cipher: TemplateCipher | None,
    encoding: str,
    ids: list[str],
    version: int,
    model_id: str,
    vectors: np.ndarray,
) -> list[tuple[str, bytes]]:
    """(key id, sealed payload) of each of ``vectors``, the template ``version`` of ``ids``."""
    payloads = codec.encode_many(vectors, encoding)
    if cipher is None:
        return [(PLAINTEXT, p) for p in payloads]
    aad = TemplateCipher.associated_data
    return cipher.seal_many(payloads, [aad(cid, version, model_id, encoding) for cid in ids])


def bulk_rows(
    cipher: TemplateCipher | None,
    encoding: str,
    citizens: Iterable[Citizen],
    templates: Iterable[tuple[str, np.ndarray]] | None = None,
    model_id: str = "",
) -> BulkRows:
    """The rows of a bulk load, templates encoded and sealed: its CPU half, which touches no
    database (a seeding builds the next chunk's rows in another process while this one's are
    written: :mod:`fvs.store.seeding`)."""
    now = _now()
    template_rows: list[Row] = []
    if templates is not None:
        stamp = now.isoformat()
        ids, vectors = _split(templates)
        dim = int(vectors.shape[1]) if ids else 0
        sealed = seal_many(cipher, encoding, ids, 1, model_id, vectors)
        template_rows = [
            (cid, 1, model_id, dim, blob, stamp, 1, encoding, key_id)
            for cid, (key_id, blob) in zip(ids, sealed, strict=True)
        ]
    with_template = {r[0] for r in template_rows}
    return BulkRows(
        [_citizen_row(c, int(c.citizen_id in with_template), now) for c in citizens],
        template_rows,
    )


def _split(templates: Iterable[tuple[str, np.ndarray]]) -> tuple[list[str], np.ndarray]:
    pairs = list(templates)
    ids = [cid for cid, _ in pairs]
    vectors = np.stack([v for _, v in pairs]) if pairs else np.empty((0, 0), np.float32)
    return ids, vectors


def _citizen_row(c: Citizen, last_version: int, now: dt.datetime) -> tuple[object, ...]:
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
        last_version,
        now.isoformat(),
    )
