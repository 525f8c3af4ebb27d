import grpc
import pytest
from google.rpc import status_pb2

from fvs.api.errors import (
    DOMAIN,
    GENERIC_INTERNAL_MESSAGE,
    GRPC_CODE,
    error_info,
    grpc_code,
    to_grpc_status,
)
from fvs.errors import KIND_OF, ErrorCode, FvsError, Kind

# The table the issue fixes, code by code.
EXPECTED = {
    ErrorCode.INVALID_CITIZEN_ID: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.INVALID_REQUEST: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.IMAGE_MISSING: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.IMAGE_TOO_LARGE: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.IMAGE_UNDECODABLE: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.NO_FACE: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.MULTIPLE_FACES: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.FACE_TOO_SMALL: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.LOW_QUALITY: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.CITIZEN_NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ErrorCode.NOT_ENROLLED: grpc.StatusCode.NOT_FOUND,
    ErrorCode.TEMPLATE_MODEL_MISMATCH: grpc.StatusCode.FAILED_PRECONDITION,
    ErrorCode.MODEL_NOT_READY: grpc.StatusCode.UNAVAILABLE,
    ErrorCode.SHUTTING_DOWN: grpc.StatusCode.UNAVAILABLE,
    ErrorCode.STORE_UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    ErrorCode.INTERNAL: grpc.StatusCode.INTERNAL,
    ErrorCode.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    ErrorCode.SYSTEM_NOT_REGISTERED: grpc.StatusCode.PERMISSION_DENIED,
    ErrorCode.SYSTEM_DISABLED: grpc.StatusCode.PERMISSION_DENIED,
    ErrorCode.PERMIT_SUSPENDED: grpc.StatusCode.PERMISSION_DENIED,
    ErrorCode.PERMIT_REVOKED: grpc.StatusCode.PERMISSION_DENIED,
    ErrorCode.PERMIT_EXPIRED: grpc.StatusCode.PERMISSION_DENIED,
    ErrorCode.PERMIT_NOT_YET_VALID: grpc.StatusCode.PERMISSION_DENIED,
    ErrorCode.PURPOSE_NOT_PERMITTED: grpc.StatusCode.PERMISSION_DENIED,
    ErrorCode.OPERATION_NOT_PERMITTED: grpc.StatusCode.PERMISSION_DENIED,
    ErrorCode.UNKNOWN_PURPOSE: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.CONSENT_REQUIRED: grpc.StatusCode.FAILED_PRECONDITION,
    ErrorCode.AUDIT_UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    ErrorCode.OVERLOADED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorCode.RATE_LIMITED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorCode.DEADLINE_EXCEEDED: grpc.StatusCode.DEADLINE_EXCEEDED,
    ErrorCode.CANCELLED: grpc.StatusCode.CANCELLED,
    ErrorCode.AGENCY_NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ErrorCode.PERMIT_NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ErrorCode.SYSTEM_NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ErrorCode.ALREADY_EXISTS: grpc.StatusCode.ALREADY_EXISTS,
    ErrorCode.INVALID_TRANSITION: grpc.StatusCode.FAILED_PRECONDITION,
    ErrorCode.INVALID_CERTIFICATE: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.TEMPLATE_INTEGRITY: grpc.StatusCode.DATA_LOSS,
    ErrorCode.INVALID_ATTRIBUTE: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.ATTRIBUTE_GUESSING: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorCode.SERVICE_NOT_PERMITTED: grpc.StatusCode.PERMISSION_DENIED,
    ErrorCode.DUPLICATE_IDENTITY: grpc.StatusCode.FAILED_PRECONDITION,
    ErrorCode.DUPLICATE_SEARCH_UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    ErrorCode.CASE_NOT_FOUND: grpc.StatusCode.NOT_FOUND,
}


def test_every_code_has_a_kind_and_every_kind_a_grpc_code() -> None:
    assert set(KIND_OF) == set(ErrorCode)
    assert set(GRPC_CODE) == set(Kind)


@pytest.mark.parametrize("code", list(ErrorCode))
def test_code_maps_to_the_documented_status(code: ErrorCode) -> None:
    assert grpc_code(code) is EXPECTED[code]


@pytest.mark.parametrize("code", list(ErrorCode))
def test_status_carries_error_info(code: ErrorCode) -> None:
    status = to_grpc_status(FvsError(code, "human text", field="x"))
    assert status.code is EXPECTED[code]
    ((key, value),) = status.trailing_metadata
    assert key == "grpc-status-details-bin"
    rich = status_pb2.Status.FromString(value)
    info = error_info(rich)
    assert info is not None
    assert info.reason == code.value
    assert info.domain == DOMAIN
    assert dict(info.metadata) == {"field": "x"}
    expected_message = GENERIC_INTERNAL_MESSAGE if code is ErrorCode.INTERNAL else "human text"
    assert status.details == rich.message == expected_message
