"""The fvs.v1.DigitalId servicer: protobuf -> domain -> gate + DigitalIdService -> protobuf."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from fvs import citizen_id as cid
from fvs.access.gate import CallFacts, Gate
from fvs.access.model import SERVICE_DIGITAL_ID, Authorization, Operation
from fvs.api import convert
from fvs.api.servicers import Context, Runner, Verified
from fvs.api.servicers import _verify_call as verify_call
from fvs.api.servicers import _verify_outcome as verify_outcome
from fvs.api.v1 import attributes_pb2, digitalid_pb2, digitalid_pb2_grpc, verification_pb2
from fvs.audit.keys import citizen_hash
from fvs.config import Settings
from fvs.digitalid.backends import open_card_store
from fvs.digitalid.match import format_laser_code
from fvs.digitalid.model import (
    ATTRIBUTES,
    AttributeResult,
    AttributeVerdict,
    CardStatus,
    CardStatusReason,
    ClaimedAttributes,
)
from fvs.digitalid.service import DigitalIdService, GuessingLimit
from fvs.domain import CitizenView, Consent
from fvs.errors import FvsError
from fvs.limits import (
    MAX_CONSENT_REFERENCE,
    MAX_PURPOSE,
    MAX_REQUEST_ID,
    check_text,
    recordable,
)
from fvs.service import FaceService

_RESULT = {
    AttributeResult.NOT_PROVIDED: attributes_pb2.NOT_PROVIDED,
    AttributeResult.MATCH: attributes_pb2.MATCH,
    AttributeResult.NO_MATCH: attributes_pb2.NO_MATCH,
}
_STATUS = {
    CardStatus.ACTIVE: attributes_pb2.ID_CARD_ACTIVE,
    CardStatus.EXPIRED: attributes_pb2.ID_CARD_EXPIRED,
    CardStatus.REVOKED: attributes_pb2.ID_CARD_REVOKED,
    CardStatus.NOT_ISSUED: attributes_pb2.ID_CARD_NOT_ISSUED,
}
_REASON = {
    CardStatusReason.NONE: attributes_pb2.ID_CARD_STATUS_REASON_UNSPECIFIED,
    CardStatusReason.LOST: attributes_pb2.ID_CARD_LOST,
    CardStatusReason.STOLEN: attributes_pb2.ID_CARD_STOLEN,
    CardStatusReason.DAMAGED: attributes_pb2.ID_CARD_DAMAGED,
    CardStatusReason.REPLACED: attributes_pb2.ID_CARD_REPLACED,
    CardStatusReason.DECEASED: attributes_pb2.ID_CARD_HOLDER_DECEASED,
}


def claimed_attributes(msg: attributes_pb2.Attributes) -> ClaimedAttributes:
    return ClaimedAttributes(**{name: getattr(msg, name) for name in ATTRIBUTES})


def verify_attributes_response(
    verdict: AttributeVerdict,
) -> digitalid_pb2.VerifyAttributesResponse:
    sent = [r for r in verdict.results.values() if r is not AttributeResult.NOT_PROVIDED]
    return digitalid_pb2.VerifyAttributesResponse(
        results=attributes_pb2.AttributeResults(
            **{name: _RESULT[result] for name, result in verdict.results.items()}
        ),
        all_match=bool(sent) and all(r is AttributeResult.MATCH for r in sent),
        card_status=_STATUS[verdict.card_status],
        card_status_reason=_REASON[verdict.card_status_reason],
        alive=verdict.alive,
        request_id=verdict.request_id,
    )


def attribute_verification(verdict: AttributeVerdict) -> attributes_pb2.AttributeVerification:
    flat = verify_attributes_response(verdict)
    return attributes_pb2.AttributeVerification(
        results=flat.results,
        all_match=flat.all_match,
        card_status=flat.card_status,
        card_status_reason=flat.card_status_reason,
        alive=flat.alive,
    )


def id_card_lookup(service: DigitalIdService) -> Callable[[CitizenView], Any]:
    """For Registry/GetCitizen: the citizen's card facts, or None without a card."""

    def look(view: CitizenView) -> attributes_pb2.IdCardRecord | None:
        card = service.card(view.citizen.citizen_id, view.citizen.synthetic)
        if card is None:
            return None
        return attributes_pb2.IdCardRecord(
            laser_code=format_laser_code(card.laser_code),
            registered_birth_date=str(card.birth_date),
            issued_on=card.issued_on.isoformat(),
            expires_on=card.expires_on.isoformat(),
            status=_STATUS[card.status_on(dt.date.today())],
            status_reason=_REASON[card.status_reason],
            alive=card.alive,
            deceased_on=card.deceased_on.isoformat() if card.deceased_on else "",
            house_no=card.house_no,
            district=card.district,
            province=card.province,
        )

    return look


def verdict_outcome(verdict: AttributeVerdict) -> dict[str, Any]:
    """What the audit record keeps: results and card status, never a value."""
    return {
        "request_id": verdict.request_id,
        "attributes": {
            name: result.value
            for name, result in verdict.results.items()
            if result is not AttributeResult.NOT_PROVIDED
        },
        "card_status": verdict.card_status.value,
        "alive": verdict.alive,
    }


class DigitalIdServicer(digitalid_pb2_grpc.DigitalIdServicer):  # type: ignore[misc]
    def __init__(self, runner: Runner, service: DigitalIdService) -> None:
        self._r = runner
        self._s = service

    async def VerifyAttributes(
        self, request: digitalid_pb2.VerifyAttributesRequest, context: Context
    ) -> digitalid_pb2.VerifyAttributesResponse:
        consent, problem = None, None
        if request.HasField("consent"):
            carrier, problem = convert.verify_request(_consent_carrier(request))
            consent = carrier.consent
        request_id = request.request_id or uuid.uuid4().hex
        if problem is None:  # the intake's cheap checks, before authorisation (as Verify)
            try:
                check_text(request_id, "request_id", MAX_REQUEST_ID, ascii_only=True)
                check_text(request.purpose, "purpose", MAX_PURPOSE)
                if consent is not None:
                    check_text(consent.reference, "consent.reference", MAX_CONSENT_REFERENCE)
            except FvsError as exc:
                problem = exc
        if consent is not None:
            consent = Consent(
                recordable(consent.reference, MAX_CONSENT_REFERENCE), consent.given_at
            )
        facts = CallFacts(
            Operation.VERIFY_ATTRIBUTES,
            citizen_id=request.citizen_id if cid.is_valid(request.citizen_id) else "",
            purpose=recordable(request.purpose, MAX_PURPOSE),
            consent=consent,
            request_id=recordable(request_id, MAX_REQUEST_ID),
            problem=problem,
        )
        claimed = claimed_attributes(request.claimed)

        def run(auth: Authorization) -> AttributeVerdict:
            return self._s.verify_attributes(
                auth.system.agency_code, request.citizen_id, claimed, request_id
            )

        verdict = await self._r.gated(context, facts, run, verdict_outcome)
        return verify_attributes_response(verdict)


class KycVerify:
    """FaceVerification/Verify with claimed attributes: the face and the attributes in one
    call, authorised once (purpose, permit, consent), audited in one record (score and
    attribute results). Attribute input and the guessing limit are checked before the model
    runs; the attributes are compared (and NO_MATCH counted) only once the face was."""

    def __init__(self, runner: Runner, service: DigitalIdService) -> None:
        self._r = runner
        self._s = service

    async def __call__(
        self, request: verification_pb2.VerifyRequest, context: Context
    ) -> verification_pb2.VerifyResponse:
        domain, facts = verify_call(request, self._r.limits)
        # needs DIGITAL_ID as well as FVS; audited (and counted in usage) as Verify/KYC
        facts = replace(facts, services=frozenset({SERVICE_DIGITAL_ID}), action="KYC")
        claimed = claimed_attributes(request.claimed)

        def run(auth: Authorization) -> tuple[Verified, AttributeVerdict]:
            agency = auth.system.agency_code
            self._s.precheck(agency, domain.citizen_id, claimed)
            verified = self._r.verified(domain, auth)
            verdict = self._s.verify_attributes(
                agency, domain.citizen_id, claimed, verified.result.request_id
            )
            return verified, verdict

        def outcome(pair: tuple[Verified, AttributeVerdict]) -> dict[str, Any]:
            return {**verify_outcome(pair[0]), **verdict_outcome(pair[1])}

        verified, verdict = await self._r.gated(context, facts, run, outcome)
        response = convert.verify_response(verified.result, verified.receipt)
        response.attributes.CopyFrom(attribute_verification(verdict))
        return response


def _consent_carrier(
    request: digitalid_pb2.VerifyAttributesRequest,
) -> verification_pb2.VerifyRequest:
    """A VerifyRequest holding only the consent, so that one converter reads it."""
    return verification_pb2.VerifyRequest(consent=request.consent)


def build_digital_id(settings: Settings, service: FaceService, gate: Gate) -> DigitalIdService:
    """The Digital ID service on the registry's data directory (its own tables); from now on
    the gate also checks which services an agency's permit covers."""
    cards = open_card_store(settings.store.location())
    gate.policy.services = cards.permit_services
    return DigitalIdService(
        service.store,
        cards,
        lambda citizen_id: citizen_hash(gate.citizen_key, citizen_id),
        GuessingLimit(settings.digitalid.max_no_match, settings.digitalid.no_match_window_s),
    )
