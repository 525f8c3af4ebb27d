import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from fvs.access.gate import CallFacts, Gate
from fvs.access.model import Caller, Operation
from fvs.access.policy import AccessPolicy, ConsentRules
from fvs.access.store import AccessStore
from fvs.domain import Consent
from fvs.errors import ErrorCode, FvsError

DEV = Caller(insecure_dev=True, peer="test")


class FlakyAudit:
    """Records appends; fails the append number ``fail_at`` (1-based)."""

    def __init__(self, fail_at: int = 0) -> None:
        self.records: list[dict[str, Any]] = []
        self.fail_at = fail_at
        self.path = Path("/nonexistent")

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        if len(self.records) + 1 == self.fail_at:
            raise FvsError(ErrorCode.AUDIT_UNAVAILABLE, "disk gone")
        self.records.append(record)
        return record

    def close(self) -> None:
        pass


@pytest.fixture
def store(tmp_path: Path) -> AccessStore:
    return AccessStore(tmp_path)


def gate(store: AccessStore, audit: FlakyAudit) -> Gate:
    return Gate(AccessPolicy(store, ConsentRules()), audit, b"k" * 32)  # type: ignore[arg-type]


def consent(age: dt.timedelta = dt.timedelta(0)) -> Consent:
    return Consent("C-1", dt.datetime.now(dt.UTC) - age)


def test_a_mutation_is_announced_before_it_acts(store: AccessStore) -> None:
    audit = FlakyAudit()
    done: list[str] = []
    gate(store, audit).run(
        DEV,
        CallFacts(Operation.ENROLL, "3100600445635", mutates=True),
        lambda _a: done.append("enrolled"),
    )
    assert [r["outcome"] for r in audit.records] == ["STARTED", "OK"]
    assert done == ["enrolled"]


def test_no_started_record_means_no_change(store: AccessStore) -> None:
    audit = FlakyAudit(fail_at=1)
    done: list[str] = []
    with pytest.raises(FvsError) as info:
        gate(store, audit).run(
            DEV, CallFacts(Operation.ENROLL, mutates=True), lambda _a: done.append("enrolled")
        )
    assert info.value.code is ErrorCode.AUDIT_UNAVAILABLE
    assert done == []


def test_no_closing_record_means_no_answer(store: AccessStore) -> None:
    audit = FlakyAudit(fail_at=1)
    facts = CallFacts(Operation.VERIFY, "3100600445635", "KYC", consent())
    with pytest.raises(FvsError) as info:
        gate(store, audit).run(DEV, facts, lambda _a: "a score")
    assert info.value.code is ErrorCode.AUDIT_UNAVAILABLE


def test_refusals_and_errors_are_recorded(store: AccessStore) -> None:
    audit = FlakyAudit()
    g = gate(store, audit)
    with pytest.raises(FvsError):
        g.run(DEV, CallFacts(Operation.VERIFY, purpose="KYC"), lambda _a: None)  # no consent
    with pytest.raises(ZeroDivisionError):
        g.run(DEV, CallFacts(Operation.VERIFY, purpose="KYC", consent=consent()), lambda _a: 1 / 0)
    assert [(r["outcome"], r["reason"]) for r in audit.records] == [
        ("REFUSED", "CONSENT_REQUIRED"),
        ("ERROR", "INTERNAL"),
    ]
    assert all(r["system"] == "DEV/dev-insecure" for r in audit.records)


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        (Consent("", dt.datetime.now(dt.UTC)), "missing_reference"),
        (Consent("   ", dt.datetime.now(dt.UTC)), "missing_reference"),
        (Consent("C-1", None), "missing_time"),
        # made at collection: far enough ahead to stay "future" however long the suite runs
        (consent(-dt.timedelta(hours=6)), "future"),
        (consent(dt.timedelta(hours=25)), "expired"),
    ],
)
def test_consent_rules(store: AccessStore, given: Consent, problem: str) -> None:
    policy = AccessPolicy(store, ConsentRules())
    with pytest.raises(FvsError) as info:
        policy.authorize(DEV, Operation.VERIFY, "KYC", given)
    assert info.value.code is ErrorCode.CONSENT_REQUIRED
    assert info.value.metadata["problem"] == problem


def test_consent_within_skew_and_age_is_accepted(store: AccessStore) -> None:
    policy = AccessPolicy(store, ConsentRules())
    policy.authorize(DEV, Operation.VERIFY, "KYC", consent(-dt.timedelta(minutes=2)))
    policy.authorize(DEV, Operation.VERIFY, "KYC", consent(dt.timedelta(hours=23)))


def test_dev_system_may_not_administer(store: AccessStore) -> None:
    with pytest.raises(FvsError) as info:
        AccessPolicy(store, ConsentRules()).authorize(DEV, Operation.ADMIN)
    assert info.value.code is ErrorCode.OPERATION_NOT_PERMITTED


def test_no_certificate_is_unauthenticated(store: AccessStore) -> None:
    with pytest.raises(FvsError) as info:
        AccessPolicy(store, ConsentRules()).authorize(Caller(), Operation.VERIFY)
    assert info.value.code is ErrorCode.UNAUTHENTICATED
