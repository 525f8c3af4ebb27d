"""One conformance suite for the Digital ID store, run on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fvs.config import StoreSettings
from fvs.digitalid.backends import open_card_store
from fvs.digitalid.store import IdCardStore
from fvs.digitalid.synthetic import card_for
from fvs.errors import ErrorCode, FvsError
from fvs.store.synthetic import synthetic_citizens


@pytest.fixture
def store(store_settings: StoreSettings) -> Iterator[IdCardStore]:
    opened = open_card_store(store_settings.location())
    yield opened
    opened.close()


def test_cards_round_trip_and_are_added_once(store: IdCardStore) -> None:
    people = list(synthetic_citizens(200, 9))
    cards = [card_for(p, 9) for p in people]
    assert store.add_cards(cards) == 200
    assert store.add_cards([card_for(p, 10) for p in people]) == 0  # existing cards kept
    for card in cards:
        assert store.card(card.citizen_id) == card
    assert any(c.birth_date.day == 0 for c in cards)  # partial dates survive the round trip
    assert any(c.deceased_on is not None for c in cards)
    assert store.card("1101700203450") is None


def test_no_match_window(store: IdCardStore) -> None:
    store.add_no_matches("BANK", "h1", 1000.0, 2)
    store.add_no_matches("BANK", "h1", 2000.0, 1)
    store.add_no_matches("BANK", "h2", 2000.0, 5)
    store.add_no_matches("OTHER", "h1", 2000.0, 5)
    store.add_no_matches("BANK", "h1", 2500.0, 0)
    assert store.no_matches_since("BANK", "h1", 0.0) == [1000.0, 1000.0, 2000.0]
    assert store.no_matches_since("BANK", "h1", 1500.0) == [2000.0]
    assert store.no_matches_since("NOBODY", "h1", 0.0) == []
    # rows older than the housekeeping horizon are dropped on the next write for the pair
    later = 2000.0 + 7 * 24 * 3600 - 1  # the horizon is 7 days: 1000 goes, 2000 stays
    store.add_no_matches("BANK", "h1", later, 1)
    assert store.no_matches_since("BANK", "h1", 0.0) == [2000.0, later]
    assert store.no_matches_since("OTHER", "h1", 0.0) == [2000.0] * 5


def test_permit_services(store: IdCardStore) -> None:
    assert store.permit_services(7) is None
    store.set_permit_services(7, frozenset({"DIGITAL_ID", "FVS"}))
    assert store.permit_services(7) == {"DIGITAL_ID", "FVS"}
    store.set_permit_services(7, frozenset({"DIGITAL_ID"}))
    assert store.permit_services(7) == {"DIGITAL_ID"}
    assert store.permit_services(8) is None


def test_record_no_matches_is_atomic_per_pair(store: IdCardStore) -> None:
    """Eight threads race to record under a limit of 3: exactly 3 get through."""
    limit = 3
    admitted: list[int] = []
    lock = threading.Lock()

    def decide(recent: list[float]) -> int:
        if len(recent) >= limit:
            raise FvsError(ErrorCode.ATTRIBUTE_GUESSING, "over")
        time.sleep(0.01)  # widen the window a racing reader would slip through
        return 1

    def one(i: int) -> None:
        try:
            store.record_no_matches("BANK", "h", 0.0, 100.0 + i, decide)
        except FvsError:
            return
        with lock:
            admitted.append(i)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(admitted) == limit
    assert len(store.no_matches_since("BANK", "h", 0.0)) == limit
    # a refusal records nothing; another pair is independent
    store.record_no_matches("BANK", "other", 0.0, 1.0, lambda recent: 2)
    assert len(store.no_matches_since("BANK", "other", 0.0)) == 2


def test_postgresql_schema_must_be_migrated(pg_url: str, tmp_path: Path) -> None:
    """As the registry and the access rules: an unmigrated database is refused, naming the
    command (nothing is created behind the operator's back)."""
    from fvs.store.migrate import SchemaError

    settings = StoreSettings(url=pg_url, data_dir=tmp_path)
    with pytest.raises(SchemaError, match="fvs db migrate --store"):
        open_card_store(settings.location())


def test_sqlite_tables_from_before_versions_are_adopted(tmp_path: Path) -> None:
    """A registry file whose Digital ID tables were created before they were versioned."""
    from fvs.digitalid.schema import DIGITALID_MIGRATIONS
    from fvs.store.db import SqliteDatabase
    from fvs.store.migrate import current_version

    db = SqliteDatabase(tmp_path / "registry.sqlite3")
    db.conn().executescript(DIGITALID_MIGRATIONS["sqlite"][0])
    db.conn().execute("INSERT INTO digitalid_permit_services VALUES (3, 'FVS')")
    db.close()
    store = open_card_store(StoreSettings(data_dir=tmp_path).location())
    try:
        assert store.permit_services(3) == {"FVS"}
    finally:
        store.close()
    db = SqliteDatabase(tmp_path / "registry.sqlite3")
    assert current_version(db, "digitalid") == len(DIGITALID_MIGRATIONS["sqlite"])
    db.close()
