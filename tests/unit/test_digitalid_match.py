"""The Digital ID comparison rules, as pure functions."""

import datetime as dt

import pytest

from fvs.digitalid import match
from fvs.digitalid.model import (
    AttributeResult,
    CardFacts,
    CardStatus,
    CardStatusReason,
    ClaimedAttributes,
    RegisteredDate,
)
from fvs.domain import Citizen, Sex
from fvs.errors import ErrorCode, FvsError

CITIZEN = Citizen(
    citizen_id="3100600445635",
    first_name_th="สมหญิง",
    last_name_th="แก้วมณี",
    first_name_en="Somying",
    last_name_en="Kaewmanee",
    sex=Sex.FEMALE,
    birth_date=dt.date(1985, 3, 14),
    province="เชียงใหม่",
    district="สันทราย",
)


FULL_BIRTH = RegisteredDate(1985, 3, 14)


def card(birth: RegisteredDate = FULL_BIRTH) -> CardFacts:
    return CardFacts(
        citizen_id=CITIZEN.citizen_id,
        laser_code="JT0123456789",
        birth_date=birth,
        issued_on=dt.date(2020, 1, 2),
        expires_on=dt.date(2028, 3, 14),
        status=CardStatus.ACTIVE,
        status_reason=CardStatusReason.NONE,
        deceased_on=None,
        house_no="12/3",
        district="สันทราย",
        province="เชียงใหม่",
        district_en="San Sai",
        province_en="Chiang Mai",
    )


def result(field: str, value: str, facts: CardFacts | None = None) -> AttributeResult:
    claim = ClaimedAttributes(**{field: value})
    return match.compare(match.validate(claim), CITIZEN, facts or card())[field]


M, N = AttributeResult.MATCH, AttributeResult.NO_MATCH


def refused(field: str, value: str) -> FvsError:
    with pytest.raises(FvsError) as caught:
        match.validate(ClaimedAttributes(**{field: value}))
    return caught.value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("สมหญิง", M),
        ("  สมหญิง ", M),  # ends stripped
        ("สมหญิ", N),  # no fuzzy matching
        ("สมหญิงง", N),
    ],
)
def test_thai_first_name(value: str, expected: AttributeResult) -> None:
    assert result("first_name_th", value) is expected


def test_thai_names_compare_in_nfc_and_collapse_whitespace() -> None:
    # a Thai name with a decomposable sequence: SARA AM (U+0E33) vs NIKHAHIT + SARA AA is not
    # an NFC equivalence in Unicode, so use a Latin-script case that is: e + combining acute
    citizen = Citizen(**{**CITIZEN.__dict__, "first_name_th": "ก ข", "last_name_th": "é"})
    facts = card()
    got = match.compare(
        match.validate(ClaimedAttributes(first_name_th="ก \u3000  ข", last_name_th="e\u0301")),
        citizen,
        facts,
    )
    assert got["first_name_th"] is M
    assert got["last_name_th"] is M


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("first_name_en", "somying", M),
        ("first_name_en", "SOMYING", M),
        ("last_name_en", " kaewMANEE ", M),
        ("last_name_en", "Kaewmani", N),
        ("last_name_th", "แก้วมณี", M),
        ("last_name_th", "แก้วมนี", N),
    ],
)
def test_names(field: str, value: str, expected: AttributeResult) -> None:
    assert result(field, value) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1985-03-14", M),
        ("19850314", M),
        ("2528-03-14", M),  # Buddhist era
        ("25280314", M),
        ("1985-03-15", N),
        ("1986-03-14", N),
        ("2529-03-14", N),
        ("1985-03-00", N),  # the registry knows the day
        ("1985-00-00", N),
    ],
)
def test_birth_date_full(value: str, expected: AttributeResult) -> None:
    assert result("birth_date", value) is expected


@pytest.mark.parametrize(
    ("registered", "value", "expected"),
    [
        (RegisteredDate(1985, 3, 0), "1985-03-00", M),
        (RegisteredDate(1985, 3, 0), "1985-03-14", M),  # an unknown day matches any day
        (RegisteredDate(1985, 3, 0), "2528-03-27", M),
        (RegisteredDate(1985, 3, 0), "1985-04-14", N),  # the month is known
        (RegisteredDate(1985, 3, 0), "1984-03-00", N),
        (RegisteredDate(1985, 0, 0), "1985-00-00", M),
        (RegisteredDate(1985, 0, 0), "1985-11-30", M),
        (RegisteredDate(1985, 0, 0), "25280000", M),
        (RegisteredDate(1985, 0, 0), "1986-00-00", N),
    ],
)
def test_birth_date_unknown_parts(
    registered: RegisteredDate, value: str, expected: AttributeResult
) -> None:
    assert result("birth_date", value, card(registered)) is expected


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("1985-02-30", "impossible_date"),
        ("1985-13-01", "impossible_date"),
        ("1985-00-14", "impossible_date"),  # a day without a month
        ("1900-02-29", "impossible_date"),  # not a leap year
        ("1700-01-01", "impossible_date"),
        ("2800-01-01", "impossible_date"),  # B.E. 2800 = C.E. 2257
        ("85-03-14", "format"),
        ("1985/03/14", "format"),
        ("1985-3-14", "format"),
        ("١٩٨٥-٠٣-١٤", "format"),  # non-ASCII digits
        ("14 March 1985", "too_long"),
    ],
)
def test_bad_birth_dates(value: str, problem: str) -> None:
    error = refused("birth_date", value)
    assert error.code is ErrorCode.INVALID_ATTRIBUTE
    assert error.metadata == {"field": "claimed.birth_date", "problem": problem}


def test_buddhist_leap_day() -> None:
    # B.E. 2543 = C.E. 2000, a leap year; B.E. 2444 = C.E. 1901 is not
    assert match.parse_claimed_date("2543-02-29") == RegisteredDate(2000, 2, 29)
    assert refused("birth_date", "2444-02-29").metadata["problem"] == "impossible_date"
    # 2400 and below are C.E. years, so 2201-2400 are out of range in either calendar
    assert refused("birth_date", "2400-01-01").metadata["problem"] == "impossible_date"
    assert match.parse_claimed_date("2401-01-01") == RegisteredDate(1858, 1, 1)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("JT0-1234567-89", M),
        ("JT0123456789", M),
        ("jt0-1234567-89", M),
        ("jt0123456789", M),
        ("JT0-1234567-88", N),
        ("JU0-1234567-89", N),
    ],
)
def test_laser_code(value: str, expected: AttributeResult) -> None:
    assert result("laser_code", value) is expected


def test_laser_code_without_a_card_never_matches() -> None:
    provided = match.validate(ClaimedAttributes(laser_code="JT0123456789"))
    assert match.compare(provided, CITIZEN, None)["laser_code"] is N


@pytest.mark.parametrize(
    "value", ["JT01234567890", "J10123456789", "JT0-123456-789", "JT0--1234567-89", "ฒT0123456789"]
)
def test_bad_laser_codes(value: str) -> None:
    error = refused("laser_code", value)
    assert error.code is ErrorCode.INVALID_ATTRIBUTE
    assert error.metadata["field"] == "claimed.laser_code"
    assert error.metadata["problem"] in {"format", "too_long"}


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("province", "เชียงใหม่", M),
        ("province", "chiang mai", M),  # the romanised name, case-insensitive
        ("province", "CHIANG  MAI", M),
        ("province", "Chiangmai", N),
        ("province", "ลำพูน", N),
        ("district", "สันทราย", M),
        ("district", "san sai", M),
        ("district", "ฝาง", N),
    ],
)
def test_address(field: str, value: str, expected: AttributeResult) -> None:
    assert result(field, value) is expected


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("x" * 101, "too_long"),
        ("สม\x00หญิง", "control_character"),
        ("สม\nหญิง", "control_character"),
        ("สม\u200bหญิง", "control_character"),  # zero-width space (a format character)
        ("สม\u202eหญิง", "control_character"),  # bidi override
        ("   ", "blank"),
    ],
)
def test_malformed_text(value: str, problem: str) -> None:
    error = refused("first_name_th", value)
    assert error.code is ErrorCode.INVALID_ATTRIBUTE
    assert error.metadata == {"field": "claimed.first_name_th", "problem": problem}


def test_empty_claim_is_refused() -> None:
    with pytest.raises(FvsError) as caught:
        match.validate(ClaimedAttributes())
    assert caught.value.code is ErrorCode.INVALID_REQUEST
    assert caught.value.metadata["field"] == "claimed"


def test_not_provided_and_no_record_value_in_errors() -> None:
    got = match.compare(match.validate(ClaimedAttributes(first_name_en="x")), CITIZEN, card())
    assert got["first_name_en"] is N
    assert all(r is AttributeResult.NOT_PROVIDED for f, r in got.items() if f != "first_name_en")
    error = refused("birth_date", "1985-02-30")
    assert "1985-03-14" not in error.message and "14" not in str(error.metadata)


def test_card_status_applies_the_expiry_date() -> None:
    facts = card()
    assert facts.status_on(dt.date(2028, 3, 14)) is CardStatus.ACTIVE
    assert facts.status_on(dt.date(2028, 3, 15)) is CardStatus.EXPIRED
    assert match.format_laser_code(facts.laser_code) == "JT0-1234567-89"
