"""The batching of refusal audit records (fvs/api/refusals.py), with a gate that records the
batches it is given (the real gate and trails: tests/integration/test_audit_trail.py and the
overload tests in tests/e2e/test_load.py)."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from fvs.access.gate import CallFacts
from fvs.access.model import Caller, Operation
from fvs.api.refusals import MAX_BATCH, RefusalAudit
from fvs.errors import ErrorCode, FvsError
from fvs.observability.context import current_call, note_agency, open_call

CALLER = Caller(insecure_dev=True, peer="test")
OVERLOADED = FvsError(ErrorCode.OVERLOADED, "busy")


class BatchGate:
    """Builds a record per refusal and keeps each batch; the first flush waits for ``go``."""

    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.go = threading.Event()
        self.fail = fail

    def refusal(self, caller: Caller, facts: CallFacts, error: FvsError) -> dict[str, Any]:
        note_agency("BANK-A")  # runs in the refused call's own context
        return {"citizen": facts.citizen_id, "reason": error.code.value}

    def record_all(self, records: list[dict[str, Any]]) -> None:
        if not self.batches:
            self.go.wait(10)
        self.batches.append(records)
        if self.fail:
            raise FvsError(ErrorCode.AUDIT_UNAVAILABLE, "disk gone")


def facts(i: int) -> CallFacts:
    return CallFacts(Operation.VERIFY, f"{i:013d}")


async def _storm(gate: BatchGate, n: int) -> list[BaseException | None]:
    with ThreadPoolExecutor(max_workers=1) as executor:
        refusals = RefusalAudit(gate, executor)  # type: ignore[arg-type]

        async def one(i: int) -> None:
            await refusals.record(CALLER, facts(i), OVERLOADED)

        tasks = [asyncio.ensure_future(one(i)) for i in range(n)]
        await asyncio.sleep(0.05)  # all queued behind the first flush
        gate.go.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert refusals.batches == len(gate.batches)
        assert refusals.recorded == (0 if gate.fail else n)
        return list(results)


def test_refusals_arriving_during_a_flush_share_the_next_one() -> None:
    gate = BatchGate()
    results = asyncio.run(_storm(gate, 40))
    assert results == [None] * 40
    assert [len(b) for b in gate.batches] == [1, 39]  # a lone refusal at once, then the rest
    recorded = [r["citizen"] for batch in gate.batches for r in batch]
    assert recorded == [f"{i:013d}" for i in range(40)]  # in arrival order


def test_a_storm_is_flushed_in_batches_of_at_most_max_batch() -> None:
    gate = BatchGate()
    n = MAX_BATCH * 2 + 5
    assert asyncio.run(_storm(gate, n)) == [None] * n
    assert [len(b) for b in gate.batches] == [1, MAX_BATCH, MAX_BATCH, 4]


def test_a_failed_flush_fails_every_refusal_in_it_with_audit_unavailable() -> None:
    results = asyncio.run(_storm(BatchGate(fail=True), 5))
    assert all(isinstance(r, FvsError) for r in results)
    assert {r.code for r in results if isinstance(r, FvsError)} == {ErrorCode.AUDIT_UNAVAILABLE}
    assert len({id(r) for r in results}) == 5  # one exception object per call


def test_a_caller_that_goes_away_is_still_recorded_and_the_others_answered() -> None:
    async def run() -> tuple[BatchGate, list[BaseException | None]]:
        gate = BatchGate()
        with ThreadPoolExecutor(max_workers=1) as executor:
            refusals = RefusalAudit(gate, executor)  # type: ignore[arg-type]
            tasks = [
                asyncio.ensure_future(refusals.record(CALLER, facts(i), OVERLOADED))
                for i in range(3)
            ]
            await asyncio.sleep(0.05)
            tasks[1].cancel()  # waiting for the second flush
            await asyncio.sleep(0)
            gate.go.set()
            results = await asyncio.gather(*tasks, return_exceptions=True)
        return gate, list(results)

    gate, results = asyncio.run(run())
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], asyncio.CancelledError)
    assert [r["citizen"] for b in gate.batches for r in b] == [f"{i:013d}" for i in range(3)]


def test_each_record_is_made_in_its_calls_context() -> None:
    """The record is built with the refused call's context (its log fields and metrics)."""

    async def run() -> str:
        gate = BatchGate()
        gate.go.set()
        with ThreadPoolExecutor(max_workers=1) as executor:
            refusals = RefusalAudit(gate, executor)  # type: ignore[arg-type]
            call, _token = open_call("Verify")
            await refusals.record(CALLER, facts(1), OVERLOADED)
            assert current_call() is call
            return call.agency

    assert asyncio.run(run()) == "BANK-A"


@pytest.mark.parametrize("n", [1, 3])
def test_refusals_one_at_a_time_are_each_flushed_at_once(n: int) -> None:
    async def run() -> list[int]:
        gate = BatchGate()
        gate.go.set()
        with ThreadPoolExecutor(max_workers=1) as executor:
            refusals = RefusalAudit(gate, executor)  # type: ignore[arg-type]
            for i in range(n):
                await refusals.record(CALLER, facts(i), OVERLOADED)
        return [len(b) for b in gate.batches]

    assert asyncio.run(run()) == [1] * n
