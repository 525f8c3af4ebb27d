"""What the console tells a tester in words: refusal reasons, false-match rates, quality
components against their minimums. Pure functions of API answers (no I/O)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from fvs.config import QualityMinimumsSettings
from fvs.errors import ErrorCode

# A plain explanation of each reason, for a tester rather than a programmer: what happened and
# what to do next. Every ErrorCode has one (tested).
REASONS: dict[str, str] = {
    ErrorCode.INVALID_CITIZEN_ID.value: (
        "The citizen ID must be 13 digits whose last digit is the check digit of the first 12. "
        "Check for a typing mistake, or generate a synthetic ID."
    ),
    ErrorCode.INVALID_REQUEST.value: (
        "A field is too long or holds characters the API does not accept (see the metadata)."
    ),
    ErrorCode.IMAGE_MISSING.value: "No photo was sent. Choose or drop a photo first.",
    ErrorCode.IMAGE_TOO_LARGE.value: (
        "The photo is over the server's size limit (bytes or megapixels). Send a smaller photo."
    ),
    ErrorCode.IMAGE_UNDECODABLE.value: (
        "The file is not a readable JPEG, PNG, WebP or BMP image: it may be damaged, truncated "
        "or of another format."
    ),
    ErrorCode.NO_FACE.value: (
        "No face was found. Use a photo in which the face is visible, frontal and well lit."
    ),
    ErrorCode.MULTIPLE_FACES.value: (
        "More than one face is nearly as prominent as the subject, so FVS cannot tell whose "
        "face to check. Crop the photo to the one person."
    ),
    ErrorCode.FACE_TOO_SMALL.value: (
        "The face is too small in the photo. Move closer or use a larger photo."
    ),
    ErrorCode.LOW_QUALITY.value: (
        "A quality component is below its minimum (named in the metadata): the photo is too "
        "blurred, dark, bright, flat or turned for a reliable comparison. Take it again."
    ),
    ErrorCode.CITIZEN_NOT_FOUND.value: (
        "The registry has no citizen with this ID. Enrol a synthetic citizen under it first."
    ),
    ErrorCode.NOT_ENROLLED.value: (
        "The citizen exists but has no enrolled face. Enrol a photo for them first."
    ),
    ErrorCode.TEMPLATE_MODEL_MISMATCH.value: (
        "The enrolled face was made by another face model and cannot be compared. Enrol again."
    ),
    ErrorCode.MODEL_NOT_READY.value: "The server is still loading its model. Try again shortly.",
    ErrorCode.STORE_UNAVAILABLE.value: (
        "The server cannot reach its registry database. Tell the operator."
    ),
    ErrorCode.INTERNAL.value: (
        "The server failed unexpectedly. The details are in the server's log, not here."
    ),
    ErrorCode.UNAUTHENTICATED.value: "The server received no client certificate.",
    ErrorCode.SYSTEM_NOT_REGISTERED.value: (
        "The console's certificate belongs to no registered system. Ask the operator to "
        "register it (fvs admin system add / operator add)."
    ),
    ErrorCode.SYSTEM_DISABLED.value: "The console's system registration was disabled.",
    ErrorCode.PERMIT_SUSPENDED.value: "The agency's permit is suspended (reason in the message).",
    ErrorCode.PERMIT_REVOKED.value: "The agency's permit was revoked.",
    ErrorCode.PERMIT_EXPIRED.value: "The agency's permit has expired.",
    ErrorCode.PERMIT_NOT_YET_VALID.value: "The agency's permit is not valid yet.",
    ErrorCode.PURPOSE_NOT_PERMITTED.value: (
        "The agency holds no permit for this purpose. Use a purpose its permit lists."
    ),
    ErrorCode.OPERATION_NOT_PERMITTED.value: (
        "The console's certificate may not call this operation: enrolment needs Registry "
        "rights, verification an agency permit."
    ),
    ErrorCode.UNKNOWN_PURPOSE.value: "The purpose is empty or not defined on this server.",
    ErrorCode.CONSENT_REQUIRED.value: (
        "The data owner's consent is missing, in the future or too old (see 'problem'). "
        "Give a consent reference; the console stamps it with the current time."
    ),
    ErrorCode.AUDIT_UNAVAILABLE.value: (
        "The server could not write its audit record, so it refused the call (fail closed)."
    ),
    ErrorCode.OVERLOADED.value: "The server is busy. Try again in a moment.",
    ErrorCode.TEMPLATE_INTEGRITY.value: "This citizen's stored face template failed its "
    "integrity check, so it was not compared. The authority must re-enrol the citizen.",
    ErrorCode.RATE_LIMITED.value: "Your agency's permit allows only so many calls per second. "
    "Try again in a moment.",
    ErrorCode.SHUTTING_DOWN.value: "The server is shutting down. Try again in a moment "
    "(another server may answer).",
    ErrorCode.DEADLINE_EXCEEDED.value: "The call took longer than the console's time limit.",
    ErrorCode.CANCELLED.value: "The call was cancelled before it reached the model.",
    ErrorCode.AGENCY_NOT_FOUND.value: "No such agency.",
    ErrorCode.PERMIT_NOT_FOUND.value: "No such permit.",
    ErrorCode.SYSTEM_NOT_FOUND.value: "No such system.",
    ErrorCode.ALREADY_EXISTS.value: "It exists already.",
    ErrorCode.INVALID_TRANSITION.value: "That change of state is not allowed.",
    ErrorCode.INVALID_CERTIFICATE.value: "The certificate is malformed or not of this CA.",
    ErrorCode.INVALID_ATTRIBUTE.value: "A claimed attribute is malformed; see the field named.",
    ErrorCode.SERVICE_NOT_PERMITTED.value: "The agency's permit does not cover this service.",
    ErrorCode.DUPLICATE_IDENTITY.value: (
        "This face is already enrolled under another citizen ID; the enrolment was refused "
        "and kept as a duplicate case for adjudication."
    ),
    ErrorCode.DUPLICATE_SEARCH_UNAVAILABLE.value: (
        "The duplicate search index is still being built; try the enrolment again shortly."
    ),
    ErrorCode.CASE_NOT_FOUND.value: "There is no duplicate case with that number.",
    ErrorCode.ATTRIBUTE_GUESSING.value: (
        "Too many attribute checks of this citizen did not match; checks are paused for a while."
    ),
}

# Failures without an FVS reason: the gRPC code alone (transport, handshake, time limit).
TRANSPORT: dict[str, str] = {
    "UNAVAILABLE": (
        "The console could not reach the FVS server, or the TLS handshake failed (wrong CA, "
        "a certificate that is expired or of another CA). Check --server and the certificate."
    ),
    "DEADLINE_EXCEEDED": "The server did not answer within the console's time limit.",
    "UNAUTHENTICATED": "The server did not accept the console's credentials.",
}


def explain(code: str, reason: str) -> str:
    """The plain explanation of a refusal, by its ErrorInfo reason or else its gRPC code."""
    if reason in REASONS:
        return REASONS[reason]
    return TRANSPORT.get(code, f"The server refused the call with {code}.")


def _people(n: float) -> str:
    """1234.5 -> '1,200' (two significant digits, grouped)."""
    if n < 10:
        return f"{n:.0f}"
    digits = math.floor(math.log10(n)) - 1
    return f"{round(n, -digits):,.0f}"


def fmr_in_words(false_match_rate: float | None, match_score: float) -> str:
    """'about 1 in 100,000 different people score this high', or why no rate is claimed."""
    if false_match_rate is None:
        return (
            "no false match rate: the server has no calibration for this model, so the "
            "score is provisional"
        )
    if false_match_rate >= 0.5:
        return "most different people score this high: the score says nothing about identity"
    one_in = _people(1.0 / max(false_match_rate, 1e-12))
    if match_score >= 100.0:
        return (
            f"at most about 1 in {one_in} different people score this high "
            "(the calibration's limit)"
        )
    return f"about 1 in {one_in} different people score this high"


@dataclass(frozen=True)
class QualityRow:
    """One quality component: its value, the minimum it must reach, and whether it does."""

    component: str
    value: str
    minimum: str
    passed: bool | None  # None: shown only, not checked

    def as_dict(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "value": self.value,
            "minimum": self.minimum,
            "passed": self.passed,
        }


def quality_rows(quality: Any, minimums: QualityMinimumsSettings) -> list[QualityRow]:
    """Rows for a ``fvs.v1.Quality`` message against ``minimums`` (the order of the checks)."""
    q, m = quality, minimums
    return [
        QualityRow(
            "face size (eye distance, px)",
            f"{q.inter_eye_px:.1f}",
            f">= {m.inter_eye_px:g}",
            q.inter_eye_px >= m.inter_eye_px,
        ),
        QualityRow(
            "sharpness", f"{q.sharpness:.1f}", f">= {m.sharpness:g}", q.sharpness >= m.sharpness
        ),
        QualityRow(
            "exposure (mean grey)",
            f"{q.exposure:.1f}",
            f"{m.exposure_min:g} to {m.exposure_max:g}",
            m.exposure_min <= q.exposure <= m.exposure_max,
        ),
        QualityRow("contrast", f"{q.contrast:.1f}", f">= {m.contrast:g}", q.contrast >= m.contrast),
        QualityRow(
            "yaw (deg)",
            f"{q.yaw_deg:.1f}",
            f"|yaw| <= {m.max_yaw_deg:g}",
            abs(q.yaw_deg) <= m.max_yaw_deg,
        ),
        QualityRow(
            "pitch (deg)",
            f"{q.pitch_deg:.1f}",
            f"|pitch| <= {m.max_pitch_deg:g}",
            abs(q.pitch_deg) <= m.max_pitch_deg,
        ),
        QualityRow("roll (deg)", f"{q.roll_deg:.1f}", "not checked", None),
        QualityRow(
            "detection score",
            f"{q.detection_score:.3f}",
            f">= {m.detection_score:g}",
            q.detection_score >= m.detection_score,
        ),
        QualityRow("overall (0-100)", f"{q.overall:.0f}", "not checked", None),
    ]
