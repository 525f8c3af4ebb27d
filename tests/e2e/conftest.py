"""A real grpc.aio FVS server on port 0, in its own thread and event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future

import pytest

from fvs.api.client import FvsClient
from fvs.api.server import FvsServer, PipelineLoader, build_parts
from fvs.config import Settings
from fvs.pipeline.pipeline import FacePipeline


class DevClient(FvsClient):
    """A client of an --insecure server, verifying with a permitted purpose and fresh consent."""

    def verify(
        self,
        citizen_id: str,
        image: bytes,
        purpose: str = "KYC",  # type: ignore[override]
        consent_reference: str = "CONSENT-TEST-1",
        **kwargs: object,
    ):
        return super().verify(citizen_id, image, purpose, consent_reference, **kwargs)


class ServerThread:
    """Serves --insecure (the development system) unless settings.access.tls_dir is set."""

    def __init__(self, settings: Settings, loader: PipelineLoader) -> None:
        if settings.access.tls_dir is None:
            settings.access.insecure = True
        self.settings = settings
        self.parts = build_parts(settings)
        self.service = self.parts.service
        self.loop = asyncio.new_event_loop()
        self.server: FvsServer | None = None
        self.loaded: Future[None] = Future()
        started: Future[int] = Future()

        async def main() -> None:
            self.server = FvsServer(settings, self.parts)
            started.set_result(await self.server.start("127.0.0.1:0"))
            try:
                await self.server.load(loader)
                self.loaded.set_result(None)
            except Exception as exc:
                self.loaded.set_exception(exc)

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.create_task(main())
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, name="fvs-test-server", daemon=True)
        self.thread.start()
        self.port = started.result(timeout=30)
        self.address = f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        assert self.server is not None
        asyncio.run_coroutine_threadsafe(self.server.stop(grace=1.0), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.parts.close()


@pytest.fixture(scope="session")
def server(
    settings_factory: Callable[..., Settings], pipeline: FacePipeline
) -> Iterator[ServerThread]:
    settings = settings_factory()
    settings.server.max_queue = 64  # room for the 50-call burst test
    settings.server.max_queue_wait_ms = 60_000
    running = ServerThread(settings, lambda: pipeline)
    running.loaded.result(timeout=60)
    yield running
    running.stop()
