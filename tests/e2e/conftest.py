"""A real grpc.aio FVS server on port 0, in its own thread and event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future

import pytest

from fvs.api.server import FvsServer, PipelineLoader, build_service
from fvs.config import Settings
from fvs.pipeline.pipeline import FacePipeline


class ServerThread:
    def __init__(self, settings: Settings, loader: PipelineLoader) -> None:
        self.settings = settings
        self.service = build_service(settings)
        self.loop = asyncio.new_event_loop()
        self.server: FvsServer | None = None
        self.loaded: Future[None] = Future()
        started: Future[int] = Future()

        async def main() -> None:
            self.server = FvsServer(settings, self.service)
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
        self.service.store.close()


@pytest.fixture(scope="session")
def server(
    settings_factory: Callable[..., Settings], pipeline: FacePipeline
) -> Iterator[ServerThread]:
    running = ServerThread(settings_factory(), lambda: pipeline)
    running.loaded.result(timeout=60)
    yield running
    running.stop()
