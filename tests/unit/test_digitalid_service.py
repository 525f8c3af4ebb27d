"""Digital ID store, seeding and the guessing limit, on a real SQLite file."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from fvs.digitalid.model import AttributeResult, CardStatus, CardStatusReason, ClaimedAttributes
from fvs.digitalid.schema import DIGITALID_MIGRATIONS
from fvs.digitalid.service import DigitalIdService, GuessingLimit
from fvs.digitalid.store import SqliteIdCardStore
from fvs.digitalid.synthetic import card_for, seed_cards
from fvs.errors import ErrorCode, FvsError
from fvs.store.sqlite import SqliteStore
from fvs.store.synthetic import minimal_citizen, synthetic_citizens

COUNT = 400


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[tuple[SqliteStore, SqliteIdCardStore, Clock]]:
    citizens = SqliteStore(tmp_path)
    people = list(synthetic_citizens(COUNT, seed=3))
    citizens.add_citizens(people)
    assert seed_cards(tmp_path, people, seed=3) == COUNT
    cards = SqliteIdCardStore(tmp_path)
    yield citizens, cards, Clock()
    cards.close()
    citizens.close()


def service(
    registry: tuple[SqliteStore, SqliteIdCardStore, Clock], limit: int = 3
) -> DigitalIdService:
    citizens, cards, clock = registry
    return DigitalIdService(
        citizens, cards, lambda c: f"h:{c}", GuessingLimit(limit, 3600.0), clock=clock
    )


def test_seeding_is_deterministic_and_varied(tmp_path: Path) -> None:
    people = list(synthetic_citizens(COUNT, seed=3))
    first = [card_for(c, 3) for c in people]
    assert first == [card_for(c, 3) for c in people]
    assert first != [card_for(c, 4) for c in people]
    assert all(len(c.laser_code) == 12 and c.laser_code[:2].isalpha() for c in first)
    assert all(c.expires_on > c.issued_on for c in first)
    unknown_day = [c for c in first if c.birth_date.month and not c.birth_date.day]
    unknown_month = [c for c in first if not c.birth_date.month]
    assert unknown_day and unknown_month  # the registry has partial birth dates
    assert {c.status for c in first} == {CardStatus.ACTIVE, CardStatus.EXPIRED, CardStatus.REVOKED}
    assert any(not c.alive and c.status_reason is CardStatusReason.DECEASED for c in first)
    assert any(c.status_reason in {CardStatusReason.LOST, CardStatusReason.STOLEN} for c in first)
    assert all(c.province_en for c in first)
    # a second seeding adds nothing and keeps the first cards
    assert seed_cards(tmp_path, people, seed=3) == COUNT
    assert seed_cards(tmp_path, people, seed=4) == 0
    store = SqliteIdCardStore(tmp_path)
    try:
        assert store.add_cards(first) == 0
        assert store.card(people[0].citizen_id) == first[0]
    finally:
        store.close()


def test_migrations_name_both_backends() -> None:
    assert set(DIGITALID_MIGRATIONS) == {"sqlite", "postgresql"}
    for scripts in DIGITALID_MIGRATIONS.values():
        assert scripts and all("digitalid_cards" in s or "digitalid_no_match" in s for s in scripts)


def test_guessing_limit_per_agency_and_citizen(registry) -> None:  # type: ignore[no-untyped-def]
    svc = service(registry, limit=3)
    clock = registry[2]
    people = list(synthetic_citizens(COUNT, seed=3))[:2]
    target, other = people[0].citizen_id, people[1].citizen_id
    wrong = ClaimedAttributes(first_name_en="Nobody")
    for _ in range(3):
        verdict = svc.verify_attributes("BANK", target, wrong, "r")
        assert verdict.results["first_name_en"] is AttributeResult.NO_MATCH
    right = ClaimedAttributes(first_name_en=people[0].first_name_en)
    with pytest.raises(FvsError) as caught:
        svc.verify_attributes("BANK", target, right, "r")  # refused even when it would match
    assert caught.value.code is ErrorCode.ATTRIBUTE_GUESSING
    assert caught.value.retry_after_s == 3600.0
    # another agency, another citizen: unaffected
    assert svc.verify_attributes("OTHER", target, right, "r").results["first_name_en"] is (
        AttributeResult.MATCH
    )
    assert svc.verify_attributes("BANK", other, wrong, "r").no_matches == 1
    # the window slides: an hour later the oldest answers have left it
    clock.now += 3600.5
    assert svc.verify_attributes("BANK", target, right, "r").no_matches == 0


def test_matches_do_not_count_and_one_call_counts_each_no_match(registry) -> None:  # type: ignore[no-untyped-def]
    svc = service(registry, limit=3)
    person = next(iter(synthetic_citizens(COUNT, seed=3)))
    right = ClaimedAttributes(first_name_en=person.first_name_en, last_name_th=person.last_name_th)
    for _ in range(10):
        assert svc.verify_attributes("BANK", person.citizen_id, right, "r").no_matches == 0
    two_wrong = ClaimedAttributes(first_name_en="Nobody", last_name_en="Noname")
    assert svc.verify_attributes("BANK", person.citizen_id, two_wrong, "r").no_matches == 2
    assert svc.verify_attributes("BANK", person.citizen_id, two_wrong, "r").no_matches == 2
    with pytest.raises(FvsError):
        svc.verify_attributes("BANK", person.citizen_id, right, "r")


def test_unknown_citizen_and_lazy_card(registry) -> None:  # type: ignore[no-untyped-def]
    citizens, cards, _ = registry
    svc = service(registry)
    with pytest.raises(FvsError) as caught:
        svc.verify_attributes("BANK", "1101700203450", ClaimedAttributes(province="x"), "r")
    assert caught.value.code is ErrorCode.CITIZEN_NOT_FOUND
    # a create_if_missing record has no card until first asked about
    placeholder = minimal_citizen("1101700203450")
    citizens.add_citizen(placeholder)
    assert cards.card(placeholder.citizen_id) is None
    verdict = svc.verify_attributes(
        "BANK", placeholder.citizen_id, ClaimedAttributes(birth_date="2533-01-01"), "r"
    )
    assert verdict.results["birth_date"] is AttributeResult.MATCH
    assert cards.card(placeholder.citizen_id) == card_for(placeholder, 0)
    assert verdict.card_status is card_for(placeholder, 0).status_on(dt.date.today())
