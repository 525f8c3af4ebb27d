"""The grpc.aio server: FVS services behind mutual TLS (or --insecure on loopback), health
(NOT_SERVING until the model is warm) and reflection."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import logging
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from fvs.access.admin import AdminService, read_ca_pem
from fvs.access.gate import Gate
from fvs.access.policy import ConsentRules
from fvs.api.digitalid import DigitalIdServicer, KycVerify, build_digital_id, id_card_lookup
from fvs.api.servicers import AdminServicer, FaceVerificationServicer, RegistryServicer, Runner
from fvs.api.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    digitalid_pb2,
    digitalid_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
    verification_pb2,
    verification_pb2_grpc,
)
from fvs.config import AccessSettings, Settings
from fvs.digitalid.service import DigitalIdService
from fvs.errors import ConfigError
from fvs.pipeline.pipeline import FacePipeline
from fvs.pipeline.score import LogisticMapping
from fvs.service import FaceService
from fvs.store.sqlite import SqliteStore

log = logging.getLogger(__name__)

SERVICE_NAMES = (
    verification_pb2.DESCRIPTOR.services_by_name["FaceVerification"].full_name,
    registry_pb2.DESCRIPTOR.services_by_name["Registry"].full_name,
    admin_pb2.DESCRIPTOR.services_by_name["Admin"].full_name,
    digitalid_pb2.DESCRIPTOR.services_by_name["DigitalId"].full_name,
)
OVERALL = ""  # the health service's name for the server as a whole

PipelineLoader = Callable[[], FacePipeline]


@dataclass
class Parts:
    """What a server serves with; built once at start."""

    service: FaceService
    gate: Gate
    admin: AdminService
    digital_id: DigitalIdService

    def close(self) -> None:
        self.gate.close()
        self.digital_id.cards.close()
        self.service.store.close()


def build_parts(settings: Settings) -> Parts:
    data_dir = settings.store.data_dir
    service = FaceService(
        SqliteStore(data_dir), LogisticMapping(settings.score.midpoint, settings.score.slope)
    )
    rules = ConsentRules(
        max_age=dt.timedelta(seconds=settings.access.consent_max_age_s),
        clock_skew=dt.timedelta(seconds=settings.access.consent_clock_skew_s),
    )
    gate = Gate.open(data_dir, rules)
    admin = AdminService(gate, read_ca_pem(settings.access.tls_dir))
    return Parts(service, gate, admin, build_digital_id(settings, service, gate))


def server_credentials(access: AccessSettings) -> grpc.ServerCredentials | None:
    """Mutual TLS from ``access.tls_dir``; None for --insecure. Raises ConfigError."""
    if access.insecure:
        return None
    if access.tls_dir is None:
        raise ConfigError(
            "no TLS configured: pass --tls-dir DIR (from `fvs pki init`) for mutual TLS, or "
            "--insecure to serve plaintext on loopback for development"
        )
    folder = Path(access.tls_dir)
    try:
        key, cert, ca = (folder / n for n in ("server.key", "server.pem", "ca.pem"))
        pair = (key.read_bytes(), cert.read_bytes())
        root = ca.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the TLS files in {folder}: {exc}") from exc
    # Clients must present a certificate from this CA (verified in the handshake).
    return grpc.ssl_server_credentials([pair], root_certificates=root, require_client_auth=True)


def check_insecure_address(address: str) -> None:
    host = address.rsplit(":", 1)[0].strip("[]")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError(f"--insecure serves only on loopback, not on {address}")


class FvsServer:
    """Binds first (health NOT_SERVING), then loads and warms the model, then SERVING."""

    def __init__(self, settings: Settings, parts: Parts) -> None:
        self.settings = settings
        self.parts = parts
        self.service = parts.service
        self.executor = ThreadPoolExecutor(
            max_workers=settings.server.workers, thread_name_prefix="fvs-worker"
        )
        self.server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", settings.server.max_message_bytes),
                ("grpc.max_send_message_length", 4 * 1024 * 1024),
            ]
        )
        runner = Runner(
            parts.service,
            parts.gate,
            self.executor,
            settings.access.insecure,
            parts.admin,
            capacity=settings.server.workers + settings.server.max_queue,
            workers=settings.server.workers,
            max_queue_wait_s=settings.server.max_queue_wait_ms / 1000.0,
        )
        self.runner = runner
        verification_pb2_grpc.add_FaceVerificationServicer_to_server(
            FaceVerificationServicer(runner, KycVerify(runner, parts.digital_id)), self.server
        )
        registry_pb2_grpc.add_RegistryServicer_to_server(
            RegistryServicer(runner, id_card_lookup(parts.digital_id)), self.server
        )
        admin_pb2_grpc.add_AdminServicer_to_server(AdminServicer(runner), self.server)
        digitalid_pb2_grpc.add_DigitalIdServicer_to_server(
            DigitalIdServicer(runner, parts.digital_id), self.server
        )
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
        credentials = server_credentials(self.settings.access)
        if credentials is None:
            check_insecure_address(address)
            log.warning(
                "serving PLAINTEXT on %s: every call acts as the development system", address
            )
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        if credentials is None:
            self.port = self.server.add_insecure_port(address)
        else:
            self.port = self.server.add_secure_port(address, credentials)
        if self.port == 0:
            raise OSError(f"cannot listen on {address}")
        await self.server.start()
        log.info(
            "listening on %s (port %d, %s); loading the model",
            address,
            self.port,
            "plaintext" if credentials is None else "mutual TLS",
        )
        return self.port

    async def load(self, loader: PipelineLoader) -> None:
        """Load and warm the model off the event loop, then report SERVING."""
        loop = asyncio.get_running_loop()

        def load_and_index() -> FacePipeline:
            pipeline = loader()
            self.service.set_pipeline(pipeline)  # builds the template index
            return pipeline

        pipeline = await loop.run_in_executor(self.executor, load_and_index)
        await self._set_health(health_pb2.HealthCheckResponse.SERVING)
        log.info("serving with model %s on %s", pipeline.info.model_id, pipeline.info.providers)

    async def stop(self, grace: float | None = None) -> None:
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.server.stop(self.settings.server.grace_s if grace is None else grace)
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.runner.audit_executor.shutdown(wait=True)

    async def _set_health(self, status: health_pb2.HealthCheckResponse.ServingStatus) -> None:
        for name in (OVERALL, *SERVICE_NAMES):
            await self.health.set(name, status)


def default_loader(settings: Settings) -> PipelineLoader:
    def load() -> FacePipeline:
        pipeline = FacePipeline.load(
            settings.model, settings.pipeline, settings.quality, settings.score
        )
        pipeline.warm_up(settings.model.warmup_runs)
        return pipeline

    return load


async def serve(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM. Raises ConfigError when it cannot serve as configured."""
    if settings.access.insecure:
        check_insecure_address(settings.server.address)
    server_credentials(settings.access)  # fail before touching any data
    parts = build_parts(settings)
    server = FvsServer(settings, parts)
    try:
        await server.start(settings.server.address)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
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
        parts.close()
