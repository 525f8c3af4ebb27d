"""A small blocking client for the FVS gRPC API (used by the CLI and by tests)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from fvs.api.errors import error_info
from fvs.api.v1 import (
    attributes_pb2,
    digitalid_pb2,
    digitalid_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
    verification_pb2,
    verification_pb2_grpc,
)


@dataclass(eq=False)
class CallFailedError(Exception):
    """A refused or failed call: gRPC code name, FVS reason (ErrorInfo) and message.

    Not frozen: Python sets ``__traceback__`` on an exception as it propagates (through a
    context manager, a generator), which a frozen dataclass would refuse."""

    code: str
    reason: str
    message: str
    metadata: dict[str, str]

    def __str__(self) -> str:
        return f"{self.reason or self.code} ({self.code}): {self.message}"


def _failure(exc: grpc.RpcError) -> CallFailedError:
    call = exc if isinstance(exc, grpc.Call) else None
    status = rpc_status.from_call(call) if call is not None else None
    info = error_info(status)
    code = exc.code().name if isinstance(exc, grpc.Call) else "UNKNOWN"
    message = exc.details() if isinstance(exc, grpc.Call) else str(exc)
    return CallFailedError(
        code=code,
        reason=info.reason if info else "",
        message=message or "",
        metadata=dict(info.metadata) if info else {},
    )


@dataclass(frozen=True)
class ClientTls:
    """PEM bytes of the deployment CA, and of this system's certificate and key."""

    ca: bytes
    cert: bytes
    key: bytes

    @classmethod
    def from_files(cls, ca: Path, cert: Path, key: Path) -> ClientTls:
        return cls(ca.read_bytes(), cert.read_bytes(), key.read_bytes())

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca, private_key=self.key, certificate_chain=self.cert
        )


def channel(
    address: str,
    tls: ClientTls | None,
    max_message_bytes: int = 16 * 1024 * 1024,
    own_connection: bool = False,
) -> grpc.Channel:
    """``own_connection``: a TCP connection of this channel's own (gRPC otherwise shares one
    between channels to the same address with the same options). A server of several
    processes (`fvs serve --processes N`) spreads connections, not calls, across them."""
    options: list[tuple[str, int]] = [("grpc.max_send_message_length", max_message_bytes)]
    if own_connection:
        options.append(("grpc.use_local_subchannel_pool", 1))
    if tls is None:
        return grpc.insecure_channel(address, options=options)
    return grpc.secure_channel(address, tls.credentials(), options=options)


class FvsClient:
    def __init__(
        self,
        address: str,
        timeout_s: float = 30.0,
        tls: ClientTls | None = None,
        own_connection: bool = False,
    ) -> None:
        self.channel = channel(address, tls, own_connection=own_connection)
        self.timeout_s = timeout_s
        self._verify = verification_pb2_grpc.FaceVerificationStub(self.channel)
        self._registry = registry_pb2_grpc.RegistryStub(self.channel)
        self._health = health_pb2_grpc.HealthStub(self.channel)
        self._digital_id = digitalid_pb2_grpc.DigitalIdStub(self.channel)

    def __enter__(self) -> FvsClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.channel.close()

    def verify(
        self,
        citizen_id: str,
        image: bytes,
        purpose: str = "",
        consent_reference: str = "",
        consent_given_at: dt.datetime | None = None,
        request_id: str = "",
        claimed: dict[str, str] | None = None,
    ) -> verification_pb2.VerifyResponse:
        """``claimed`` (Attributes field names to values) makes it the combined KYC call."""
        request = verification_pb2.VerifyRequest(
            citizen_id=citizen_id, image=image, purpose=purpose, request_id=request_id
        )
        if claimed is not None:
            request.claimed.CopyFrom(attributes_pb2.Attributes(**claimed))
        if consent_reference:
            request.consent.reference = consent_reference
            request.consent.given_at.FromDatetime(consent_given_at or dt.datetime.now(dt.UTC))
        try:
            response: verification_pb2.VerifyResponse = self._verify.Verify(
                request, timeout=self.timeout_s
            )
        except grpc.RpcError as exc:
            raise _failure(exc) from None
        return response

    def verify_attributes(
        self,
        citizen_id: str,
        claimed: dict[str, str],
        purpose: str = "",
        consent_reference: str = "",
        consent_given_at: dt.datetime | None = None,
        request_id: str = "",
    ) -> digitalid_pb2.VerifyAttributesResponse:
        """DigitalId/VerifyAttributes: ``claimed`` maps Attributes field names to values."""
        request = digitalid_pb2.VerifyAttributesRequest(
            citizen_id=citizen_id,
            claimed=attributes_pb2.Attributes(**claimed),
            purpose=purpose,
            request_id=request_id,
        )
        if consent_reference:
            request.consent.reference = consent_reference
            request.consent.given_at.FromDatetime(consent_given_at or dt.datetime.now(dt.UTC))
        try:
            response: digitalid_pb2.VerifyAttributesResponse = self._digital_id.VerifyAttributes(
                request, timeout=self.timeout_s
            )
        except grpc.RpcError as exc:
            raise _failure(exc) from None
        return response

    def enroll(
        self, citizen_id: str, image: bytes, create_if_missing: bool = False
    ) -> registry_pb2.EnrollResponse:
        try:
            response: registry_pb2.EnrollResponse = self._registry.Enroll(
                registry_pb2.EnrollRequest(
                    citizen_id=citizen_id, image=image, create_if_missing=create_if_missing
                ),
                timeout=self.timeout_s,
            )
        except grpc.RpcError as exc:
            raise _failure(exc) from None
        return response

    def search_duplicates(
        self, k: int = 0, image: bytes | None = None, citizen_id: str | None = None
    ) -> registry_pb2.SearchDuplicatesResponse:
        """Registry/SearchDuplicates by a photo or by an enrolled citizen."""
        request = registry_pb2.SearchDuplicatesRequest(k=k)
        if image is not None:
            request.image = image
        elif citizen_id is not None:
            request.citizen_id = citizen_id
        try:
            response: registry_pb2.SearchDuplicatesResponse = self._registry.SearchDuplicates(
                request, timeout=self.timeout_s
            )
        except grpc.RpcError as exc:
            raise _failure(exc) from None
        return response

    def get_citizen(self, citizen_id: str) -> registry_pb2.Citizen:
        try:
            response: registry_pb2.Citizen = self._registry.GetCitizen(
                registry_pb2.GetCitizenRequest(citizen_id=citizen_id), timeout=self.timeout_s
            )
        except grpc.RpcError as exc:
            raise _failure(exc) from None
        return response

    def delete_enrollment(self, citizen_id: str) -> registry_pb2.DeleteEnrollmentResponse:
        try:
            response: registry_pb2.DeleteEnrollmentResponse = self._registry.DeleteEnrollment(
                registry_pb2.DeleteEnrollmentRequest(citizen_id=citizen_id), timeout=self.timeout_s
            )
        except grpc.RpcError as exc:
            raise _failure(exc) from None
        return response

    def health(self, service: str = "") -> str:
        """SERVING, NOT_SERVING, ... for ``service`` ("" = the whole server)."""
        try:
            response = self._health.Check(
                health_pb2.HealthCheckRequest(service=service), timeout=self.timeout_s
            )
        except grpc.RpcError as exc:
            raise _failure(exc) from None
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))
