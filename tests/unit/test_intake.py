"""The intake: every caller value bounded and checked before the access rules (issue 10)."""

from __future__ import annotations

import datetime as dt

from fvs.access.model import Operation
from fvs.domain import Consent, VerifyRequest
from fvs.errors import ErrorCode
from fvs.intake import IntakeLimits, batch_facts, registry_call, verify_call
from fvs.limits import quoted, recordable
from tests.conftest import CITIZEN_A, WRONG_CHECK_DIGIT


def test_recordable_keeps_short_text_and_digests_the_rest() -> None:
    assert recordable("FORM-1") == "FORM-1"
    for hostile in ("x" * 100_000, "line\nbreak", "\x00nul", "\u202eRTL"):
        kept = recordable(hostile)
        assert len(kept) < 100 and kept.isprintable() and "sha256" in kept
    assert recordable("x" * 600) != recordable("y" * 600)  # still tells values apart
    assert len(quoted("z" * 10_000)) < 50 and "\n" not in quoted("a\nb")


def test_verify_facts_are_bounded_and_carry_the_first_problem() -> None:
    consent = Consent("C" * 100_000, dt.datetime.now(dt.UTC))
    request, facts = verify_call(VerifyRequest(CITIZEN_A, b"img", "KYC", consent))
    assert len(request.request_id) == 32  # generated
    assert facts.problem is not None and facts.problem.code is ErrorCode.INVALID_REQUEST
    assert facts.problem.metadata["field"] == "consent.reference"
    assert facts.consent is not None and len(facts.consent.reference) < 100
    assert facts.citizen_id == CITIZEN_A

    _, bad_id = verify_call(VerifyRequest(WRONG_CHECK_DIGIT, b"img", "KYC", consent))
    assert bad_id.problem is not None and bad_id.problem.code is ErrorCode.INVALID_CITIZEN_ID
    assert bad_id.citizen_id == ""  # an invalid ID is never recorded, not even hashed

    _, big = verify_call(VerifyRequest(CITIZEN_A, b"x" * 11, "KYC"), IntakeLimits(10))
    assert big.problem is not None and big.problem.metadata["limit"] == "bytes"

    _, fine = verify_call(VerifyRequest(CITIZEN_A, b"img", "KYC", Consent("F", None), "r-1"))
    assert fine.problem is None and fine.request_id == "r-1"


def test_registry_and_batch_facts() -> None:
    facts = registry_call(Operation.GET_CITIZEN, WRONG_CHECK_DIGIT)
    assert facts.problem is not None and facts.citizen_id == "" and facts.details == {}
    assert registry_call(Operation.ENROLL, CITIZEN_A, b"", mutates=True).problem is not None
    assert batch_facts(64) is None
    refused = batch_facts(65)
    assert refused is not None and refused.problem is not None
    assert refused.details == {"items": "65"}
