"""Duplicate cases kept for adjudication (issue 9), in the registry's database.

A case is opened when an enrolment is refused or flagged as a likely duplicate of another
citizen's enrolled face, or when the registry scan finds such a pair. An adjudicator resolves
it as the same person (an identity fraud or a clerical double registration, for the registry
to act on) or as different people (twins, look-alikes): a pair resolved as different people
is remembered in ``distinct_pairs`` and never raised again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from fvs.errors import ErrorCode, FvsError
from fvs.store.db import Database

SOURCES = ("refused", "flagged", "scan")
VERDICTS = ("same_person", "different_people")
STATUSES = ("open", *VERDICTS)
_COLUMNS = (
    "case_id, opened_at, source, citizen_id, template_version, candidate_id,"
    " candidate_version, similarity, score, candidates, model_id, status, resolved_at,"
    " resolved_by, note"
)


@dataclass(frozen=True)
class DuplicateCase:
    case_id: int
    opened_at: dt.datetime
    source: str
    citizen_id: str
    template_version: int  # 0: refused, nothing was stored
    candidate_id: str
    candidate_version: int
    similarity: float
    score: float
    candidates: int
    model_id: str
    status: str
    resolved_at: dt.datetime | None
    resolved_by: str
    note: str

    def as_dict(self) -> dict[str, object]:
        return {
            "case_id": self.case_id,
            "opened_at": self.opened_at.isoformat(),
            "source": self.source,
            "citizen_id": self.citizen_id,
            "template_version": self.template_version,
            "candidate_id": self.candidate_id,
            "candidate_version": self.candidate_version,
            "similarity": round(self.similarity, 6),
            "score": round(self.score, 2),
            "candidates": self.candidates,
            "model_id": self.model_id,
            "status": self.status,
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
            "resolved_by": self.resolved_by,
            "note": self.note,
        }


def _time(value: object) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value))


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


class DuplicateCases:
    """On the registry's :class:`Database` (SQLite or PostgreSQL, schema v3)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def _stamp(self, when: dt.datetime) -> object:
        return when if self.db.backend == "postgresql" else when.isoformat()

    def open_case(
        self,
        source: str,
        citizen_id: str,
        template_version: int,
        candidate_id: str,
        candidate_version: int,
        similarity: float,
        score: float,
        candidates: int,
        model_id: str,
    ) -> int:
        """Record a case; returns its id."""
        if source not in SOURCES:
            raise ValueError(f"unknown case source {source!r}")
        with self.db.tx() as tx:
            row = tx.execute(
                "INSERT INTO duplicate_cases (opened_at, source, citizen_id, template_version,"
                " candidate_id, candidate_version, similarity, score, candidates, model_id)"
                " VALUES (?,?,?,?,?,?,?,?,?,?) RETURNING case_id",
                (
                    self._stamp(dt.datetime.now(dt.UTC)),
                    source,
                    citizen_id,
                    template_version,
                    candidate_id,
                    candidate_version,
                    float(similarity),
                    float(score),
                    candidates,
                    model_id,
                ),
            ).fetchone()
        assert row is not None
        return int(row[0])

    def get(self, case_id: int) -> DuplicateCase:
        rows = self.db.read(f"SELECT {_COLUMNS} FROM duplicate_cases WHERE case_id = ?", (case_id,))
        if not rows:
            raise FvsError(ErrorCode.CASE_NOT_FOUND, f"no duplicate case {case_id}")
        return _case(rows[0])

    def list(self, status: str | None = "open", limit: int = 100) -> list[DuplicateCase]:
        """Cases, oldest first; ``status`` None for all."""
        if status is not None and status not in STATUSES:
            raise FvsError(
                ErrorCode.INVALID_REQUEST,
                f"status must be one of {', '.join(STATUSES)}",
                field="status",
            )
        where, params = ("WHERE status = ?", (status,)) if status else ("", ())
        rows = self.db.read(
            f"SELECT {_COLUMNS} FROM duplicate_cases {where} ORDER BY case_id LIMIT ?",
            (*params, limit),
        )
        return [_case(r) for r in rows]

    def resolve(self, case_id: int, verdict: str, by: str, note: str = "") -> DuplicateCase:
        """Close an open case; ``different_people`` also clears the pair for good."""
        if verdict not in VERDICTS:
            raise FvsError(
                ErrorCode.INVALID_REQUEST,
                f"verdict must be one of {', '.join(VERDICTS)}",
                field="verdict",
            )
        now = dt.datetime.now(dt.UTC)
        with self.db.tx() as tx:
            row = tx.execute(
                "SELECT status, citizen_id, candidate_id FROM duplicate_cases WHERE case_id = ?",
                (case_id,),
            ).fetchone()
            if row is None:
                raise FvsError(ErrorCode.CASE_NOT_FOUND, f"no duplicate case {case_id}")
            if row[0] != "open":
                raise FvsError(
                    ErrorCode.INVALID_TRANSITION,
                    f"duplicate case {case_id} was already resolved ({row[0]})",
                )
            tx.execute(
                "UPDATE duplicate_cases SET status = ?, resolved_at = ?, resolved_by = ?,"
                " note = ? WHERE case_id = ?",
                (verdict, self._stamp(now), by, note, case_id),
            )
            if verdict == "different_people":
                low, high = _pair(str(row[1]), str(row[2]))
                tx.execute(
                    "INSERT INTO distinct_pairs VALUES (?,?,?,?) ON CONFLICT DO NOTHING",
                    (low, high, case_id, self._stamp(now)),
                )
        return self.get(case_id)

    def distinct_from(self, citizen_id: str, others: Iterable[str]) -> set[str]:
        """Which of ``others`` were adjudicated as different people from ``citizen_id``."""
        others = [o for o in dict.fromkeys(others) if o != citizen_id]
        if not others:
            return set()
        marks = ",".join("?" * len(others))
        rows = self.db.read(
            "SELECT citizen_low, citizen_high FROM distinct_pairs WHERE"
            f" (citizen_low = ? AND citizen_high IN ({marks}))"
            f" OR (citizen_high = ? AND citizen_low IN ({marks}))",
            (citizen_id, *others, citizen_id, *others),
        )
        return {str(r[1]) if str(r[0]) == citizen_id else str(r[0]) for r in rows}

    def open_pairs(self) -> set[tuple[str, str]]:
        """Pairs with an open case (the scan does not open a second one)."""
        rows = self.db.read(
            "SELECT citizen_id, candidate_id FROM duplicate_cases WHERE status = 'open'"
        )
        return {_pair(str(r[0]), str(r[1])) for r in rows}

    def distinct_pairs(self) -> set[tuple[str, str]]:
        rows = self.db.read("SELECT citizen_low, citizen_high FROM distinct_pairs")
        return {(str(r[0]), str(r[1])) for r in rows}


def _case(r: tuple[object, ...]) -> DuplicateCase:
    return DuplicateCase(
        case_id=int(str(r[0])),
        opened_at=_time(r[1]),
        source=str(r[2]),
        citizen_id=str(r[3]),
        template_version=int(str(r[4])),
        candidate_id=str(r[5]),
        candidate_version=int(str(r[6])),
        similarity=float(str(r[7])),
        score=float(str(r[8])),
        candidates=int(str(r[9])),
        model_id=str(r[10]),
        status=str(r[11]),
        resolved_at=_time(r[12]) if r[12] is not None else None,
        resolved_by=str(r[13]),
        note=str(r[14]),
    )
