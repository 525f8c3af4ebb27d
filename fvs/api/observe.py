"""The server interceptor every FVS call passes through: it opens the call's context (request
id, agency, outcome: what log lines, metrics and spans share), counts the calls in flight,
writes one access-log line per call, and, once the server is shutting down, answers new calls
UNAVAILABLE / SHUTTING_DOWN while the ones in flight finish."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from fvs.api.errors import to_grpc_status
from fvs.errors import ErrorCode, FvsError
from fvs.observability.context import close_call, open_call
from fvs.observability.metrics import Metrics
from fvs.observability.tracing import Tracing

log = logging.getLogger("fvs.access_log")

SERVICE_PREFIX = "/fvs."  # fvs.v1.FaceVerification, fvs.v1.Registry, fvs.v1.Admin
PROCESS_HEADER = "fvs-process"  # which process of an `fvs serve --processes N` group answered


class CallObserver(grpc.aio.ServerInterceptor):
    def __init__(self, metrics: Metrics | None = None, tracing: Tracing | None = None) -> None:
        self.metrics = metrics
        self.tracing = tracing
        self.in_flight = 0  # FVS calls being served (event loop only)
        self.draining = False
        self.process: str | None = None  # a group's process index: sent as fvs-process

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(details)
        method_path = details.method or ""
        if handler is None or handler.unary_unary is None:
            return handler
        if not method_path.startswith(SERVICE_PREFIX):
            return handler  # health, reflection: not counted, never refused
        method = method_path.rsplit("/", 1)[-1]
        return grpc.unary_unary_rpc_method_handler(
            self._wrap(method, handler.unary_unary),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _wrap(
        self, method: str, behavior: Callable[[Any, Any], Awaitable[Any]]
    ) -> Callable[[Any, Any], Awaitable[Any]]:
        async def observed(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            call, token = open_call(method)
            start = time.perf_counter()
            self.in_flight += 1
            if self.metrics is not None:
                self.metrics.in_flight.inc()
            if self.tracing is not None:
                self.tracing.start_call(call)
            try:
                if self.process is not None:
                    await context.send_initial_metadata(((PROCESS_HEADER, self.process),))
                if self.draining:
                    error = FvsError(
                        ErrorCode.SHUTTING_DOWN,
                        "the server is shutting down; retry on another instance",
                    )
                    call.code, call.reason = "UNAVAILABLE", error.code.value
                    await context.abort_with_status(to_grpc_status(error))
                return await behavior(request, context)
            except BaseException:
                if call.code == "OK":  # aborted without an FVS reason, or cancelled
                    code = context.code()
                    call.code = code.name if isinstance(code, grpc.StatusCode) else "CANCELLED"
                raise
            finally:
                seconds = time.perf_counter() - start
                self.in_flight -= 1
                if self.metrics is not None:
                    self.metrics.in_flight.dec()
                    self.metrics.call_finished(call, seconds)
                if self.tracing is not None:
                    self.tracing.end_call(call)
                log.info(
                    "%s %s%s %.1f ms",
                    method,
                    call.code,
                    f" {call.reason}" if call.reason else "",
                    seconds * 1000.0,
                )
                close_call(token)

        return observed
