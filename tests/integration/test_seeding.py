"""Bulk seeding (fvs.store.seeding) on SQLite and a real PostgreSQL: rows built in worker
processes are the rows built in turn, templates open to the vectors they were made from,
and a second seeding (or one overlapping it) adds only what is new."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from fvs.config import StoreSettings
from fvs.digitalid.backends import open_card_store
from fvs.digitalid.synthetic import card_for
from fvs.store.factory import open_registry
from fvs.store.registry import SqlCitizenStore
from fvs.store.seeding import SeedJob, seed_chunks
from fvs.store.synthetic import SyntheticCitizens, synthetic_citizens, template_chunk

COUNT, CHUNK, SEED, MODEL, DIM = 700, 200, 11, "m@1", 512


@pytest.fixture
def registry(store_settings: StoreSettings) -> Iterator[SqlCitizenStore]:
    store = open_registry(store_settings)
    yield store
    store.close()


def job(store: SqlCitizenStore, count: int = COUNT) -> SeedJob:
    assert store.cipher is not None
    return SeedJob(count, SEED, CHUNK, MODEL, DIM, store.encoding, store.cipher.path)


def seed(
    store: SqlCitizenStore, settings: StoreSettings, plan: SeedJob, workers: int
) -> tuple[int, int]:
    """(citizens, cards) inserted, as ``fvs registry seed`` writes them."""
    cards = open_card_store(settings.location())
    inserted = carded = 0
    try:
        for chunk in seed_chunks(plan, workers):
            inserted += store.add_bulk(chunk.rows)
            carded += cards.add_card_rows(chunk.cards)
    finally:
        cards.close()
    return inserted, carded


def kept(store: SqlCitizenStore, citizen_id: str) -> tuple[object, ...]:
    template = store.active_template(citizen_id)
    assert template is not None
    return template.version, template.enrolled_at, template.vector.tobytes()


def test_worker_processes_build_what_building_in_turn_does(registry: SqlCitizenStore) -> None:
    plan = job(registry)
    here = list(seed_chunks(plan, workers=0))
    there = list(seed_chunks(plan, workers=2))
    assert [c.first for c in there] == [0, 200, 400, 600]
    assert [c.size for c in there] == [200, 200, 200, 100]
    for a, b in zip(here, there, strict=True):
        assert a.cards == b.cards
        assert [r[:-1] for r in a.rows.citizens] == [r[:-1] for r in b.rows.citizens]
        # sealed with fresh nonces: same citizens and key, different ciphertexts
        assert [(r[0], r[8]) for r in a.rows.templates] == [(r[0], r[8]) for r in b.rows.templates]
        assert [r[4] for r in a.rows.templates] != [r[4] for r in b.rows.templates]
    ids = [r[0] for c in there for r in c.rows.citizens]
    assert ids == sorted(ids) == [c.citizen_id for c in synthetic_citizens(COUNT, SEED)]


def test_seeding_writes_citizens_cards_and_templates_once(
    registry: SqlCitizenStore, store_settings: StoreSettings
) -> None:
    plan = job(registry)
    assert seed(registry, store_settings, plan, workers=1) == (COUNT, COUNT)
    assert registry.count_citizens() == COUNT
    people = list(synthetic_citizens(COUNT, SEED))
    # every template opens (its associated data names its citizen) to the vector made for it
    made = np.concatenate(
        [template_chunk(f, min(CHUNK, COUNT - f), DIM, SEED) for f in range(0, COUNT, CHUNK)]
    )
    loaded = {
        cid: vector
        for chunk in registry.active_templates(MODEL)
        for cid, vector in zip(chunk.ids, chunk.vectors, strict=True)
    }
    assert len(loaded) == COUNT
    for person, vector in zip(people[::97], made[::97], strict=True):
        view = registry.get_citizen(person.citizen_id)
        assert view is not None and view.template_version == 1
        assert float(np.dot(loaded[person.citizen_id], vector)) > 0.99  # i8 rounding only
    cards = open_card_store(store_settings.location())
    try:
        assert cards.card(people[5].citizen_id) == card_for(people[5], SEED)
    finally:
        cards.close()
    # the same seeding again adds nothing and leaves every template as it was
    before = kept(registry, people[0].citizen_id)
    assert seed(registry, store_settings, plan, workers=0) == (0, 0)
    assert registry.count_citizens() == COUNT
    assert kept(registry, people[0].citizen_id) == before
    # a seeding of which one citizen exists (without a template) adds the others: that one
    # keeps its record and its (empty) template history
    other = list(SyntheticCitizens(COUNT, SEED + 1).between(0, COUNT))
    assert registry.add_citizen(other[3])
    wider = SeedJob(COUNT, SEED + 1, CHUNK, MODEL, DIM, plan.encoding, plan.key_file)
    assert seed(registry, store_settings, wider, workers=1)[0] == COUNT - 1
    assert registry.count_citizens() == len({c.citizen_id for c in other + people})
    assert registry.active_template(other[3].citizen_id) is None
    assert registry.active_template(other[4].citizen_id) is not None
    assert kept(registry, people[0].citizen_id) == before
