"""The grpc.aio server: FVS services, health (NOT_SERVING until the model is warm) and
reflection."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from fvs.api.servicers import FaceVerificationServicer, RegistryServicer, runner
from fvs.api.v1 import registry_pb2, registry_pb2_grpc, verification_pb2, verification_pb2_grpc
from fvs.config import Settings
from fvs.pipeline.pipeline import FacePipeline
from fvs.pipeline.score import ScoreMapping
from fvs.service import FaceService
from fvs.store.sqlite import SqliteStore

log = logging.getLogger(__name__)

SERVICE_NAMES = (
    verification_pb2.DESCRIPTOR.services_by_name["FaceVerification"].full_name,
    registry_pb2.DESCRIPTOR.services_by_name["Registry"].full_name,
)
OVERALL = ""  # the health service's name for the server as a whole

PipelineLoader = Callable[[], FacePipeline]


class FvsServer:
    """Binds first (health NOT_SERVING), then loads and warms the model, then SERVING."""

    def __init__(self, settings: Settings, service: FaceService) -> None:
        self.settings = settings
        self.service = service
        self.executor = ThreadPoolExecutor(
            max_workers=settings.server.workers, thread_name_prefix="fvs-worker"
        )
        limit = settings.server.max_message_bytes
        self.server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", 4 * 1024 * 1024),
            ]
        )
        run = runner(service, self.executor)
        verification_pb2_grpc.add_FaceVerificationServicer_to_server(
            FaceVerificationServicer(run), self.server
        )
        registry_pb2_grpc.add_RegistryServicer_to_server(RegistryServicer(run), self.server)
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (
                *SERVICE_NAMES,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            self.server,
        )
        self.port = 0

    async def start(self, address: str) -> int:
        """Listen on ``address`` (HOST:PORT, port 0 picks one); returns the bound port."""
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        self.port = self.server.add_insecure_port(address)
        if self.port == 0:
            raise OSError(f"cannot listen on {address}")
        await self.server.start()
        log.info("listening on %s (port %d); loading the model", address, self.port)
        return self.port

    async def load(self, loader: PipelineLoader) -> None:
        """Load and warm the model off the event loop, then report SERVING."""
        loop = asyncio.get_running_loop()
        pipeline = await loop.run_in_executor(self.executor, loader)
        self.service.set_pipeline(pipeline)
        await self._set_health(health_pb2.HealthCheckResponse.SERVING)
        log.info("serving with model %s on %s", pipeline.info.model_id, pipeline.info.providers)

    async def stop(self, grace: float | None = None) -> None:
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.server.stop(self.settings.server.grace_s if grace is None else grace)
        self.executor.shutdown(wait=True, cancel_futures=True)

    async def _set_health(self, status: health_pb2.HealthCheckResponse.ServingStatus) -> None:
        for name in (OVERALL, *SERVICE_NAMES):
            await self.health.set(name, status)


def default_loader(settings: Settings) -> PipelineLoader:
    def load() -> FacePipeline:
        pipeline = FacePipeline.load(settings.model, settings.pipeline)
        pipeline.warm_up(settings.model.warmup_runs)
        return pipeline

    return load


def build_service(settings: Settings) -> FaceService:
    store = SqliteStore(settings.store.data_dir)
    return FaceService(store, ScoreMapping(settings.score.midpoint, settings.score.slope))


async def serve(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM. Raises ConfigError when the model cannot be loaded."""
    service = build_service(settings)
    server = FvsServer(settings, service)
    await server.start(settings.server.address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        loader = asyncio.ensure_future(server.load(default_loader(settings)))
        waiter = asyncio.ensure_future(stop.wait())
        await asyncio.wait({loader, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if loader.done():
            loader.result()  # re-raises a load failure
            await waiter
        else:
            loader.cancel()
    finally:
        log.info("shutting down")
        await server.stop()
        service.store.close()
