"""Digital ID values: card facts, registered birth dates, attribute results."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

ATTRIBUTES = (
    "first_name_th",
    "last_name_th",
    "first_name_en",
    "last_name_en",
    "birth_date",
    "laser_code",
    "province",
    "district",
)
"""The attributes a caller may claim, in wire order."""


class CardStatus(enum.Enum):
    ACTIVE = "ACTIVE"
    EXPIRED = "EXPIRED"
    REVOKED = "REVOKED"
    NOT_ISSUED = "NOT_ISSUED"  # the registry holds no card for this citizen


class CardStatusReason(enum.Enum):
    NONE = ""
    LOST = "LOST"
    STOLEN = "STOLEN"
    DAMAGED = "DAMAGED"
    REPLACED = "REPLACED"
    DECEASED = "DECEASED"


class AttributeResult(enum.Enum):
    NOT_PROVIDED = "NOT_PROVIDED"
    MATCH = "MATCH"
    NO_MATCH = "NO_MATCH"


@dataclass(frozen=True)
class RegisteredDate:
    """A date as the civil registry records it: month and day may be 0 (unknown).

    A day is only known when the month is (``month == 0`` implies ``day == 0``).
    """

    year: int  # Common Era
    month: int  # 0 = unknown
    day: int  # 0 = unknown

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}-{self.day:02d}"

    @classmethod
    def of(cls, date: dt.date) -> RegisteredDate:
        return cls(date.year, date.month, date.day)


@dataclass(frozen=True)
class CardFacts:
    """The registry's facts about one citizen's ID card and civil status. Never sent out."""

    citizen_id: str
    laser_code: str  # canonical: 2 upper-case letters + 10 digits, no dashes
    birth_date: RegisteredDate  # as registered (day/month may be unknown)
    issued_on: dt.date
    expires_on: dt.date
    status: CardStatus  # as recorded; ``status_on`` also applies the expiry date
    status_reason: CardStatusReason
    deceased_on: dt.date | None
    house_no: str
    district: str  # house-registration address (Thai)
    province: str
    district_en: str = ""
    province_en: str = ""

    @property
    def alive(self) -> bool:
        return self.deceased_on is None

    def status_on(self, today: dt.date) -> CardStatus:
        if self.status is CardStatus.ACTIVE and today > self.expires_on:
            return CardStatus.EXPIRED
        return self.status


@dataclass(frozen=True)
class ClaimedAttributes:
    """What a caller claims; "" = not provided."""

    first_name_th: str = ""
    last_name_th: str = ""
    first_name_en: str = ""
    last_name_en: str = ""
    birth_date: str = ""
    laser_code: str = ""
    province: str = ""
    district: str = ""

    def provided(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in ATTRIBUTES if getattr(self, name)}


@dataclass(frozen=True)
class AttributeVerdict:
    """The answer: per attribute a result, the card's status and whether the person lives."""

    results: dict[str, AttributeResult]
    card_status: CardStatus
    card_status_reason: CardStatusReason
    alive: bool
    request_id: str

    @property
    def no_matches(self) -> int:
        return sum(1 for r in self.results.values() if r is AttributeResult.NO_MATCH)
