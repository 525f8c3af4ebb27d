"""Duplicate cases and adjudicated pairs (issue 9) on both backends."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from fvs.config import StoreSettings
from fvs.errors import ErrorCode, FvsError
from fvs.store.duplicates import DuplicateCases
from fvs.store.factory import open_registry
from fvs.store.registry import BULK_CHANGE, SqlCitizenStore
from fvs.store.synthetic import minimal_citizen

A, B, C = "1100000000011", "1100000000029", "1100000000037"


@pytest.fixture
def registry(store_settings: StoreSettings) -> Iterator[SqlCitizenStore]:
    store = open_registry(store_settings)
    yield store
    store.close()


def test_cases_open_list_and_resolve(registry: SqlCitizenStore) -> None:
    cases = DuplicateCases(registry.db)
    first = cases.open_case("refused", B, 0, A, 1, 0.71, 100.0, 2, "m@1")
    second = cases.open_case("flagged", C, 3, A, 1, 0.55, 97.5, 1, "m@1")
    assert second > first
    listed = cases.list("open")
    assert [c.case_id for c in listed] == [first, second]
    assert (listed[0].citizen_id, listed[0].candidate_id, listed[0].candidates) == (B, A, 2)
    assert listed[1].template_version == 3 and listed[1].score == pytest.approx(97.5)
    assert cases.open_pairs() == {(A, B), (A, C)}

    done = cases.resolve(first, "different_people", "operator/alice", "twins")
    assert done.status == "different_people" and done.resolved_by == "operator/alice"
    assert done.resolved_at is not None
    assert [c.case_id for c in cases.list("open")] == [second]
    assert [c.case_id for c in cases.list(None)] == [first, second]
    # the pair is cleared, in either order; other pairs are not
    assert cases.distinct_from(A, [B, C]) == {B}
    assert cases.distinct_from(B, [A]) == {A}
    assert cases.distinct_from(C, [A]) == set()
    assert cases.distinct_pairs() == {(A, B)}

    cases.resolve(second, "same_person", "operator/bob")
    assert cases.distinct_from(C, [A]) == set()  # same person: nothing cleared


@pytest.mark.parametrize(
    ("case_id", "verdict", "code"),
    [(999, "same_person", ErrorCode.CASE_NOT_FOUND), (1, "maybe", ErrorCode.INVALID_REQUEST)],
)
def test_resolve_refuses_bad_input(
    registry: SqlCitizenStore, case_id: int, verdict: str, code: ErrorCode
) -> None:
    cases = DuplicateCases(registry.db)
    cases.open_case("scan", A, 1, B, 1, 0.6, 99.0, 1, "m@1")
    with pytest.raises(FvsError) as info:
        cases.resolve(case_id, verdict, "operator/alice")
    assert info.value.code is code
    assert cases.list("open")[0].status == "open"  # nothing changed


def test_resolving_twice_is_refused(registry: SqlCitizenStore) -> None:
    cases = DuplicateCases(registry.db)
    case = cases.open_case("scan", A, 1, B, 1, 0.6, 99.0, 1, "m@1")
    cases.resolve(case, "same_person", "operator/alice")
    with pytest.raises(FvsError) as info:
        cases.resolve(case, "different_people", "operator/mallory")
    assert info.value.code is ErrorCode.INVALID_TRANSITION
    assert cases.get(case).status == "same_person"
    assert cases.distinct_pairs() == set()


def test_change_log_on_both_backends(registry: SqlCitizenStore) -> None:
    """Registry v3: every enrolment and erasure is logged in order, a bulk load once."""
    start = registry.last_change()
    vector = np.ones(8, dtype=np.float32) / np.sqrt(8)
    registry.add_template(A, "m@1", vector, create=minimal_citizen(A))
    registry.delete_templates(A)
    registry.add_citizens([minimal_citizen(B)], [(B, vector)], "m@1")
    changes = registry.changes_since(start)
    assert [cid for _, cid in changes] == [A, A, BULK_CHANGE]
    seqs = [seq for seq, _ in changes]
    assert seqs == sorted(seqs) and seqs[-1] == registry.last_change()
    assert registry.first_change() <= seqs[0]
    assert registry.changes_since(registry.last_change()) == []
