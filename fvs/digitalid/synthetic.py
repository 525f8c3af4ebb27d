"""Deterministic synthetic card facts for synthetic citizens (never real people).

Everything is drawn from SHA-256 of (seed, citizen ID), so a card does not depend on the
order or number of citizens seeded, and ``create_if_missing`` records get one too (seed 0).
Dates are drawn relative to a fixed reference day (``REFERENCE_DAY``), not today, so a seed
gives the same rows whenever it runs; whether a card has expired is decided when it is read.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import string
import struct
from collections.abc import Iterable
from pathlib import Path

from fvs.digitalid.model import CardFacts, CardStatus, CardStatusReason, RegisteredDate
from fvs.digitalid.store import IdCardStore, SqliteIdCardStore
from fvs.domain import CardStatus as RegistryCardStatus
from fvs.domain import Citizen
from fvs.store.synthetic import PROVINCES

REFERENCE_DAY = dt.date(2026, 1, 1)
CARD_YEARS = 8  # Thai ID cards since 2011: valid until the holder's birthday 8 years on
UNKNOWN_DAY_PER_MILLE = 40  # 4 % of records: birth day unknown (DD = 00)
UNKNOWN_MONTH_PER_MILLE = 15  # 1.5 %: day and month unknown (MM-DD = 00-00)
DECEASED_PER_MILLE = 20  # 2 % died (card revoked, reason DECEASED)

_SIXTEEN = struct.Struct(">16Q")
_ROMANISED = {
    th: (en, {d_th: d_en for d_th, d_en in districts}) for _code, th, en, districts in PROVINCES
}


class _Draws:
    """Uniform integers from a SHA-512 chain (16 draws of 64 bits per refill)."""

    def __init__(self, seed: int, citizen_id: str) -> None:
        self._refill(f"fvs-digitalid:{seed}:{citizen_id}".encode())

    def _refill(self, key: bytes) -> None:
        first = hashlib.sha512(key).digest()
        self._state = first + hashlib.sha512(first).digest()
        self._values = _SIXTEEN.unpack(self._state)
        self._pos = 0

    def below(self, n: int) -> int:
        if self._pos == len(self._values):
            self._refill(self._state)
        value: int = self._values[self._pos]
        self._pos += 1
        return value % n


def _birthday_in(year: int, birth: dt.date) -> dt.date:
    day = min(birth.day, 28) if birth.month == 2 else birth.day
    return dt.date(year, birth.month, day)


def card_for(citizen: Citizen, seed: int = 0) -> CardFacts:
    """The card facts of ``citizen`` for ``seed``."""
    draw = _Draws(seed, citizen.citizen_id)
    letters = string.ascii_uppercase
    laser = letters[draw.below(26)] + letters[draw.below(26)] + f"{draw.below(10**10):010d}"
    birth = citizen.birth_date
    unknown = draw.below(1000)
    if unknown < UNKNOWN_MONTH_PER_MILLE:
        registered = RegisteredDate(birth.year, 0, 0)
    elif unknown < UNKNOWN_MONTH_PER_MILLE + UNKNOWN_DAY_PER_MILLE:
        registered = RegisteredDate(birth.year, birth.month, 0)
    else:
        registered = RegisteredDate.of(birth)
    status = CardStatus(citizen.card_status.value)
    reason = CardStatusReason.NONE
    if citizen.card_status is RegistryCardStatus.EXPIRED:
        # issued 9-14 years before the reference day: expired before it
        issued = REFERENCE_DAY - dt.timedelta(days=365 * 9 + draw.below(365 * 5))
    else:
        issued = REFERENCE_DAY - dt.timedelta(days=draw.below(365 * 7))
    if citizen.card_status is RegistryCardStatus.REVOKED:
        reason = (CardStatusReason.LOST, CardStatusReason.STOLEN, CardStatusReason.DAMAGED)[
            draw.below(3)
        ]
    issued = max(issued, birth + dt.timedelta(days=7 * 365))  # cards from age 7
    expires = _birthday_in(issued.year + CARD_YEARS, birth)
    deceased_on = None
    if draw.below(1000) < DECEASED_PER_MILLE:
        deceased_on = REFERENCE_DAY - dt.timedelta(days=draw.below(365 * 3))
        deceased_on = max(deceased_on, issued)
        status, reason = CardStatus.REVOKED, CardStatusReason.DECEASED
    province_en, districts_en = _ROMANISED.get(citizen.province, ("", {}))
    return CardFacts(
        citizen_id=citizen.citizen_id,
        laser_code=laser,
        birth_date=registered,
        issued_on=issued,
        expires_on=expires,
        status=status,
        status_reason=reason,
        deceased_on=deceased_on,
        house_no=f"{1 + draw.below(999)}/{1 + draw.below(99)}",
        district=citizen.district,
        province=citizen.province,
        district_en=districts_en.get(citizen.district, ""),
        province_en=province_en,
    )


def seed_cards(
    data_dir: Path, citizens: Iterable[Citizen], seed: int, store: IdCardStore | None = None
) -> int:
    """Cards for ``citizens`` (those without one) in ``store`` (default: ``data_dir``'s
    registry file); how many new. Closes ``store``."""
    store = store or SqliteIdCardStore(data_dir)
    try:
        return store.add_cards(card_for(c, seed) for c in citizens)
    finally:
        store.close()
