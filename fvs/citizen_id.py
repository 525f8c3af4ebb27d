"""Thai 13-digit citizen ID numbers: validation and check digit."""

from __future__ import annotations

from fvs.errors import ErrorCode, FvsError

CITIZEN_ID_LENGTH = 13


def check_digit(first12: str) -> int:
    """Check digit for the first 12 digits: ``(11 - sum(d[i] * (13 - i)) % 11) % 10``."""
    if len(first12) != CITIZEN_ID_LENGTH - 1 or not first12.isascii() or not first12.isdigit():
        raise ValueError("expected exactly 12 ASCII digits")
    total = sum(int(d) * (13 - i) for i, d in enumerate(first12))
    return (11 - total % 11) % 10


def is_valid(citizen_id: str) -> bool:
    return (
        len(citizen_id) == CITIZEN_ID_LENGTH
        and citizen_id.isascii()
        and citizen_id.isdigit()
        and check_digit(citizen_id[:12]) == int(citizen_id[12])
    )


def validate(citizen_id: str) -> str:
    """Return ``citizen_id`` unchanged, or raise INVALID_CITIZEN_ID saying what is wrong."""
    if len(citizen_id) != CITIZEN_ID_LENGTH or not citizen_id.isascii() or not citizen_id.isdigit():
        raise FvsError(
            ErrorCode.INVALID_CITIZEN_ID,
            "citizen_id must be exactly 13 ASCII digits",
            field="citizen_id",
            problem="format",
        )
    if check_digit(citizen_id[:12]) != int(citizen_id[12]):
        raise FvsError(
            ErrorCode.INVALID_CITIZEN_ID,
            "citizen_id check digit is wrong",
            field="citizen_id",
            problem="check_digit",
        )
    return citizen_id


def complete(first12: str) -> str:
    """The full ID for 12 leading digits."""
    return first12 + str(check_digit(first12))
