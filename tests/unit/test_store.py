import datetime as dt
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from fvs import citizen_id
from fvs.errors import ErrorCode, FvsError
from fvs.store.sqlite import DB_FILE, SqliteStore
from fvs.store.synthetic import minimal_citizen, random_templates, synthetic_citizens
from tests.conftest import CITIZEN_A, CITIZEN_B


def unit(seed: int, dim: int = 512) -> np.ndarray:
    return random_templates(1, dim, seed)[0]


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    s = SqliteStore(tmp_path)
    yield s
    s.close()


def test_database_is_wal(store: SqliteStore) -> None:
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_citizen_round_trip(store: SqliteStore) -> None:
    citizen = next(synthetic_citizens(1, seed=3))
    assert store.add_citizen(citizen)
    assert not store.add_citizen(citizen)  # already there: no change
    view = store.get_citizen(citizen.citizen_id)
    assert view is not None
    assert view.citizen == citizen
    assert view.template_version == 0
    assert view.template_model == ""
    assert store.get_citizen(CITIZEN_B) is None


def test_new_template_version_replaces_the_active_one_and_keeps_history(
    store: SqliteStore,
) -> None:
    store.add_citizen(minimal_citizen(CITIZEN_A))
    first, _ = store.add_template(CITIZEN_A, "m@1", unit(1))
    second, _ = store.add_template(CITIZEN_A, "m@1", unit(2))
    assert (first.version, second.version) == (1, 2)
    active = store.active_template(CITIZEN_A)
    assert active is not None
    assert active.version == 2
    assert np.array_equal(active.vector, unit(2))
    conn = sqlite3.connect(store.path)
    rows = conn.execute(
        "SELECT version, active FROM face_templates WHERE citizen_id = ? ORDER BY version",
        (CITIZEN_A,),
    ).fetchall()
    conn.close()
    assert rows == [(1, 0), (2, 1)]


def test_template_for_unknown_citizen_changes_nothing(store: SqliteStore) -> None:
    with pytest.raises(FvsError) as info:
        store.add_template(CITIZEN_B, "m@1", unit(1))
    assert info.value.code is ErrorCode.CITIZEN_NOT_FOUND
    assert store.active_template(CITIZEN_B) is None
    assert store.count_citizens() == 0


def test_create_and_enrol_in_one_transaction(store: SqliteStore) -> None:
    template, created = store.add_template(
        CITIZEN_B, "m@1", unit(1), create=minimal_citizen(CITIZEN_B)
    )
    assert created
    assert template.version == 1
    _, created_again = store.add_template(
        CITIZEN_B, "m@1", unit(2), create=minimal_citizen(CITIZEN_B)
    )
    assert not created_again


def test_delete_erases_every_version_and_versions_are_not_reused(store: SqliteStore) -> None:
    store.add_citizen(minimal_citizen(CITIZEN_A))
    store.add_template(CITIZEN_A, "m@1", unit(1))
    store.add_template(CITIZEN_A, "m@1", unit(2))
    assert store.delete_templates(CITIZEN_A) == 2
    assert store.active_template(CITIZEN_A) is None
    assert store.delete_templates(CITIZEN_A) == 0
    again, _ = store.add_template(CITIZEN_A, "m@1", unit(3))
    assert again.version == 3
    with pytest.raises(FvsError) as info:
        store.delete_templates(CITIZEN_B)
    assert info.value.code is ErrorCode.CITIZEN_NOT_FOUND


def test_data_survives_reopening(tmp_path: Path) -> None:
    first = SqliteStore(tmp_path)
    first.add_template(CITIZEN_A, "m@1", unit(7), create=minimal_citizen(CITIZEN_A))
    first.close()
    second = SqliteStore(tmp_path)
    template = second.active_template(CITIZEN_A)
    second.close()
    assert template is not None
    assert np.array_equal(template.vector, unit(7))
    assert template.enrolled_at.tzinfo is not None


def test_unwritable_data_dir_is_store_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(FvsError) as info:
        SqliteStore(blocker / "sub")
    assert info.value.code is ErrorCode.STORE_UNAVAILABLE
    assert not (tmp_path / DB_FILE).exists()


def test_synthetic_citizens_are_valid_distinct_and_deterministic() -> None:
    a = list(synthetic_citizens(2000, seed=11))
    b = list(synthetic_citizens(2000, seed=11))
    c = list(synthetic_citizens(2000, seed=12))
    assert a == b
    assert a != c
    ids = [x.citizen_id for x in a]
    assert len(set(ids)) == len(ids)
    assert all(citizen_id.is_valid(i) for i in ids)
    assert all(i[0] in "12358" for i in ids)
    assert {x.sex.value for x in a} == {"M", "F"}
    assert all(dt.date(1940, 1, 1) <= x.birth_date <= dt.date(2008, 12, 31) for x in a)
    assert all(x.synthetic for x in a)
    assert all(x.first_name_th and x.first_name_en and x.province for x in a)


def test_random_templates_are_unit_vectors() -> None:
    vectors = random_templates(100, 512, seed=5)
    assert vectors.shape == (100, 512)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_bulk_seed_with_templates(store: SqliteStore) -> None:
    citizens = list(synthetic_citizens(500, seed=1))
    vectors = random_templates(500, 512, seed=1)
    inserted = store.add_citizens(
        citizens, zip((c.citizen_id for c in citizens), vectors, strict=True), "m@1"
    )
    assert inserted == 500
    assert store.add_citizens(citizens) == 0  # idempotent
    template = store.active_template(citizens[42].citizen_id)
    assert template is not None
    assert template.version == 1
    assert np.array_equal(template.vector, vectors[42])
    view = store.get_citizen(citizens[42].citizen_id)
    assert view is not None
    assert view.template_version == 1
    assert view.template_model == "m@1"
    # the next enrolment is version 2
    nxt, _ = store.add_template(citizens[42].citizen_id, "m@1", unit(9))
    assert nxt.version == 2
