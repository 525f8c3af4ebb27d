"""Where card facts and the NO_MATCH counter live: a protocol and its one SQL implementation
on :class:`fvs.store.db.Database`, for SQLite (tables in the registry database file,
``registry.sqlite3``) and PostgreSQL (tables in the deployment's database, shared by every
server), as the registry and the access rules are."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

from fvs.digitalid.model import CardFacts, CardStatus, CardStatusReason, RegisteredDate
from fvs.digitalid.schema import DIGITALID_MIGRATIONS
from fvs.store.db import Database, Row, SqliteDatabase, Tx
from fvs.store.migrate import SQLITE_FILES, migrate


class IdCardStore(Protocol):
    """Card facts per citizen, and NO_MATCH answers per (agency, citizen)."""

    def card(self, citizen_id: str) -> CardFacts | None: ...

    def add_cards(self, cards: Iterable[CardFacts]) -> int:
        """Insert the cards of citizens that have none; returns how many were inserted."""
        ...

    def add_card_rows(self, rows: list[Row]) -> int:
        """:meth:`add_cards` of rows already built by :func:`card_rows`."""
        ...

    def no_matches_since(self, agency: str, citizen_hash: str, since: float) -> list[float]:
        """Times (epoch seconds, ascending) of NO_MATCH answers at or after ``since``."""
        ...

    def add_no_matches(self, agency: str, citizen_hash: str, at: float, count: int) -> None:
        """Record ``count`` NO_MATCH answers at ``at``; drops this pair's rows older than a
        day beyond any window (housekeeping)."""
        ...

    def record_no_matches(
        self,
        agency: str,
        citizen_hash: str,
        since: float,
        at: float,
        decide: Callable[[list[float]], int],
    ) -> None:
        """Atomically: ``decide`` sees the pair's NO_MATCH times at or after ``since`` and
        returns how many new ones to record at ``at`` (or raises, recording nothing). Calls for
        the same pair are serialised, so a limit checked in ``decide`` cannot be overshot."""
        ...

    def permit_services(self, permit_id: int) -> frozenset[str] | None:
        """The services ``permit_id`` covers; None when none were recorded."""
        ...

    def set_permit_services(self, permit_id: int, services: frozenset[str]) -> None:
        """Replace the services ``permit_id`` covers (at least one)."""
        ...

    def close(self) -> None: ...


_COLUMNS = (
    "citizen_id, laser_code, birth_date, issued_on, expires_on, card_status, status_reason,"
    " deceased_on, house_no, district, province, district_en, province_en"
)
_COLUMN_NAMES = tuple(c.strip() for c in _COLUMNS.split(","))
_NO_MATCH_SINCE = (
    "SELECT at FROM digitalid_no_match WHERE agency = ? AND citizen_hash = ? AND at >= ?"
    " ORDER BY at"
)
HOUSEKEEPING_S = 7 * 24 * 3600.0


def _date(value: object) -> dt.date:
    """A DATE column: a date from PostgreSQL, ISO text from SQLite."""
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))


def parse_registered(text: str) -> RegisteredDate:
    year, month, day = (int(p) for p in text.split("-"))
    return RegisteredDate(year, month, day)


def _row(card: CardFacts) -> tuple[object, ...]:
    return (
        card.citizen_id,
        card.laser_code,
        str(card.birth_date),
        card.issued_on.isoformat(),
        card.expires_on.isoformat(),
        card.status.value,
        card.status_reason.value,
        card.deceased_on.isoformat() if card.deceased_on else None,
        card.house_no,
        card.district,
        card.province,
        card.district_en,
        card.province_en,
    )


def card_rows(cards: Iterable[CardFacts]) -> list[Row]:
    return [_row(c) for c in cards]


def _card(r: Row) -> CardFacts:
    return CardFacts(
        citizen_id=str(r[0]),
        laser_code=str(r[1]),
        birth_date=parse_registered(str(r[2])),
        issued_on=_date(r[3]),
        expires_on=_date(r[4]),
        status=CardStatus(r[5]),
        status_reason=CardStatusReason(r[6]),
        deceased_on=_date(r[7]) if r[7] else None,
        house_no=str(r[8]),
        district=str(r[9]),
        province=str(r[10]),
        district_en=str(r[11]),
        province_en=str(r[12]),
    )


class SqlIdCardStore:
    """:class:`IdCardStore` on an open :class:`Database` whose Digital ID schema is current."""

    HOUSEKEEPING_S = HOUSEKEEPING_S

    def __init__(self, db: Database) -> None:
        self.db = db

    def card(self, citizen_id: str) -> CardFacts | None:
        rows = self.db.read(
            f"SELECT {_COLUMNS} FROM digitalid_cards WHERE citizen_id = ?", (citizen_id,)
        )
        return _card(rows[0]) if rows else None

    def add_cards(self, cards: Iterable[CardFacts]) -> int:
        return self.add_card_rows(card_rows(cards))

    def add_card_rows(self, rows: list[Row]) -> int:
        """:meth:`add_cards` of rows from :func:`card_rows` (built apart, as seeding does)."""
        return self.db.insert_new("digitalid_cards", _COLUMN_NAMES, rows)

    def no_matches_since(self, agency: str, citizen_hash: str, since: float) -> list[float]:
        rows = self.db.read(_NO_MATCH_SINCE, (agency, citizen_hash, since))
        return [float(r[0]) for r in rows]

    def _add(self, tx: Tx, agency: str, citizen_hash: str, at: float, count: int) -> None:
        tx.execute(
            "DELETE FROM digitalid_no_match WHERE agency = ? AND citizen_hash = ? AND at < ?",
            (agency, citizen_hash, at - self.HOUSEKEEPING_S),
        )
        tx.executemany(
            "INSERT INTO digitalid_no_match (agency, citizen_hash, at) VALUES (?, ?, ?)",
            [(agency, citizen_hash, at)] * count,
        )

    def add_no_matches(self, agency: str, citizen_hash: str, at: float, count: int) -> None:
        if count <= 0:
            return
        with self.db.tx() as tx:
            self._add(tx, agency, citizen_hash, at, count)

    def record_no_matches(
        self,
        agency: str,
        citizen_hash: str,
        since: float,
        at: float,
        decide: Callable[[list[float]], int],
    ) -> None:
        # SQLite: BEGIN IMMEDIATE, one writer at a time. PostgreSQL: one transaction per
        # (agency, citizen) at a time, across every server, by an advisory lock.
        with self.db.tx() as tx:
            if self.db.backend == "postgresql":
                tx.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended(?, 0))",
                    (f"fvs-digitalid/{agency}/{citizen_hash}",),
                )
            rows = tx.execute(_NO_MATCH_SINCE, (agency, citizen_hash, since)).fetchall()
            count = decide([float(r[0]) for r in rows])
            if count > 0:
                self._add(tx, agency, citizen_hash, at, count)

    def permit_services(self, permit_id: int) -> frozenset[str] | None:
        rows = self.db.read(
            "SELECT service FROM digitalid_permit_services WHERE permit_id = ?", (permit_id,)
        )
        return frozenset(str(r[0]) for r in rows) if rows else None

    def set_permit_services(self, permit_id: int, services: frozenset[str]) -> None:
        with self.db.tx() as tx:
            tx.execute("DELETE FROM digitalid_permit_services WHERE permit_id = ?", (permit_id,))
            tx.executemany(
                "INSERT INTO digitalid_permit_services (permit_id, service) VALUES (?, ?)",
                [(permit_id, service) for service in sorted(services)],
            )

    def close(self) -> None:
        self.db.close()


class SqliteIdCardStore(SqlIdCardStore):
    """The Digital ID tables inside ``data_dir/registry.sqlite3``, brought to the current
    schema on open (the embedded default needs no setup; `fvs db migrate` does the same)."""

    def __init__(self, data_dir: Path) -> None:
        db = SqliteDatabase(Path(data_dir) / SQLITE_FILES["digitalid"], page_size=8192)
        try:
            migrate(db, "digitalid", DIGITALID_MIGRATIONS)
        except BaseException:
            db.close()
            raise
        super().__init__(db)
