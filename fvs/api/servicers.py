"""Thin gRPC servicers: protobuf -> domain -> service (in a worker thread) -> protobuf."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TypeVar

import grpc

from fvs.api import convert
from fvs.api.errors import internal_status, to_grpc_status
from fvs.api.v1 import registry_pb2, registry_pb2_grpc, verification_pb2, verification_pb2_grpc
from fvs.errors import FvsError
from fvs.service import FaceService

log = logging.getLogger(__name__)

T = TypeVar("T")


class _Runner:
    """Runs blocking service calls in the executor and turns failures into rich statuses."""

    def __init__(self, service: FaceService, executor: Executor) -> None:
        self.service = service
        self.executor = executor

    async def run(
        self, context: grpc.aio.ServicerContext[object, object], method: str, fn: Callable[[], T]
    ) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, fn)
        except FvsError as exc:
            status = to_grpc_status(exc)
            log.info("%s refused: %s (%s)", method, exc.code.value, exc.message)
        except Exception:
            log.exception("%s failed unexpectedly", method)
            status = internal_status()
        await context.abort_with_status(status)
        raise AssertionError("abort_with_status returned")  # pragma: no cover


class FaceVerificationServicer(verification_pb2_grpc.FaceVerificationServicer):  # type: ignore[misc]
    def __init__(self, runner: _Runner) -> None:
        self._runner = runner

    async def Verify(  # noqa: N802 (gRPC method name)
        self,
        request: verification_pb2.VerifyRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> verification_pb2.VerifyResponse:
        domain = convert.verify_request(request)
        result = await self._runner.run(
            context, "Verify", lambda: self._runner.service.verify(domain)
        )
        return convert.verify_response(result)


class RegistryServicer(registry_pb2_grpc.RegistryServicer):  # type: ignore[misc]
    def __init__(self, runner: _Runner) -> None:
        self._runner = runner

    async def Enroll(  # noqa: N802
        self,
        request: registry_pb2.EnrollRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> registry_pb2.EnrollResponse:
        domain = convert.enroll_request(request)
        result = await self._runner.run(
            context, "Enroll", lambda: self._runner.service.enroll(domain)
        )
        return convert.enroll_response(result)

    async def GetCitizen(  # noqa: N802
        self,
        request: registry_pb2.GetCitizenRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> registry_pb2.Citizen:
        view = await self._runner.run(
            context, "GetCitizen", lambda: self._runner.service.get_citizen(request.citizen_id)
        )
        return convert.citizen(view)

    async def DeleteEnrollment(  # noqa: N802
        self,
        request: registry_pb2.DeleteEnrollmentRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> registry_pb2.DeleteEnrollmentResponse:
        deleted = await self._runner.run(
            context,
            "DeleteEnrollment",
            lambda: self._runner.service.delete_enrollment(request.citizen_id),
        )
        return registry_pb2.DeleteEnrollmentResponse(
            citizen_id=request.citizen_id, templates_deleted=deleted
        )


def runner(service: FaceService, executor: Executor) -> _Runner:
    return _Runner(service, executor)
