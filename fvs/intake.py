"""What a call brings in, checked in one place before anything is authorised or recorded.

Every transport (the gRPC servicers today) turns its message into a domain request and hands
it here. The intake runs the cheap checks (citizen ID, image present and within its byte
limit, request id, purpose and consent reference within their limits) and builds the
:class:`~fvs.access.gate.CallFacts` the gate and the audit trail work from. A value that fails
a check does not reach the access rules: the facts carry the refusal (``problem``), the gate
records it with every caller-supplied text bounded (``fvs.limits.recordable``) and the caller
gets INVALID_ARGUMENT with the reason.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace

from fvs import citizen_id as cid
from fvs.access.gate import CallFacts
from fvs.access.model import Operation
from fvs.domain import Consent, VerifyRequest
from fvs.errors import ErrorCode, FvsError
from fvs.limits import (
    MAX_BATCH_ITEMS,
    MAX_CONSENT_REFERENCE,
    MAX_PURPOSE,
    MAX_REQUEST_ID,
    check_image,
    check_verify,
    recordable,
)


@dataclass(frozen=True)
class IntakeLimits:
    """Limits that depend on configuration (the rest are constants in ``fvs.limits``)."""

    max_image_bytes: int = 10 * 1024 * 1024
    max_batch_items: int = MAX_BATCH_ITEMS


def verify_call(
    request: VerifyRequest,
    limits: IntakeLimits | None = None,
    problem: FvsError | None = None,
) -> tuple[VerifyRequest, CallFacts]:
    """The request (with a generated request id when none was sent) and its facts.

    ``problem`` is a refusal found while converting the message (e.g. a malformed
    timestamp); otherwise the checks above decide. The facts never hold an unbounded value.
    """
    limits = limits or IntakeLimits()
    if not request.request_id:
        request = replace(request, request_id=uuid.uuid4().hex)
    if problem is None:
        try:
            check_verify(request, limits.max_image_bytes)
        except FvsError as exc:
            problem = exc
    consent = request.consent
    if consent is not None:
        consent = Consent(recordable(consent.reference, MAX_CONSENT_REFERENCE), consent.given_at)
    facts = CallFacts(
        Operation.VERIFY,
        citizen_id=request.citizen_id if problem is None else _citizen_or_empty(request),
        purpose=recordable(request.purpose, MAX_PURPOSE),
        consent=consent,
        request_id=recordable(request.request_id, MAX_REQUEST_ID),
        problem=problem,
    )
    return request, facts


def batch_facts(items: int, limits: IntakeLimits | None = None) -> CallFacts | None:
    """Facts of a VerifyBatch refused as a whole (too many items); None when it may run."""
    limits = limits or IntakeLimits()
    if items <= limits.max_batch_items:
        return None
    problem = FvsError(
        ErrorCode.INVALID_REQUEST,
        f"at most {limits.max_batch_items} items per VerifyBatch (got {items})",
        field="items",
        limit=str(limits.max_batch_items),
    )
    return CallFacts(
        Operation.VERIFY,
        request_id=uuid.uuid4().hex,
        action="VerifyBatch",
        details={"items": str(items)},
        problem=problem,
    )


def registry_call(
    operation: Operation,
    citizen_id: str,
    image: bytes | None = None,
    limits: IntakeLimits | None = None,
    mutates: bool = False,
    request_id: str = "",
) -> CallFacts:
    """Facts of an Enroll / GetCitizen / DeleteEnrollment call, with its first problem."""
    limits = limits or IntakeLimits()
    problem: FvsError | None = None
    try:
        cid.validate(citizen_id)
        if image is not None:
            check_image(image, limits.max_image_bytes)
    except FvsError as exc:
        problem = exc
    # An invalid ID is not recorded at all (not even hashed): it may be a real ID mistyped.
    return CallFacts(
        operation,
        citizen_id=citizen_id if cid.is_valid(citizen_id) else "",
        request_id=request_id,
        mutates=mutates,
        problem=problem,
    )


DEFAULT_SEARCH_K = 10
MAX_SEARCH_K = 100


def search_call(
    citizen_id: str | None,
    image: bytes | None,
    k: int,
    limits: IntakeLimits | None = None,
    request_id: str = "",
) -> CallFacts:
    """Facts of a SearchDuplicates call (a photo or a citizen ID, and k), with its first
    problem."""
    limits = limits or IntakeLimits()
    problem: FvsError | None = None
    try:
        if image is None and citizen_id is None:
            raise FvsError(
                ErrorCode.INVALID_REQUEST, "give an image or a citizen_id", field="probe"
            )
        if citizen_id is not None:
            cid.validate(citizen_id)
        if image is not None:
            check_image(image, limits.max_image_bytes)
        if not 0 <= k <= MAX_SEARCH_K:
            raise FvsError(
                ErrorCode.INVALID_REQUEST,
                f"k must lie in 1..{MAX_SEARCH_K} (0: {DEFAULT_SEARCH_K})",
                field="k",
            )
    except FvsError as exc:
        problem = exc
    valid_id = citizen_id if citizen_id is not None and cid.is_valid(citizen_id) else ""
    return CallFacts(
        Operation.SEARCH_DUPLICATES, citizen_id=valid_id, request_id=request_id, problem=problem
    )


def refused(operation: Operation, problem: FvsError, action: str = "") -> CallFacts:
    """Facts of a call refused before its message could be read (undecodable)."""
    return CallFacts(
        operation,
        request_id=uuid.uuid4().hex,
        action=action,
        details={k: recordable(v, 64) for k, v in problem.metadata.items()},
        problem=problem,
    )


def _citizen_or_empty(request: VerifyRequest) -> str:
    """A refused call's citizen ID is hashed into the record only when it is a valid one."""
    return request.citizen_id if cid.is_valid(request.citizen_id) else ""
