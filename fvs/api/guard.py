"""What happens to a message before a servicer sees it: undecodable ones are refused and
audited like any refusal, and the calls whose message never reached FVS code are counted.

gRPC decodes a request with the method's deserializer before the servicer runs; a message
that does not parse used to end the call with an internal gRPC error, never audited. The
guard wraps the deserializer of every ``fvs.v1`` method: a message that fails to parse
becomes a marker, and the call is refused with INVALID_ARGUMENT / INVALID_REQUEST through
the gate (audited, bounded). So is a message over ``server.max_message_bytes``
(INVALID_ARGUMENT / INVALID_REQUEST, ``limit=message_bytes``): gRPC's own receive limit is set
to twice that (``transport_limit``), and only a message beyond it is refused by gRPC's core
before any FVS code runs (RESOURCE_EXHAUSTED). Such calls cannot be audited by FVS; gRPC
counts them (channelz ``callsFailed``), and :class:`MessageCounters` counts the rest.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc

from fvs.access.model import Operation
from fvs.errors import ErrorCode, FvsError

log = logging.getLogger(__name__)

PACKAGE = "/fvs.v1."

_OPERATIONS = {
    "FaceVerification": Operation.VERIFY,
    "Admin": Operation.ADMIN,
}
_REGISTRY = {
    "Enroll": Operation.ENROLL,
    "GetCitizen": Operation.GET_CITIZEN,
    "DeleteEnrollment": Operation.DELETE_ENROLLMENT,
}


@dataclass
class MessageCounters:
    """Counts of fvs.v1 calls by what became of their request message."""

    calls_started: int = 0
    messages_received: int = 0  # reached FVS code (decoded or not)
    messages_undecodable: int = 0  # refused and audited as INVALID_REQUEST
    messages_oversized: int = 0  # over max_message_bytes: refused and audited


def transport_limit(max_message_bytes: int) -> int:
    """gRPC's own receive limit: room for FVS to see (and audit) what exceeds its limit."""
    return 2 * max_message_bytes


@dataclass(frozen=True)
class Undecodable:
    """Stands in for a request message that did not parse, or was too large to."""

    size: int
    method: str
    too_large: bool = False


def operation_of(method: str) -> tuple[Operation, str]:
    """The operation (and admin action or batch marker) of a full method name."""
    service, _, name = method.removeprefix(PACKAGE).partition("/")
    if service == "Registry":
        return _REGISTRY.get(name, Operation.GET_CITIZEN), ""
    operation = _OPERATIONS.get(service, Operation.ADMIN)
    action = name if operation is Operation.ADMIN or name != "Verify" else ""
    return operation, action


Refuser = Callable[[Any, Operation, str, FvsError], Awaitable[None]]


if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]


class MessageGuard(grpc.aio.ServerInterceptor):
    """Server interceptor: counts calls and messages, turns undecodable ones into audited
    refusals. ``refuse`` (set once the runner exists) audits and aborts the call."""

    def __init__(self, max_message_bytes: int) -> None:
        self.max_message_bytes = max_message_bytes
        self.counters = MessageCounters()
        self._lock = threading.Lock()
        self.refuse: Refuser | None = None

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(details)
        method = str(details.method)
        if handler is None or not method.startswith(PACKAGE) or handler.unary_unary is None:
            return handler
        with self._lock:
            self.counters.calls_started += 1
        parse: Callable[[bytes], Any] = handler.request_deserializer or (lambda raw: raw)
        behaviour: Callable[[Any, Any], Awaitable[Any]] = handler.unary_unary

        def deserialize(raw: bytes) -> Any:
            with self._lock:
                self.counters.messages_received += 1
                if len(raw) > self.max_message_bytes:
                    self.counters.messages_oversized += 1
                    return Undecodable(len(raw), method, too_large=True)
            try:
                return parse(raw)
            except Exception:  # any parse failure: the message is not what the method takes
                with self._lock:
                    self.counters.messages_undecodable += 1
                return Undecodable(len(raw), method)

        async def guarded(request: Any, context: Any) -> Any:
            if isinstance(request, Undecodable):
                await self._refuse(request, context)
            return await behaviour(request, context)

        return grpc.unary_unary_rpc_method_handler(
            guarded,
            request_deserializer=deserialize,
            response_serializer=handler.response_serializer,
        )

    async def _refuse(self, message: Undecodable, context: Any) -> None:
        operation, action = operation_of(message.method)
        if message.too_large:
            problem = FvsError(
                ErrorCode.INVALID_REQUEST,
                f"the request message is {message.size} bytes; the limit is "
                f"{self.max_message_bytes}",
                field="message",
                limit="message_bytes",
                max=str(self.max_message_bytes),
            )
        else:
            problem = FvsError(
                ErrorCode.INVALID_REQUEST,
                f"the request message ({message.size} bytes) is not a valid "
                f"{message.method.removeprefix('/')} request",
                field="message",
                problem="undecodable",
            )
        log.info("undecodable %s message of %d bytes", message.method, message.size)
        if self.refuse is None:  # pragma: no cover - wired at server start
            raise problem
        await self.refuse(context, operation, action, problem)
