"""Protobuf <-> domain values. No logic beyond the mapping of fields."""

from __future__ import annotations

import datetime as dt
from typing import Any

from google.protobuf import timestamp_pb2

from fvs.access.model import Agency, AgencyKind, Permit, PermitStatus, System
from fvs.api.errors import to_grpc_status
from fvs.api.v1 import admin_pb2, common_pb2, registry_pb2, verification_pb2
from fvs.domain import (
    CardStatus,
    CitizenView,
    Consent,
    DuplicateMatch,
    EnrollRequest,
    EnrollResult,
    Face,
    Quality,
    Sex,
    Timings,
    VerifyRequest,
    VerifyResult,
)
from fvs.errors import ErrorCode, FvsError
from fvs.receipts import Receipt

# google.protobuf.Timestamp's valid range: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z.
_MIN_SECONDS = -62_135_596_800
_MAX_SECONDS = 253_402_300_799


def time_of(stamp: timestamp_pb2.Timestamp, field: str) -> dt.datetime:
    """A Timestamp as an aware UTC datetime; INVALID_REQUEST when it is out of range."""
    if not (_MIN_SECONDS <= stamp.seconds <= _MAX_SECONDS and 0 <= stamp.nanos <= 999_999_999):
        raise FvsError(
            ErrorCode.INVALID_REQUEST,
            f"{field} is not a valid time: seconds must fall in years 1 to 9999 and nanos in "
            "0 to 999999999",
            field=field,
        )
    return stamp.ToDatetime(tzinfo=dt.UTC)


def verify_request(
    msg: verification_pb2.VerifyRequest,
) -> tuple[VerifyRequest, FvsError | None]:
    """The domain request, and the refusal for a malformed field (never an exception)."""
    consent = None
    problem: FvsError | None = None
    if msg.HasField("consent"):
        given = None
        if msg.consent.HasField("given_at"):
            try:
                given = time_of(msg.consent.given_at, "consent.given_at")
            except FvsError as exc:
                problem = exc
        consent = Consent(reference=msg.consent.reference, given_at=given)
    request = VerifyRequest(
        citizen_id=msg.citizen_id,
        image=msg.image,
        purpose=msg.purpose,
        consent=consent,
        request_id=msg.request_id,
    )
    return request, problem


def enroll_request(msg: registry_pb2.EnrollRequest) -> EnrollRequest:
    return EnrollRequest(
        citizen_id=msg.citizen_id, image=msg.image, create_if_missing=msg.create_if_missing
    )


def face(value: Face) -> common_pb2.Face:
    x0, y0, x1, y1 = value.box
    return common_pb2.Face(
        box=common_pb2.Box(x_min=x0, y_min=y0, x_max=x1, y_max=y1),
        landmarks=[common_pb2.Point(x=x, y=y) for x, y in value.landmarks],
        detection_score=value.score,
    )


def quality(value: Quality | None) -> common_pb2.Quality | None:
    if value is None:
        return None
    return common_pb2.Quality(
        inter_eye_px=value.inter_eye_px,
        sharpness=value.sharpness,
        exposure=value.exposure,
        contrast=value.contrast,
        yaw_deg=value.yaw_deg,
        pitch_deg=value.pitch_deg,
        roll_deg=value.roll_deg,
        detection_score=value.detection_score,
        overall=value.overall,
    )


def timings(value: Timings) -> common_pb2.StageTimings:
    return common_pb2.StageTimings(
        decode_ms=value.decode_ms,
        detect_ms=value.detect_ms,
        align_ms=value.align_ms,
        embed_ms=value.embed_ms,
        quality_ms=value.quality_ms,
        match_ms=value.match_ms,
        total_ms=value.total_ms,
    )


def timestamp(value: dt.datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def verify_response(
    result: VerifyResult, receipt: Receipt | None = None
) -> verification_pb2.VerifyResponse:
    signed = (
        None
        if receipt is None
        else verification_pb2.Receipt(
            payload=receipt.payload, signature=receipt.signature, key_id=receipt.key_id
        )
    )
    return verification_pb2.VerifyResponse(
        receipt=signed,
        match_score=result.match_score,
        similarity=result.similarity,
        model=result.model,
        probe_face=face(result.face),
        request_id=result.request_id,
        template_version=result.template_version,
        score_mapping=result.score_mapping,
        timings=timings(result.timings),
        false_match_rate=result.false_match_rate,
        quality=quality(result.quality),
    )


def enroll_response(result: EnrollResult) -> registry_pb2.EnrollResponse:
    return registry_pb2.EnrollResponse(
        citizen_id=result.citizen_id,
        template_version=result.template_version,
        model=result.model,
        face=face(result.face),
        citizen_created=result.citizen_created,
        enrolled_at=timestamp(result.enrolled_at),
        quality=quality(result.quality),
        duplicates=[duplicate_candidate(m) for m in result.duplicates],
        duplicate_case_id=result.duplicate_case,
    )


def duplicate_candidate(match: DuplicateMatch) -> registry_pb2.DuplicateCandidate:
    return registry_pb2.DuplicateCandidate(
        citizen_id=match.citizen_id,
        similarity=match.similarity,
        score=match.score,
        template_version=match.template_version,
        duplicate=match.duplicate,
    )


_SEX = {Sex.MALE: registry_pb2.SEX_MALE, Sex.FEMALE: registry_pb2.SEX_FEMALE}
_CARD = {
    CardStatus.ACTIVE: registry_pb2.CARD_STATUS_ACTIVE,
    CardStatus.EXPIRED: registry_pb2.CARD_STATUS_EXPIRED,
    CardStatus.REVOKED: registry_pb2.CARD_STATUS_REVOKED,
}


def citizen(view: CitizenView) -> registry_pb2.Citizen:
    c = view.citizen
    return registry_pb2.Citizen(
        citizen_id=c.citizen_id,
        first_name_th=c.first_name_th,
        last_name_th=c.last_name_th,
        first_name_en=c.first_name_en,
        last_name_en=c.last_name_en,
        sex=_SEX[c.sex],
        birth_date=c.birth_date.isoformat(),
        province=c.province,
        district=c.district,
        card_status=_CARD[c.card_status],
        synthetic=c.synthetic,
        enrolled=view.template_version > 0,
        template_version=view.template_version,
        template_model=view.template_model,
    )


# ---- administration ------------------------------------------------------------------------

_KIND = {
    AgencyKind.STATE: admin_pb2.AGENCY_KIND_STATE,
    AgencyKind.PRIVATE: admin_pb2.AGENCY_KIND_PRIVATE,
}
_PERMIT = {
    PermitStatus.ACTIVE: admin_pb2.PERMIT_STATUS_ACTIVE,
    PermitStatus.SUSPENDED: admin_pb2.PERMIT_STATUS_SUSPENDED,
    PermitStatus.REVOKED: admin_pb2.PERMIT_STATUS_REVOKED,
}


def agency_kind_name(kind: int) -> str:
    """STATE / PRIVATE, or "" (refused by the admin service) for an unspecified kind."""
    for domain_kind, wire in _KIND.items():
        if wire == kind:
            return domain_kind.value
    return ""


def agency(value: Agency) -> admin_pb2.Agency:
    return admin_pb2.Agency(
        code=value.code,
        kind=_KIND[value.kind],
        name=value.name,
        registration_number=value.registration_number,
        mission=value.mission,
        supervisors=[
            admin_pb2.Supervisor(name=s.name, contact=s.contact) for s in value.supervisors
        ],
    )


def permit(value: Permit) -> admin_pb2.Permit:
    return admin_pb2.Permit(
        id=value.id,
        agency_code=value.agency_code,
        status=_PERMIT[value.status],
        status_reason=value.status_reason,
        status_changed_at=timestamp(value.status_changed_at),
        valid_from=timestamp(value.valid_from),
        valid_until=timestamp(value.valid_until),
        purposes=list(value.purposes),
        conditions_version=value.conditions_version,
        rate_per_s=value.rate_per_s,
        burst=value.burst,
    )


def system(value: System) -> admin_pb2.System:
    return admin_pb2.System(
        id=value.id,
        agency_code=value.agency_code,
        name=value.name,
        fingerprint=value.fingerprint,
        active=value.active,
    )


def optional_time(message: Any, field: str) -> dt.datetime | None:
    """The Timestamp field ``field`` of ``message``, None when unset; raises INVALID_REQUEST
    when it is out of range."""
    if not message.HasField(field):
        return None
    stamp: timestamp_pb2.Timestamp = getattr(message, field)
    return time_of(stamp, field)


def item_error(error: FvsError) -> verification_pb2.ItemError:
    """A batch item's refusal, with the fields Verify's status and ErrorInfo would carry."""
    status = to_grpc_status(error)
    return verification_pb2.ItemError(
        code=status.code.value[0],
        reason=error.code.value,
        message=status.details,
        metadata=error.metadata,
    )
