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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from fvs.access.admin import AdminService, read_ca_pem
from fvs.access.gate import KEYS_DIR, Gate
from fvs.access.policy import ConsentRules
from fvs.access.rate import SharedRateLimiter
from fvs.api import group
from fvs.api.digitalid import DigitalIdServicer, KycVerify, build_digital_id, id_card_lookup
from fvs.api.group import GroupMember
from fvs.api.guard import MessageGuard, transport_limit
from fvs.api.observe import CallObserver
from fvs.api.readiness import PROBE_CITIZEN, Probe, Readiness, probe_audit, probe_stores
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
from fvs.dedup.search import DuplicateSearch
from fvs.digitalid.service import DigitalIdService
from fvs.errors import ConfigError, ErrorCode
from fvs.intake import IntakeLimits
from fvs.observability import hooks
from fvs.observability.metrics import Metrics
from fvs.observability.tracing import Tracing
from fvs.pipeline.pipeline import FacePipeline
from fvs.pipeline.score import LogisticMapping
from fvs.pki import ca_keys_in
from fvs.receipts import ReceiptSigner, load_or_create_key
from fvs.service import FaceService
from fvs.store.duplicates import DuplicateCases
from fvs.store.factory import open_access, open_registry, open_snapshots
from fvs.store.index import TemplateIndex
from fvs.store.registry import SqlCitizenStore
from fvs.store.sync import IndexFollower, IndexSync, TemplateIndexFollower

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
    receipts: ReceiptSigner
    digital_id: DigitalIdService
    sync: IndexSync | None = None
    # Other copies of the templates to keep in step with the store (e.g. a 1:N search index).
    followers: list[IndexFollower] = field(default_factory=list)

    def load_index(self, pipeline: FacePipeline, settings: Settings) -> None:
        """Build the template index and keep it (and ``followers``) in step with the other
        processes and servers on the store: PostgreSQL by LISTEN/NOTIFY (or polling), SQLite
        by polling the change log (fvs.store.sync)."""
        store = self.service.store
        since = IndexSync.mark(store) if isinstance(store, SqlCitizenStore) else None
        self.service.set_pipeline(pipeline)
        if since is not None and self.service.index is not None:
            assert isinstance(store, SqlCitizenStore)
            service = self.service

            def swap(index: TemplateIndex) -> None:
                service.index = index
                if service.dedup is not None and service.dedup.enabled:  # it reads the rows
                    service.dedup.attach(index, pipeline.mapping or service.fallback)

            follower = TemplateIndexFollower(store, lambda: service.index, swap)
            self.sync = IndexSync(
                store,
                [follower, *self.followers],
                since,
                settings.store.sync,
                settings.store.poll_interval_s,
            )
            self.sync.start()
        snapshots = self.service.snapshots
        if snapshots is not None:  # snapshots stand where the sync has caught up
            service = self.service
            if service.dedup is not None and service.dedup.enabled:  # saved beside the rows
                snapshots.companions = service.dedup.companions
                service.dedup.on_built = snapshots.save  # a new search index: save it too
            snapshots.start(
                self.sync.caught_up if self.sync is not None else None, lambda: service.index
            )

    def close(self) -> None:
        if self.sync is not None:
            self.sync.stop()
        if self.service.snapshots is not None:
            self.service.snapshots.stop()
        self.gate.close()
        self.digital_id.cards.close()
        self.service.store.close()

    def probe(self) -> Probe:
        """Whether the audit trail and both stores answer (reads only, writes nothing)."""
        audit = probe_audit(self.gate.audit)
        if not audit.ok:
            return audit
        return probe_stores(
            lambda: self.service.store.get_citizen(PROBE_CITIZEN),
            self.gate.policy.store.conditions_version,
        )


def build_parts(settings: Settings) -> Parts:
    """The stores ``settings.store`` names (schema and template key checked: ConfigError
    otherwise), the service and the gate."""
    data_dir = settings.store.data_dir
    pool = settings.store.pool_size or settings.server.workers + 2
    registry = open_registry(settings.store, pool)
    try:
        access = open_access(settings.store, pool)
    except BaseException:
        registry.close()
        raise
    service = FaceService(
        registry,
        LogisticMapping(settings.score.midpoint, settings.score.slope),
        settings.store.template_encoding,
        DuplicateSearch(settings.dedup, DuplicateCases(registry.db)),
        open_snapshots(settings.store, registry),
    )
    rules = ConsentRules(
        max_age=dt.timedelta(seconds=settings.access.consent_max_age_s),
        clock_skew=dt.timedelta(seconds=settings.access.consent_clock_skew_s),
    )
    try:
        gate = Gate.open(data_dir, rules, settings.store.location(), access)
    except BaseException:
        registry.close()
        access.close()
        raise
    tls_dir = None if settings.access.tls_dir is None else Path(settings.access.tls_dir)
    receipts = ReceiptSigner(load_or_create_key(tls_dir, data_dir / KEYS_DIR), gate.citizen_key)
    admin = AdminService(gate, read_ca_pem(tls_dir))
    return Parts(service, gate, admin, receipts, build_digital_id(settings, service, gate))


def server_credentials(access: AccessSettings) -> grpc.ServerCredentials | None:
    """Mutual TLS from ``access.tls_dir``; None for --insecure. Raises ConfigError."""
    if access.insecure and access.tls_dir is not None:
        raise ConfigError(
            "--insecure and --tls-dir exclude each other: --insecure serves plaintext, so the "
            "TLS folder would be silently ignored; pass only one of them"
        )
    if access.insecure:
        return None
    if access.tls_dir is None:
        raise ConfigError(
            "no TLS configured: pass --tls-dir DIR (from `fvs pki init`) for mutual TLS, or "
            "--insecure to serve plaintext on loopback for development"
        )
    folder = Path(access.tls_dir)
    held = ca_keys_in(folder)
    if held:
        raise ConfigError(
            f"{folder} holds the CA's private key ({', '.join(p.name for p in held)}): a "
            "serving host must never hold it, since whoever takes the host could then issue "
            "certificates for any system. Serve from the folder `fvs pki init` made for the "
            "server (DIR/server) and keep DIR/ca offline"
        )
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
    """Binds first (health NOT_SERVING), then loads and warms the model, then SERVING.
    ``member``: this server is one process of an ``fvs serve --processes N`` group
    (fvs.api.group): health says SERVING only while every process does."""

    def __init__(self, settings: Settings, parts: Parts, member: GroupMember | None = None) -> None:
        self.settings = settings
        self.parts = parts
        self.member = member
        self.service = parts.service
        self.executor = ThreadPoolExecutor(
            max_workers=settings.server.workers, thread_name_prefix="fvs-worker"
        )
        ops = settings.observability
        self.metrics = Metrics(ops.max_agency_labels) if ops.metrics_address else None
        self.tracing = (
            Tracing.otlp(ops.otlp_endpoint, ops.service_name) if ops.otlp_endpoint else None
        )
        self.observer = CallObserver(self.metrics, self.tracing)
        if member is not None:  # which process answered (for operators and tests)
            self.observer.process = str(member.index)
            parts.gate.policy.limiter = SharedRateLimiter(member.rate_file)
        self.metrics_port = 0
        self.guard = MessageGuard(settings.server.max_message_bytes)
        self.server = grpc.aio.server(
            interceptors=[self.observer, self.guard],
            options=[
                # FVS refuses (and audits) messages over max_message_bytes itself; gRPC's
                # core refuses only what is past twice that (fvs.api.guard).
                (
                    "grpc.max_receive_message_length",
                    transport_limit(settings.server.max_message_bytes),
                ),
                ("grpc.max_send_message_length", 4 * 1024 * 1024),
                # gRPC sets SO_REUSEPORT by default, so a second server on a taken address
                # would start and split the calls with the first: a taken address is an error
                # unless port sharing is asked for (--reuse-port, multi-process serving).
                ("grpc.so_reuseport", 1 if settings.server.reuse_port else 0),
            ],
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
            limits=IntakeLimits(max_image_bytes=settings.pipeline.max_image_bytes),
            receipts=parts.receipts,
        )
        self.runner = runner
        self.guard.refuse = runner.refuse_message
        self.readiness = Readiness(parts.probe)
        runner.on_failure = self._call_failed
        self._monitor: asyncio.Task[None] | None = None
        self._group_monitor: asyncio.Task[None] | None = None
        self._group_serving = False
        self._loaded = False
        self._reports: set[asyncio.Future[None]] = set()
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
        self._start_observability()
        try:
            if credentials is None:
                self.port = self.server.add_insecure_port(address)
            else:
                self.port = self.server.add_secure_port(address, credentials)
        except RuntimeError as exc:  # grpc's "Failed to bind": taken, or not ours to take
            raise OSError(
                f"cannot listen on {address}: the address is in use or not available "
                "(pass --reuse-port to share a port between FVS processes on purpose)"
            ) from exc
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
            if not self.service.ready:  # a group's process loads before it binds (preload)
                self.parts.load_index(pipeline, self.settings)  # builds the template index
            return pipeline

        pipeline = await loop.run_in_executor(self.executor, load_and_index)
        if self.metrics is not None:
            info = pipeline.info
            calibration = pipeline.mapping.id if pipeline.mapping else "provisional"
            self.metrics.set_model(info.pack, info.model_id, info.providers, calibration)
        audit_state = self.parts.gate.audit.state
        if audit_state:  # every call would fail closed: health stays NOT_SERVING
            log.error("NOT_SERVING: the audit trail cannot be extended: %s", audit_state)
        self._loaded = True
        await loop.run_in_executor(self.runner.audit_executor, self.readiness.check)
        await self._report()
        self._monitor = asyncio.ensure_future(self._watch())
        if self.member is not None:
            self._group_monitor = asyncio.ensure_future(self._watch_group())
        log.info("serving with model %s on %s", pipeline.info.model_id, pipeline.info.providers)

    def _start_observability(self) -> None:
        for sink in (self.metrics, self.tracing):
            if sink is not None:
                hooks.install(sink)
        if self.metrics is not None:
            runner, service = self.runner, self.service
            self.metrics.watch(
                lambda: runner.admission.pending,
                lambda: len(service.index) if service.index is not None else 0,
            )
            address = self.settings.observability.metrics_address or ""
            try:
                self.metrics_port = self.metrics.serve(address)
            except (OSError, ValueError) as exc:
                raise ConfigError(f"cannot serve metrics on {address}: {exc}") from exc

    def _call_failed(self, code: ErrorCode) -> None:
        """A call failed closed (audit trail or store unavailable): NOT_SERVING at once."""
        if self._loaded and self.readiness.failed(code):
            self._reports.add(report := asyncio.ensure_future(self._report()))
            report.add_done_callback(self._reports.discard)

    async def _report(self) -> None:
        serving = self._loaded and self.readiness.serving
        if self.member is not None:
            self.member.publish(group.SERVING if serving else group.NOT_SERVING)
            self._group_serving = self.member.group_serving()
            serving = serving and self._group_serving
        await self._set_health(
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )

    async def _watch(self) -> None:
        """Probe the audit trail and the stores every health_probe_s; report changes."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.settings.server.health_probe_s)
            try:
                changed = await loop.run_in_executor(
                    self.runner.audit_executor, self.readiness.check
                )
            except RuntimeError:  # the executor is shutting down
                return
            if changed:
                await self._report()

    async def _watch_group(self) -> None:
        """Follow the other processes' states (shared memory, read every 0.1 s)."""
        assert self.member is not None
        while True:
            await asyncio.sleep(0.1)
            if self.member.group_serving() != self._group_serving:
                await self._report()

    async def stop(self, grace: float | None = None, hurry: asyncio.Event | None = None) -> None:
        """Graceful shutdown: health NOT_SERVING at once; new FVS calls are answered
        UNAVAILABLE / SHUTTING_DOWN while the calls in flight finish, for at most ``grace``
        seconds (default settings.server.grace_s); then the server stops, aborting what is
        still running. ``hurry`` set (a second SIGTERM) stops at once. The workers finish the
        call they are in, pending audit records are written, and the sinks are removed."""
        grace = self.settings.server.grace_s if grace is None else grace
        for monitor in (self._monitor, self._group_monitor):
            if monitor is not None:
                monitor.cancel()
        if self.member is not None:
            self.member.publish(group.DRAINING)  # the whole group reports NOT_SERVING
        self._loaded = False
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        self.observer.draining = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        in_flight = self.observer.in_flight
        if in_flight:
            log.info("draining %d call(s) in flight (grace %.1f s)", in_flight, grace)
        while self.observer.in_flight > 0 and loop.time() < deadline:
            if hurry is not None and hurry.is_set():
                break
            await asyncio.sleep(0.01)
        if self.observer.in_flight > 0:
            log.warning("stopping with %d call(s) still in flight", self.observer.in_flight)
            await self.server.stop(None)
        else:  # the answers of the last calls may still be on their way out
            stopping = asyncio.ensure_future(self.server.stop(max(0.0, deadline - loop.time())))
            if hurry is not None:
                hurried = asyncio.ensure_future(hurry.wait())
                await asyncio.wait({stopping, hurried}, return_when=asyncio.FIRST_COMPLETED)
                hurried.cancel()
                if not stopping.done():
                    await self.server.stop(None)
            await stopping
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.runner.audit_executor.shutdown(wait=True)
        for sink in (self.metrics, self.tracing):
            if sink is not None:
                hooks.uninstall(sink)
                sink.close()

    async def _set_health(self, status: health_pb2.HealthCheckResponse.ServingStatus) -> None:
        for name in (OVERALL, *SERVICE_NAMES):
            await self.health.set(name, status)
        if self.metrics is not None:
            self.metrics.serving.set(1 if status == health_pb2.HealthCheckResponse.SERVING else 0)


async def _follow_supervisor(
    member: GroupMember, stop: asyncio.Event, hurry: asyncio.Event
) -> None:
    """A group's process: the supervisor's stop requests (shared memory, read every 0.1 s)."""
    while not hurry.is_set():
        requested = member.requested()
        if requested >= group.STOP:
            stop.set()
        if requested >= group.HURRY:
            hurry.set()
        await asyncio.sleep(0.1)


def default_loader(settings: Settings) -> PipelineLoader:
    def load() -> FacePipeline:
        pipeline = FacePipeline.load(
            settings.model,
            settings.pipeline,
            settings.quality,
            settings.score,
            settings.trt_cache_dir(),
        )
        pipeline.warm_up(settings.model.warmup_runs)
        return pipeline

    return load


async def serve(settings: Settings, member: GroupMember | None = None) -> None:
    """Run until SIGINT/SIGTERM. Raises ConfigError when it cannot serve as configured.
    ``member``: one process of a group (fvs.api.group), which loads the model and its index
    before it binds, so that no connection reaches it while it loads."""
    if settings.access.insecure:
        check_insecure_address(settings.server.address)
    server_credentials(settings.access)  # fail before touching any data
    parts = build_parts(settings)
    server = FvsServer(settings, parts, member)
    stop, hurry = asyncio.Event(), asyncio.Event()
    started = False
    follower: asyncio.Future[None] | None = None
    try:
        loop = asyncio.get_running_loop()

        def on_signal() -> None:  # the first asks for a graceful stop, a second hurries it
            if stop.is_set():
                log.warning("second stop signal: stopping at once")
                hurry.set()
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        load = default_loader(settings)
        waiter = asyncio.ensure_future(stop.wait())
        if member is not None:
            follower = asyncio.ensure_future(_follow_supervisor(member, stop, hurry))

            def preload() -> FacePipeline:
                pipeline = load()
                parts.load_index(pipeline, settings)
                return pipeline

            preloading = loop.run_in_executor(server.executor, preload)
            racing: set[asyncio.Future[Any]] = {preloading, waiter}
            await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
            if not preloading.done():
                return  # stopped while loading: nothing bound, nothing served
            loaded = preloading.result()

            def load() -> FacePipeline:
                return loaded

        started = True  # a failed start still stops what it started (metrics listener)
        await server.start(settings.server.address)
        loader = asyncio.ensure_future(server.load(load))
        await asyncio.wait({loader, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if loader.done():
            loader.result()  # re-raises a load failure
            await waiter
        else:
            loader.cancel()
    finally:
        log.info("shutting down")
        if follower is not None:
            follower.cancel()
        if started:
            await server.stop(hurry=hurry)
        else:
            server.executor.shutdown(wait=False, cancel_futures=True)
        parts.close()
        log.info("stopped; audit trail closed")
