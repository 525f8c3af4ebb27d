"""The one mapping from FVS error kinds to gRPC status codes, and rich error details."""

from __future__ import annotations

from collections.abc import Mapping

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from fvs.errors import ErrorCode, FvsError, Kind
from fvs.limits import MAX_MESSAGE_TEXT, MAX_METADATA_TEXT, shorten

DOMAIN = "fvs.v1"

GRPC_CODE: Mapping[Kind, grpc.StatusCode] = {
    Kind.INVALID_INPUT: grpc.StatusCode.INVALID_ARGUMENT,
    Kind.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    Kind.DENIED: grpc.StatusCode.PERMISSION_DENIED,
    Kind.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    Kind.CONFLICT: grpc.StatusCode.ALREADY_EXISTS,
    Kind.PRECONDITION: grpc.StatusCode.FAILED_PRECONDITION,
    Kind.OVERLOADED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Kind.DEADLINE: grpc.StatusCode.DEADLINE_EXCEEDED,
    Kind.CANCELLED: grpc.StatusCode.CANCELLED,
    Kind.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    Kind.DATA_LOSS: grpc.StatusCode.DATA_LOSS,
    Kind.INTERNAL: grpc.StatusCode.INTERNAL,
}

GENERIC_INTERNAL_MESSAGE = "internal error; the server logged the details"


def grpc_code(code: ErrorCode) -> grpc.StatusCode:
    return GRPC_CODE[code.kind]


def to_grpc_status(error: FvsError) -> grpc.Status:
    """google.rpc.Status with an ErrorInfo (domain fvs.v1, reason = the error code)."""
    code = grpc_code(error.code)
    metadata = {
        shorten(k, 64): shorten(v, MAX_METADATA_TEXT) for k, v in list(error.metadata.items())[:16]
    }
    info = error_details_pb2.ErrorInfo(reason=error.code.value, domain=DOMAIN, metadata=metadata)
    detail = any_pb2.Any()
    detail.Pack(info)
    details = [detail]
    if error.retry_after_s is not None:
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromNanoseconds(max(1, int(error.retry_after_s * 1e9)))
        extra = any_pb2.Any()
        extra.Pack(retry)
        details.append(extra)
    message = error.message if error.code is not ErrorCode.INTERNAL else GENERIC_INTERNAL_MESSAGE
    status = status_pb2.Status(
        code=code.value[0], message=shorten(message, MAX_MESSAGE_TEXT), details=details
    )
    result: grpc.Status = rpc_status.to_status(status)
    return result


def internal_status() -> grpc.Status:
    return to_grpc_status(FvsError(ErrorCode.INTERNAL, GENERIC_INTERNAL_MESSAGE))


def error_info(status: status_pb2.Status | None) -> error_details_pb2.ErrorInfo | None:
    """The ErrorInfo detail of a google.rpc.Status, if any."""
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    return None


def retry_info(status: status_pb2.Status | None) -> error_details_pb2.RetryInfo | None:
    """The RetryInfo detail of a google.rpc.Status, if any."""
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return info
    return None
