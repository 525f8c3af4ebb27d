"""Comparison rules for claimed attributes (pure functions).

- Thai names, province, district: Unicode NFC, leading/trailing whitespace dropped and every
  run of whitespace made one space; otherwise exact (no fuzzy matching, no tone-mark or
  spelling tolerance: a wrong letter is NO_MATCH).
- Romanised names: as above, and case-insensitive (``str.casefold``).
- Province and district: the Thai rule against the Thai name, or the romanised rule against
  the romanised name when the registry has one.
- Birth dates: ``YYYY-MM-DD`` or ``YYYYMMDD``; a year above 2400 is Buddhist era
  (B.E. = C.E. + 543). Month or day ``00`` means unknown (month ``00`` needs day ``00``).
  A part the registry records as unknown matches whatever is claimed for it; a part the
  registry knows must be claimed exactly (a claimed ``00`` there is NO_MATCH). The year must
  always be equal.
- Laser code: two letters and ten digits, dashes optional (``JT0-1234567-89`` or
  ``JT0123456789``), letters case-insensitive.

Malformed input (too long, control or format characters, impossible dates, a bad laser code)
raises INVALID_ATTRIBUTE with ``field`` and ``problem``; nothing of the record is consulted
before validation, and no message quotes the record.
"""

from __future__ import annotations

import calendar
import re
import unicodedata

from fvs.digitalid.model import (
    ATTRIBUTES,
    AttributeResult,
    CardFacts,
    ClaimedAttributes,
    RegisteredDate,
)
from fvs.domain import Citizen
from fvs.errors import ErrorCode, FvsError

MAX_NAME = 100  # code points, as sent
MAX_PLACE = 100
MAX_DATE = 10
MAX_LASER = 14
BUDDHIST_ERA_OFFSET = 543
BUDDHIST_YEAR_FROM = 2401  # a year above 2400 is B.E.
MIN_YEAR_CE = 1800
MAX_YEAR_CE = 2200

LIMITS = {
    "first_name_th": MAX_NAME,
    "last_name_th": MAX_NAME,
    "first_name_en": MAX_NAME,
    "last_name_en": MAX_NAME,
    "birth_date": MAX_DATE,
    "laser_code": MAX_LASER,
    "province": MAX_PLACE,
    "district": MAX_PLACE,
}

# Unicode categories refused anywhere in a claim: controls, format characters (zero-width
# joiners, bidi overrides), surrogates, private use, unassigned, line/paragraph separators.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_WHITESPACE = re.compile(r"\s+")
_DATE_DASHED = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})", re.ASCII)
_DATE_COMPACT = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})", re.ASCII)
_LASER = re.compile(r"[A-Za-z]{2}[0-9]{10}", re.ASCII)
_LASER_DASHED = re.compile(r"[A-Za-z]{2}[0-9]-[0-9]{7}-[0-9]{2}", re.ASCII)


def _invalid(field: str, problem: str, message: str) -> FvsError:
    return FvsError(
        ErrorCode.INVALID_ATTRIBUTE,
        f"claimed.{field}: {message}",
        field=f"claimed.{field}",
        problem=problem,
    )


def check_text(field: str, value: str) -> None:
    """Length and character checks common to every attribute."""
    limit = LIMITS[field]
    if len(value) > limit:
        raise _invalid(field, "too_long", f"at most {limit} characters")
    for ch in value:
        if unicodedata.category(ch) in _REFUSED_CATEGORIES:
            raise _invalid(
                field,
                "control_character",
                f"contains a control or format character U+{ord(ch):04X}",
            )
    if not value.strip():
        raise _invalid(field, "blank", "only whitespace")


def normalise_thai(text: str) -> str:
    """NFC, whitespace runs collapsed to one space, ends stripped."""
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def normalise_latin(text: str) -> str:
    """``normalise_thai`` and case-folded."""
    return normalise_thai(text).casefold()


def parse_claimed_date(value: str, field: str = "birth_date") -> RegisteredDate:
    """``YYYY-MM-DD`` or ``YYYYMMDD`` (B.E. above 2400), day/month 00 = unknown."""
    text = value.strip()
    found = _DATE_DASHED.fullmatch(text) or _DATE_COMPACT.fullmatch(text)
    if found is None:
        raise _invalid(field, "format", "expected YYYY-MM-DD or YYYYMMDD")
    year, month, day = (int(part) for part in found.groups())
    if year >= BUDDHIST_YEAR_FROM:
        year -= BUDDHIST_ERA_OFFSET
    if not MIN_YEAR_CE <= year <= MAX_YEAR_CE:
        raise _invalid(
            field,
            "impossible_date",
            f"year out of range ({MIN_YEAR_CE}-{MAX_YEAR_CE} C.E. or"
            f" {MIN_YEAR_CE + BUDDHIST_ERA_OFFSET}-{MAX_YEAR_CE + BUDDHIST_ERA_OFFSET} B.E.)",
        )
    if month > 12:
        raise _invalid(field, "impossible_date", "month must be 01-12, or 00 when unknown")
    if month == 0 and day != 0:
        raise _invalid(field, "impossible_date", "a day cannot be known when the month is not")
    if month and day > calendar.monthrange(year, month)[1]:
        raise _invalid(field, "impossible_date", "no such day in that month")
    return RegisteredDate(year, month, day)


def parse_laser_code(value: str, field: str = "laser_code") -> str:
    """Canonical laser code: two upper-case letters and ten digits, no dashes."""
    text = value.strip()
    if not (_LASER.fullmatch(text) or _LASER_DASHED.fullmatch(text)):
        raise _invalid(field, "format", "expected two letters and ten digits, e.g. JT0-1234567-89")
    return text.replace("-", "").upper()


def validate(claimed: ClaimedAttributes) -> dict[str, str]:
    """The provided attributes, each checked; raises INVALID_ATTRIBUTE / INVALID_REQUEST."""
    provided = claimed.provided()
    if not provided:
        raise FvsError(
            ErrorCode.INVALID_REQUEST,
            "claimed holds no attribute: send at least one",
            field="claimed",
            problem="empty",
        )
    for field in ATTRIBUTES:
        if field in provided:
            check_text(field, provided[field])
    if "birth_date" in provided:
        parse_claimed_date(provided["birth_date"])
    if "laser_code" in provided:
        parse_laser_code(provided["laser_code"])
    return provided


def dates_match(claimed: RegisteredDate, registered: RegisteredDate) -> bool:
    """Equal years; each month/day part known to the registry must be claimed exactly, and a
    part the registry records as unknown (0) matches whatever is claimed."""
    if claimed.year != registered.year:
        return False
    if registered.month and claimed.month != registered.month:
        return False
    return not registered.day or claimed.day == registered.day


def _place_matches(claim: str, thai: str, romanised: str) -> bool:
    if normalise_thai(claim) == normalise_thai(thai):
        return True
    return bool(romanised) and normalise_latin(claim) == normalise_latin(romanised)


def compare(
    provided: dict[str, str], citizen: Citizen, card: CardFacts | None
) -> dict[str, AttributeResult]:
    """A result for every attribute (``provided`` as returned by ``validate``).

    Without a card row the birth date is the registry's full date and the address is the
    citizen record's; a claimed laser code cannot match.
    """
    birth = card.birth_date if card else RegisteredDate.of(citizen.birth_date)
    province = (card.province, card.province_en) if card else (citizen.province, "")
    district = (card.district, card.district_en) if card else (citizen.district, "")
    checks = {
        "first_name_th": lambda v: normalise_thai(v) == normalise_thai(citizen.first_name_th),
        "last_name_th": lambda v: normalise_thai(v) == normalise_thai(citizen.last_name_th),
        "first_name_en": lambda v: normalise_latin(v) == normalise_latin(citizen.first_name_en),
        "last_name_en": lambda v: normalise_latin(v) == normalise_latin(citizen.last_name_en),
        "birth_date": lambda v: dates_match(parse_claimed_date(v), birth),
        "laser_code": lambda v: card is not None and parse_laser_code(v) == card.laser_code,
        "province": lambda v: _place_matches(v, *province),
        "district": lambda v: _place_matches(v, *district),
    }
    results: dict[str, AttributeResult] = {}
    for field in ATTRIBUTES:
        if field not in provided:
            results[field] = AttributeResult.NOT_PROVIDED
        else:
            ok = checks[field](provided[field])
            results[field] = AttributeResult.MATCH if ok else AttributeResult.NO_MATCH
    return results


def format_laser_code(canonical: str) -> str:
    """``JT0123456789`` -> ``JT0-1234567-89`` (as printed on the card)."""
    return f"{canonical[:3]}-{canonical[3:10]}-{canonical[10:]}"
