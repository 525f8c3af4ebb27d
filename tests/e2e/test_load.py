"""Admission control, deadlines and cancellation on a real server."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator

import grpc
import pytest
from grpc_status import rpc_status

from fvs.api.errors import error_info, retry_info
from fvs.api.v1 import verification_pb2, verification_pb2_grpc
from fvs.audit.log import read_records
from fvs.config import Settings
from fvs.pipeline.pipeline import FacePipeline
from tests.conftest import CITIZEN_A, photo
from tests.e2e.conftest import DevClient, ServerThread
from tests.e2e.test_grpc import consent


class SlowPipeline:
    """The real pipeline, slowed down, counting the photos that reach it."""

    def __init__(self, real: FacePipeline, delay_s: float) -> None:
        self._real = real
        self.delay_s = delay_s
        self.calls = 0
        self._lock = threading.Lock()

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._real, name)

    def extract(self, data: bytes, purpose: str = "verify"):  # type: ignore[no-untyped-def]
        with self._lock:
            self.calls += 1
        time.sleep(self.delay_s)
        return self._real.extract(data, purpose)  # type: ignore[arg-type]


@pytest.fixture
def slow_server(
    settings_factory: Callable[..., Settings],
    pipeline: FacePipeline,
    request: pytest.FixtureRequest,
) -> Iterator[tuple[ServerThread, SlowPipeline]]:
    settings = settings_factory()
    settings.server.workers = 1
    wait_ms, delay_s, max_queue = getattr(request, "param", (60_000, 0.4, 2))
    settings.server.max_queue = max_queue  # capacity 1 + max_queue
    settings.server.max_queue_wait_ms = wait_ms
    slow = SlowPipeline(pipeline, delay_s)
    running = ServerThread(settings, lambda: slow)  # type: ignore[arg-type,return-value]
    running.loaded.result(timeout=60)
    with DevClient(running.address) as c:
        c.enroll(CITIZEN_A, photo("obama.jpg"), create_if_missing=True)
    slow.calls = 0
    yield running, slow
    running.stop()


def verify_reasons(server: ServerThread) -> list[str]:
    """The reasons of the Verify records in the server's audit trail, in order."""
    return [
        r["reason"]
        for r in read_records(server.parts.gate.audit.path)
        if r["operation"] == "Verify"
    ]


def request() -> verification_pb2.VerifyRequest:
    return verification_pb2.VerifyRequest(
        citizen_id=CITIZEN_A, image=photo("obama2.jpg"), purpose="KYC", consent=consent()
    )


async def test_overload_is_refused_at_once_and_every_call_is_answered(
    slow_server: tuple[ServerThread, SlowPipeline],
) -> None:
    server, slow = slow_server
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = verification_pb2_grpc.FaceVerificationStub(channel)
        started = time.monotonic()
        calls = [stub.Verify(request(), timeout=30) for _ in range(10)]
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
    ok = [o for o in outcomes if isinstance(o, verification_pb2.VerifyResponse)]
    refused = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(ok) + len(refused) == 10  # no call lost without an answer
    assert len(ok) == 3  # the capacity: one running, two waiting
    for failure in refused:
        assert failure.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        info = error_info(rpc_status.from_call(failure))
        assert info is not None and info.reason == "OVERLOADED"
    assert all(r.similarity > 0.5 for r in ok)
    assert slow.calls == 3
    assert time.monotonic() - started < 30
    records = list(read_records(server.parts.gate.audit.path))
    assert sum(r["reason"] == "OVERLOADED" for r in records) == 7


async def test_expired_and_cancelled_calls_never_reach_the_model(
    slow_server: tuple[ServerThread, SlowPipeline],
) -> None:
    server, slow = slow_server
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = verification_pb2_grpc.FaceVerificationStub(channel)
        # Admission would refuse a 0.15 s deadline behind a 0.4 s call at once; make its
        # estimate wrong (too optimistic) so that the call is queued and expires there.
        server.server.runner.admission.service_s = 0.001
        first = stub.Verify(request(), timeout=30)  # occupies the only worker for 0.4 s
        await asyncio.sleep(0.1)
        expiring = stub.Verify(request(), timeout=0.15)  # its deadline passes in the queue
        cancelled = stub.Verify(request(), timeout=30)
        await asyncio.sleep(0.05)
        cancelled.cancel()
        assert (await first).similarity > 0.5
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await expiring
        assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        await asyncio.sleep(0.6)  # let the worker drain what was queued
    assert slow.calls == 1
    reasons = verify_reasons(server)
    assert reasons.count("DEADLINE_EXCEEDED") == 1
    assert reasons.count("CANCELLED") == 1


@pytest.mark.parametrize("slow_server", [(500, 0.3, 10)], indirect=True)
async def test_admission_bounds_the_expected_wait(
    slow_server: tuple[ServerThread, SlowPipeline],
) -> None:
    """With 0.3 s or more per call and one worker, a 0.5 s queue bound admits the four calls
    a worker is guaranteed (one running, three waiting) and refuses the rest (expected wait
    1.2 s and more), though their deadlines are far."""
    server, slow = slow_server
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = verification_pb2_grpc.FaceVerificationStub(channel)
        await stub.Verify(request(), timeout=30)  # teaches the server its service time
        outcomes = await asyncio.gather(
            *[stub.Verify(request(), timeout=30) for _ in range(6)], return_exceptions=True
        )
    ok = [o for o in outcomes if isinstance(o, verification_pb2.VerifyResponse)]
    refused = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert (len(ok), len(refused)) == (4, 2)
    assert all(f.code() is grpc.StatusCode.RESOURCE_EXHAUSTED for f in refused)
    assert "queue bound" in refused[0].details()
    assert slow.calls == 5  # the refused calls never reached the model


@pytest.mark.parametrize("slow_server", [(500, 0.3, 10)], indirect=True)
async def test_a_call_the_estimate_let_in_is_refused_when_its_wait_passed_the_bound(
    slow_server: tuple[ServerThread, SlowPipeline],
) -> None:
    """An estimate far too low (1 ms a call, really 0.3 s) admits six calls at once: the
    four a worker is guaranteed run; the two admitted on the estimate alone reach the worker
    after 1.2 s and more, past the 0.5 s bound, and are refused then (OVERLOADED, audited,
    never run) instead of being answered late."""
    server, slow = slow_server
    admission = server.server.runner.admission
    admission.service_s = 0.001
    samples: list[float | None] = []  # what each call taught the estimate
    leave = admission.leave
    admission.leave = lambda service_s=None: (samples.append(service_s), leave(service_s))[1]  # type: ignore[method-assign]
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = verification_pb2_grpc.FaceVerificationStub(channel)
        outcomes = await asyncio.gather(
            *[stub.Verify(request(), timeout=30) for _ in range(6)], return_exceptions=True
        )
    ok = [o for o in outcomes if isinstance(o, verification_pb2.VerifyResponse)]
    late = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert (len(ok), len(late)) == (4, 2)
    for failure in late:
        assert failure.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        status = rpc_status.from_call(failure)
        info = error_info(status)
        assert info is not None and info.reason == "OVERLOADED"
        assert int(info.metadata["waited_ms"]) > 500
        assert "queue bound" in failure.details()
        assert retry_info(status) is not None
    assert slow.calls == 4
    reasons = verify_reasons(server)
    assert reasons.count("OVERLOADED") == 2
    # only the calls that ran teach the estimate its service time: the two refused in the
    # worker (a few ms each) would have pulled it down and let still more calls in
    del admission.leave
    assert len(samples) == 6 and samples.count(None) == 2
    assert all(s is None or s >= 0.25 for s in samples), samples


@pytest.mark.parametrize("slow_server", [(60_000, 0.5, 2)], indirect=True)
async def test_a_call_that_cannot_meet_its_deadline_is_refused_with_retry_info(
    slow_server: tuple[ServerThread, SlowPipeline],
) -> None:
    """One worker at 0.5-0.8 s a call: behind one running call, a caller with a 0.6 s deadline
    cannot be answered in time and is refused at once with a RetryInfo delay; a caller with a
    30 s deadline waits and is served."""
    server, slow = slow_server
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = verification_pb2_grpc.FaceVerificationStub(channel)
        await stub.Verify(request(), timeout=30)  # teaches the server its service time
        running = stub.Verify(request(), timeout=30)
        await asyncio.sleep(0.05)
        began = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Verify(request(), timeout=0.6)
        assert time.monotonic() - began < 0.5  # at once, not after waiting
        patient = stub.Verify(request(), timeout=30)
        assert (await running).similarity > 0.5
        assert (await patient).similarity > 0.5
    assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    status = rpc_status.from_call(refused.value)
    info = error_info(status)
    assert info is not None and info.reason == "OVERLOADED"
    assert "deadline" in refused.value.details()
    retry = retry_info(status)
    assert retry is not None
    assert retry.retry_delay.ToMilliseconds() >= 400  # at least one service time
    assert int(info.metadata["retry_after_ms"]) == retry.retry_delay.ToMilliseconds()
    assert slow.calls == 3  # the refused call never reached the model


async def test_closed_loop_callers_are_never_refused_with_the_default_bound(
    settings_factory: Callable[..., Settings], pipeline: FacePipeline
) -> None:
    """Eight callers (4 per worker), each keeping one call in flight, on the default
    admission settings with two workers: nothing is refused, whatever the machine's speed."""
    settings = settings_factory()
    defaults = Settings().server
    settings.server.workers = 2
    settings.server.max_queue = defaults.max_queue
    settings.server.max_queue_wait_ms = defaults.max_queue_wait_ms
    running = ServerThread(settings, lambda: pipeline)
    running.loaded.result(timeout=60)
    try:
        with DevClient(running.address) as c:
            c.enroll(CITIZEN_A, photo("obama.jpg"), create_if_missing=True)
        async with grpc.aio.insecure_channel(running.address) as channel:
            stub = verification_pb2_grpc.FaceVerificationStub(channel)

            async def caller() -> int:
                for _ in range(3):
                    reply = await stub.Verify(request(), timeout=60)
                    assert reply.similarity > 0.5
                return 3

            served = await asyncio.gather(*[caller() for _ in range(8)])
        assert sum(served) == 24
        assert running.server.runner.admission.refused == 0
    finally:
        running.stop()
