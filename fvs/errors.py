"""The one error taxonomy of FVS.

Every failure a caller can see is an :class:`FvsError` carrying an :class:`ErrorCode`. The
code is the machine-readable reason (``ErrorInfo.reason`` on the wire); ``Kind`` says which
class of failure it is, and ``fvs.api.errors`` maps each kind to exactly one gRPC status code.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping


class Kind(enum.Enum):
    """Transport-neutral failure classes (each maps to one gRPC code)."""

    INVALID_INPUT = "invalid_input"
    UNAUTHENTICATED = "unauthenticated"
    DENIED = "denied"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    PRECONDITION = "precondition"
    OVERLOADED = "overloaded"
    DEADLINE = "deadline"
    CANCELLED = "cancelled"
    UNAVAILABLE = "unavailable"
    DATA_LOSS = "data_loss"
    INTERNAL = "internal"


class ErrorCode(enum.Enum):
    """Machine-readable reasons. The value is the wire reason string."""

    INVALID_CITIZEN_ID = "INVALID_CITIZEN_ID"
    INVALID_REQUEST = "INVALID_REQUEST"
    IMAGE_MISSING = "IMAGE_MISSING"
    IMAGE_TOO_LARGE = "IMAGE_TOO_LARGE"
    IMAGE_UNDECODABLE = "IMAGE_UNDECODABLE"
    NO_FACE = "NO_FACE"
    MULTIPLE_FACES = "MULTIPLE_FACES"
    FACE_TOO_SMALL = "FACE_TOO_SMALL"
    LOW_QUALITY = "LOW_QUALITY"
    CITIZEN_NOT_FOUND = "CITIZEN_NOT_FOUND"
    NOT_ENROLLED = "NOT_ENROLLED"
    TEMPLATE_MODEL_MISMATCH = "TEMPLATE_MODEL_MISMATCH"
    MODEL_NOT_READY = "MODEL_NOT_READY"
    SHUTTING_DOWN = "SHUTTING_DOWN"  # operations (issue 12): draining before exit
    STORE_UNAVAILABLE = "STORE_UNAVAILABLE"
    INTERNAL = "INTERNAL"
    # access rules (issue 3)
    UNAUTHENTICATED = "UNAUTHENTICATED"
    SYSTEM_NOT_REGISTERED = "SYSTEM_NOT_REGISTERED"
    SYSTEM_DISABLED = "SYSTEM_DISABLED"
    PERMIT_SUSPENDED = "PERMIT_SUSPENDED"
    PERMIT_REVOKED = "PERMIT_REVOKED"
    PERMIT_EXPIRED = "PERMIT_EXPIRED"
    PERMIT_NOT_YET_VALID = "PERMIT_NOT_YET_VALID"
    PURPOSE_NOT_PERMITTED = "PURPOSE_NOT_PERMITTED"
    OPERATION_NOT_PERMITTED = "OPERATION_NOT_PERMITTED"
    UNKNOWN_PURPOSE = "UNKNOWN_PURPOSE"
    CONSENT_REQUIRED = "CONSENT_REQUIRED"
    AUDIT_UNAVAILABLE = "AUDIT_UNAVAILABLE"
    # load (issue 5)
    OVERLOADED = "OVERLOADED"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    CANCELLED = "CANCELLED"
    RATE_LIMITED = "RATE_LIMITED"  # the permit's calls per second (issue 10)
    # administration
    AGENCY_NOT_FOUND = "AGENCY_NOT_FOUND"
    PERMIT_NOT_FOUND = "PERMIT_NOT_FOUND"
    SYSTEM_NOT_FOUND = "SYSTEM_NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    INVALID_TRANSITION = "INVALID_TRANSITION"
    INVALID_CERTIFICATE = "INVALID_CERTIFICATE"
    # storage (issue 8): a stored template failed its integrity check (moved or altered)
    TEMPLATE_INTEGRITY = "TEMPLATE_INTEGRITY"
    # Digital ID (issue 14)
    INVALID_ATTRIBUTE = "INVALID_ATTRIBUTE"
    ATTRIBUTE_GUESSING = "ATTRIBUTE_GUESSING"
    SERVICE_NOT_PERMITTED = "SERVICE_NOT_PERMITTED"
    # 1:N duplicate search (issue 9)
    DUPLICATE_IDENTITY = "DUPLICATE_IDENTITY"  # the face is enrolled under another citizen ID
    DUPLICATE_SEARCH_UNAVAILABLE = "DUPLICATE_SEARCH_UNAVAILABLE"  # its index is loading
    CASE_NOT_FOUND = "CASE_NOT_FOUND"

    @property
    def kind(self) -> Kind:
        return KIND_OF[self]


KIND_OF: Mapping[ErrorCode, Kind] = {
    ErrorCode.INVALID_CITIZEN_ID: Kind.INVALID_INPUT,
    ErrorCode.INVALID_REQUEST: Kind.INVALID_INPUT,
    ErrorCode.IMAGE_MISSING: Kind.INVALID_INPUT,
    ErrorCode.IMAGE_TOO_LARGE: Kind.INVALID_INPUT,
    ErrorCode.IMAGE_UNDECODABLE: Kind.INVALID_INPUT,
    ErrorCode.NO_FACE: Kind.INVALID_INPUT,
    ErrorCode.MULTIPLE_FACES: Kind.INVALID_INPUT,
    ErrorCode.FACE_TOO_SMALL: Kind.INVALID_INPUT,
    ErrorCode.LOW_QUALITY: Kind.INVALID_INPUT,
    ErrorCode.CITIZEN_NOT_FOUND: Kind.NOT_FOUND,
    ErrorCode.NOT_ENROLLED: Kind.NOT_FOUND,
    ErrorCode.TEMPLATE_MODEL_MISMATCH: Kind.PRECONDITION,
    ErrorCode.MODEL_NOT_READY: Kind.UNAVAILABLE,
    ErrorCode.SHUTTING_DOWN: Kind.UNAVAILABLE,
    ErrorCode.STORE_UNAVAILABLE: Kind.UNAVAILABLE,
    ErrorCode.INTERNAL: Kind.INTERNAL,
    ErrorCode.UNAUTHENTICATED: Kind.UNAUTHENTICATED,
    ErrorCode.SYSTEM_NOT_REGISTERED: Kind.DENIED,
    ErrorCode.SYSTEM_DISABLED: Kind.DENIED,
    ErrorCode.PERMIT_SUSPENDED: Kind.DENIED,
    ErrorCode.PERMIT_REVOKED: Kind.DENIED,
    ErrorCode.PERMIT_EXPIRED: Kind.DENIED,
    ErrorCode.PERMIT_NOT_YET_VALID: Kind.DENIED,
    ErrorCode.PURPOSE_NOT_PERMITTED: Kind.DENIED,
    ErrorCode.OPERATION_NOT_PERMITTED: Kind.DENIED,
    ErrorCode.UNKNOWN_PURPOSE: Kind.INVALID_INPUT,
    ErrorCode.CONSENT_REQUIRED: Kind.PRECONDITION,
    ErrorCode.AUDIT_UNAVAILABLE: Kind.UNAVAILABLE,
    ErrorCode.OVERLOADED: Kind.OVERLOADED,
    ErrorCode.DEADLINE_EXCEEDED: Kind.DEADLINE,
    ErrorCode.CANCELLED: Kind.CANCELLED,
    ErrorCode.RATE_LIMITED: Kind.OVERLOADED,
    ErrorCode.AGENCY_NOT_FOUND: Kind.NOT_FOUND,
    ErrorCode.PERMIT_NOT_FOUND: Kind.NOT_FOUND,
    ErrorCode.SYSTEM_NOT_FOUND: Kind.NOT_FOUND,
    ErrorCode.ALREADY_EXISTS: Kind.CONFLICT,
    ErrorCode.INVALID_TRANSITION: Kind.PRECONDITION,
    ErrorCode.INVALID_CERTIFICATE: Kind.INVALID_INPUT,
    ErrorCode.TEMPLATE_INTEGRITY: Kind.DATA_LOSS,
    ErrorCode.INVALID_ATTRIBUTE: Kind.INVALID_INPUT,
    ErrorCode.ATTRIBUTE_GUESSING: Kind.OVERLOADED,
    ErrorCode.SERVICE_NOT_PERMITTED: Kind.DENIED,
    ErrorCode.DUPLICATE_IDENTITY: Kind.PRECONDITION,
    ErrorCode.DUPLICATE_SEARCH_UNAVAILABLE: Kind.UNAVAILABLE,
    ErrorCode.CASE_NOT_FOUND: Kind.NOT_FOUND,
}


class FvsError(Exception):
    """A failure with a reason a caller can act on.

    ``message`` is for humans; ``metadata`` holds small string facts for machines (it becomes
    ``ErrorInfo.metadata``) and must never hold a citizen ID, an image or an embedding; the
    one exception is DUPLICATE_IDENTITY, answered only to the authority's own Registry
    systems, which names the enrolled candidate (issue 9).
    """

    def __init__(self, code: ErrorCode, message: str, **metadata: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.metadata: dict[str, str] = dict(metadata)
        # When set, callers are told to retry after this delay (google.rpc.RetryInfo).
        self.retry_after_s: float | None = None
        # Facts the audit record of the refused call keeps (never sent to the caller), e.g.
        # the duplicate case a refused enrolment opened.
        self.audit: dict[str, object] = {}

    def __repr__(self) -> str:
        return f"FvsError({self.code.value}, {self.message!r})"


class ConfigError(Exception):
    """The service cannot start as configured (bad manifest, missing provider, ...)."""
