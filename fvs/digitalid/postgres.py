"""PostgreSQL implementation of the Digital ID store (several servers may share it)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from fvs.digitalid.model import CardFacts, CardStatus, CardStatusReason
from fvs.digitalid.schema import DIGITALID_MIGRATIONS
from fvs.digitalid.store import parse_registered
from fvs.errors import ErrorCode, FvsError

_COLUMNS = (
    "citizen_id, laser_code, birth_date, issued_on, expires_on, card_status, status_reason,"
    " deceased_on, house_no, district, province, district_en, province_en"
)
HOUSEKEEPING_S = 7 * 24 * 3600.0


def _unavailable(exc: Exception) -> FvsError:
    return FvsError(ErrorCode.STORE_UNAVAILABLE, f"the Digital ID database failed: {exc}")


class PostgresIdCardStore:
    """The Digital ID tables in a PostgreSQL database (``postgresql://...``)."""

    def __init__(self, url: str, max_connections: int = 4) -> None:
        try:
            self.pool = ConnectionPool(
                url, min_size=1, max_size=max_connections, open=True, timeout=10.0
            )
            with self.pool.connection() as conn:
                for script in DIGITALID_MIGRATIONS["postgresql"]:
                    conn.execute(script)  # idempotent until a migration runner takes over
        except (psycopg.Error, OSError) as exc:
            raise _unavailable(exc) from exc

    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection[Any]]:
        try:
            with self.pool.connection() as conn:
                yield conn
        except psycopg.Error as exc:
            raise _unavailable(exc) from exc

    def card(self, citizen_id: str) -> CardFacts | None:
        with self._conn() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM digitalid_cards WHERE citizen_id = %s", (citizen_id,)
            ).fetchone()
        if row is None:
            return None
        return CardFacts(
            citizen_id=row[0],
            laser_code=row[1],
            birth_date=parse_registered(row[2]),
            issued_on=row[3],
            expires_on=row[4],
            status=CardStatus(row[5]),
            status_reason=CardStatusReason(row[6]),
            deceased_on=row[7],
            house_no=row[8],
            district=row[9],
            province=row[10],
            district_en=row[11],
            province_en=row[12],
        )

    def add_cards(self, cards: Iterable[CardFacts]) -> int:
        rows = [
            (
                c.citizen_id,
                c.laser_code,
                str(c.birth_date),
                c.issued_on,
                c.expires_on,
                c.status.value,
                c.status_reason.value,
                c.deceased_on,
                c.house_no,
                c.district,
                c.province,
                c.district_en,
                c.province_en,
            )
            for c in cards
        ]
        inserted = 0
        with self._conn() as conn, conn.transaction(), conn.cursor() as cur:
            for row in rows:
                cur.execute(
                    f"INSERT INTO digitalid_cards ({_COLUMNS}) VALUES"
                    " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (citizen_id) DO NOTHING",
                    row,
                )
                inserted += cur.rowcount
        return inserted

    def no_matches_since(self, agency: str, citizen_hash: str, since: float) -> list[float]:
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT at FROM digitalid_no_match WHERE agency = %s AND citizen_hash = %s"
                " AND at >= %s ORDER BY at",
                (agency, citizen_hash, since),
            ).fetchall()
        return [float(r[0]) for r in rows]

    def add_no_matches(self, agency: str, citizen_hash: str, at: float, count: int) -> None:
        if count <= 0:
            return
        with self._conn() as conn, conn.transaction():
            conn.execute(
                "DELETE FROM digitalid_no_match WHERE agency = %s AND citizen_hash = %s"
                " AND at < %s",
                (agency, citizen_hash, at - HOUSEKEEPING_S),
            )
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO digitalid_no_match (agency, citizen_hash, at) VALUES (%s, %s, %s)",
                    [(agency, citizen_hash, at)] * count,
                )

    def record_no_matches(
        self,
        agency: str,
        citizen_hash: str,
        since: float,
        at: float,
        decide: Callable[[list[float]], int],
    ) -> None:
        with self._conn() as conn, conn.transaction():
            # one transaction per (agency, citizen) at a time, across every server
            conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                (f"fvs-digitalid/{agency}/{citizen_hash}",),
            )
            rows = conn.execute(
                "SELECT at FROM digitalid_no_match WHERE agency = %s AND citizen_hash = %s"
                " AND at >= %s ORDER BY at",
                (agency, citizen_hash, since),
            ).fetchall()
            count = decide([float(r[0]) for r in rows])
            if count > 0:
                conn.execute(
                    "DELETE FROM digitalid_no_match WHERE agency = %s AND citizen_hash = %s"
                    " AND at < %s",
                    (agency, citizen_hash, at - HOUSEKEEPING_S),
                )
                with conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO digitalid_no_match (agency, citizen_hash, at)"
                        " VALUES (%s, %s, %s)",
                        [(agency, citizen_hash, at)] * count,
                    )

    def permit_services(self, permit_id: int) -> frozenset[str] | None:
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT service FROM digitalid_permit_services WHERE permit_id = %s",
                (permit_id,),
            ).fetchall()
        return frozenset(str(r[0]) for r in rows) if rows else None

    def set_permit_services(self, permit_id: int, services: frozenset[str]) -> None:
        with self._conn() as conn, conn.transaction():
            conn.execute("DELETE FROM digitalid_permit_services WHERE permit_id = %s", (permit_id,))
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO digitalid_permit_services (permit_id, service) VALUES (%s, %s)",
                    [(permit_id, s) for s in sorted(services)],
                )

    def close(self) -> None:
        self.pool.close()
