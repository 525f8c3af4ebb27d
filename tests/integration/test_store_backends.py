"""One conformance suite for the registry and the access rules, run against SQLite and a real
PostgreSQL server (tests/conftest.py: ``store_settings``), and the faults each backend must
survive: a template moved onto another citizen, a wrong key file, concurrent enrolments from
two servers, the database connection killed in the middle of a write."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator

import numpy as np
import pytest

from fvs.access.model import Agency, AgencyKind, PermitStatus, Purpose, Role, Supervisor
from fvs.access.store import AccessStore
from fvs.config import StoreSettings
from fvs.errors import ConfigError, ErrorCode, FvsError
from fvs.store.crypto import write_new_key
from fvs.store.factory import open_access, open_registry
from fvs.store.index import TemplateIndex
from fvs.store.registry import SqlCitizenStore
from fvs.store.synthetic import minimal_citizen, random_templates, synthetic_citizens
from tests.conftest import CITIZEN_A, CITIZEN_B

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def unit(seed: int) -> np.ndarray:
    return random_templates(1, 512, seed)[0]


@pytest.fixture
def registry(store_settings: StoreSettings) -> Iterator[SqlCitizenStore]:
    store = open_registry(store_settings)
    yield store
    store.close()


@pytest.fixture
def access(store_settings: StoreSettings) -> Iterator[AccessStore]:
    store = open_access(store_settings)
    yield store
    store.close()


# registry ---------------------------------------------------------------------------------
def test_citizens_and_template_history(registry: SqlCitizenStore) -> None:
    citizen = next(synthetic_citizens(1, seed=3))
    assert registry.add_citizen(citizen)
    assert not registry.add_citizen(citizen)
    view = registry.get_citizen(citizen.citizen_id)
    assert view is not None
    assert view.citizen == citizen
    assert view.template_version == 0
    assert registry.get_citizen(CITIZEN_B) is None

    first, created = registry.add_template(
        CITIZEN_A, "m@1", unit(1), create=minimal_citizen(CITIZEN_A)
    )
    second, created_again = registry.add_template(
        CITIZEN_A, "m@1", unit(2), create=minimal_citizen(CITIZEN_A)
    )
    assert (first.version, second.version, created, created_again) == (1, 2, True, False)
    active = registry.active_template(CITIZEN_A)
    assert active is not None
    assert active.version == 2
    assert active.enrolled_at.tzinfo is not None
    # stored as int8 (the default): the cosine with the original is ~1
    assert float(np.dot(active.vector, unit(2))) > 0.999
    assert registry.delete_templates(CITIZEN_A) == 2
    assert registry.active_template(CITIZEN_A) is None
    third, _ = registry.add_template(CITIZEN_A, "m@1", unit(3))
    assert third.version == 3  # never reused after erasure


def test_unknown_citizen_changes_nothing(registry: SqlCitizenStore) -> None:
    with pytest.raises(FvsError) as info:
        registry.add_template(CITIZEN_B, "m@1", unit(1))
    assert info.value.code is ErrorCode.CITIZEN_NOT_FOUND
    with pytest.raises(FvsError):
        registry.delete_templates(CITIZEN_B)
    assert registry.count_citizens() == 0


def test_bulk_add_and_index_load(registry: SqlCitizenStore) -> None:
    citizens = list(synthetic_citizens(300, seed=1))
    vectors = random_templates(300, 512, seed=1)
    pairs = list(zip((c.citizen_id for c in citizens), vectors, strict=True))
    assert registry.add_citizens(citizens, pairs, "m@1") == 300
    assert registry.add_citizens(citizens, pairs, "m@1") == 0  # idempotent
    assert registry.count_citizens() == 300
    index = TemplateIndex.from_store(registry, "m@1", 512)
    assert len(index) == 300
    assert index.failed == []
    hit = index.lookup(citizens[7].citizen_id)
    assert hit is not None
    assert float(np.dot(hit[0], vectors[7])) > 0.999
    assert hit[1] == 1
    assert len(TemplateIndex.from_store(registry, "other@2", 512)) == 0


def test_template_moved_to_another_citizen_fails_for_that_citizen_only(
    registry: SqlCitizenStore,
) -> None:
    registry.add_template(CITIZEN_A, "m@1", unit(1), create=minimal_citizen(CITIZEN_A))
    registry.add_template(CITIZEN_B, "m@1", unit(2), create=minimal_citizen(CITIZEN_B))
    # an insider copies A's sealed template onto B's record
    with registry.db.tx() as tx:
        blob = tx.execute(
            "SELECT vector FROM face_templates WHERE citizen_id = ?", (CITIZEN_A,)
        ).fetchone()[0]
        tx.execute("UPDATE face_templates SET vector = ? WHERE citizen_id = ?", (blob, CITIZEN_B))
    with pytest.raises(FvsError) as info:
        registry.active_template(CITIZEN_B)
    assert info.value.code is ErrorCode.TEMPLATE_INTEGRITY
    assert registry.active_template(CITIZEN_A) is not None
    index = TemplateIndex.from_store(registry, "m@1", 512)
    assert index.failed == [CITIZEN_B]
    assert index.lookup(CITIZEN_A) is not None
    assert index.lookup(CITIZEN_B) is None


def test_templates_are_not_stored_in_the_clear(registry: SqlCitizenStore) -> None:
    vector = unit(5)
    registry.add_template(CITIZEN_A, "m@1", vector, create=minimal_citizen(CITIZEN_A))
    blob, key_id = registry.db.read("SELECT vector, key_id FROM face_templates")[0]
    assert key_id == registry.cipher.current  # type: ignore[union-attr]
    assert b"".join(v.tobytes() for v in (vector, vector.astype("<f2"))) not in bytes(blob)
    assert len(bytes(blob)) == 4 + 512 + 12 + 16  # int8 with its scale, nonce, tag


def test_wrong_or_missing_key_refuses_to_open(
    registry: SqlCitizenStore, store_settings: StoreSettings
) -> None:
    registry.add_template(CITIZEN_A, "m@1", unit(1), create=minimal_citizen(CITIZEN_A))
    other = store_settings.data_dir / "other.key"
    write_new_key(other)
    wrong = store_settings.model_copy(update={"template_key_file": other})
    with pytest.raises(ConfigError, match="wrong or missing --template-key-file"):
        open_registry(wrong)
    missing = store_settings.model_copy(
        update={"template_key_file": store_settings.data_dir / "absent.key"}
    )
    with pytest.raises(ConfigError, match="does not exist"):
        open_registry(missing)
    store_settings.key_file().chmod(0o644)
    with pytest.raises(ConfigError, match="readable by other users"):
        open_registry(store_settings)
    store_settings.key_file().chmod(0o600)


def test_rotation_reseals_everything_under_the_new_key(
    registry: SqlCitizenStore, store_settings: StoreSettings
) -> None:
    citizens = list(synthetic_citizens(40, seed=2))
    vectors = random_templates(40, 512, seed=2)
    registry.add_citizens(
        citizens, zip((c.citizen_id for c in citizens), vectors, strict=True), "m@1"
    )
    old = registry.cipher.current  # type: ignore[union-attr]
    new = write_new_key(store_settings.key_file())
    # a running server picks up the added key for what it seals next
    registry.add_template(CITIZEN_A, "m@1", unit(4), create=minimal_citizen(CITIZEN_A))
    assert registry.db.read(
        "SELECT key_id FROM face_templates WHERE citizen_id = ?", (CITIZEN_A,)
    ) == [(new,)]
    done, failed = registry.rotate(batch=16)
    assert (done, failed) == (40, 0)
    assert {r[0] for r in registry.db.read("SELECT key_id FROM face_templates")} == {new}
    assert registry.key_ids_in_use() == {new}
    assert old != new
    index = TemplateIndex.from_store(registry, "m@1", 512)
    assert len(index) == 41


def test_two_servers_enrolling_one_citizen_keep_one_ordered_history(
    store_settings: StoreSettings,
) -> None:
    servers = [open_registry(store_settings), open_registry(store_settings)]
    servers[0].add_citizen(minimal_citizen(CITIZEN_A))
    versions: list[int] = []
    lock = threading.Lock()

    def enrol(store: SqlCitizenStore, seed: int) -> None:
        for k in range(10):
            template, _ = store.add_template(CITIZEN_A, "m@1", unit(seed + k))
            with lock:
                versions.append(template.version)

    threads = [threading.Thread(target=enrol, args=(s, 100 * i)) for i, s in enumerate(servers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        rows = servers[0].db.read(
            "SELECT version, active FROM face_templates WHERE citizen_id = ? ORDER BY version",
            (CITIZEN_A,),
        )
        assert sorted(versions) == list(range(1, 21))
        assert [int(r[0]) for r in rows] == list(range(1, 21))
        assert [int(r[1]) for r in rows] == [0] * 19 + [1]
    finally:
        for s in servers:
            s.close()


# access rules -----------------------------------------------------------------------------
def test_access_rules_round_trip(access: AccessStore) -> None:
    agency = Agency(
        "BANK-A", AgencyKind.PRIVATE, "Bank A", "0105500000001", "retail banking",
        (Supervisor("Somchai", "somchai@bank-a.example"),),
    )  # fmt: skip
    access.add_agency(agency, NOW)
    got = access.agency("BANK-A")
    assert (got.name, got.supervisors, got.created_at) == ("Bank A", agency.supervisors, NOW)
    with pytest.raises(FvsError) as dup:
        access.add_agency(agency, NOW)
    assert dup.value.code is ErrorCode.ALREADY_EXISTS
    assert {p.code for p in access.purposes()} >= {"KYC", "AUTH", "GOV_SERVICE"}
    access.add_purpose(Purpose("LOAN", "loan origination"), NOW)
    permit = access.grant_permit(
        "BANK-A", ["KYC", "LOAN"], NOW, NOW + dt.timedelta(days=30), "2024-06-18", NOW
    )
    assert permit.purposes == ("KYC", "LOAN")
    suspended = access.set_permit_status(permit.id, PermitStatus.SUSPENDED, "audit", NOW)
    assert suspended.status is PermitStatus.SUSPENDED
    assert [p.id for p in access.permits_of("BANK-A")] == [permit.id]
    system = access.add_system("BANK-A", "gw", frozenset({Role.AGENCY}), "ab" * 32, "CN=gw", NOW)
    assert access.system_by_fingerprint("ab" * 32) == system
    access.set_system_active("BANK-A", "gw", False)
    found = access.system_by_fingerprint("ab" * 32)
    assert found is not None
    assert not found.active
    with pytest.raises(FvsError) as missing:
        access.set_system_active("BANK-A", "nope", False)
    assert missing.value.code is ErrorCode.SYSTEM_NOT_FOUND
    assert access.conditions_version() == "2024-06-18"
    access.set_conditions("2026-01", "new conditions", NOW)
    assert access.conditions_version() == "2026-01"


def test_a_change_through_one_server_is_seen_by_another(store_settings: StoreSettings) -> None:
    one, two = open_access(store_settings), open_access(store_settings)
    try:
        one.add_agency(Agency("GOV-X", AgencyKind.STATE, "Gov X", "G-1", "services"), NOW)
        one.add_system("GOV-X", "gw", frozenset({Role.AGENCY}), "cd" * 32, "CN=gw", NOW)
        one.set_system_active("GOV-X", "gw", False)
        seen = two.system_by_fingerprint("cd" * 32)
        assert seen is not None
        assert not seen.active
    finally:
        one.close()
        two.close()
