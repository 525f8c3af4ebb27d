import pytest

from fvs import citizen_id
from fvs.errors import ErrorCode, FvsError
from tests.conftest import CITIZEN_A, CITIZEN_B, UNKNOWN_CITIZEN, WRONG_CHECK_DIGIT


@pytest.mark.parametrize("valid", [CITIZEN_A, CITIZEN_B, UNKNOWN_CITIZEN])
def test_mission_examples_are_valid(valid: str) -> None:
    assert citizen_id.is_valid(valid)
    assert citizen_id.validate(valid) == valid


def test_check_digit_formula() -> None:
    digits = "310060044563"
    total = sum(int(d) * (13 - i) for i, d in enumerate(digits))
    assert citizen_id.check_digit(digits) == (11 - total % 11) % 10 == 5


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (WRONG_CHECK_DIGIT, "check_digit"),
        ("310060044563", "format"),
        ("31006004456350", "format"),
        ("31006004456a5", "format"),
        ("", "format"),
        ("３１００６００４４５６３５", "format"),  # full-width digits are not ASCII
        (" 3100600445635", "format"),
    ],
)
def test_invalid_ids_say_why(value: str, problem: str) -> None:
    assert not citizen_id.is_valid(value)
    with pytest.raises(FvsError) as info:
        citizen_id.validate(value)
    assert info.value.code is ErrorCode.INVALID_CITIZEN_ID
    assert info.value.metadata["problem"] == problem


def test_complete_appends_the_check_digit() -> None:
    assert citizen_id.complete("123454567878") == CITIZEN_B
