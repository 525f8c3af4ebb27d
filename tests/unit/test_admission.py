"""The admission arithmetic, without a server or a clock."""

from __future__ import annotations

import math

import pytest

from fvs.admission import HEADROOM, Admission


def test_a_free_worker_always_admits_even_with_a_short_deadline() -> None:
    a = Admission(capacity=10, workers=2, max_wait_s=0.0)
    a.service_s = 1.0
    assert a.decide(time_remaining_s=0.01).admitted
    assert a.decide(time_remaining_s=0.01).admitted
    assert a.pending == 2


def test_the_expected_wait_counts_the_calls_ahead_per_worker() -> None:
    a = Admission(capacity=100, workers=2)
    a.service_s = 0.030
    assert a.expected_wait_s() == 0  # two workers free
    a.pending = 2
    assert a.expected_wait_s() == pytest.approx(0.015)  # one call ahead, two workers
    a.pending = 9
    assert a.expected_wait_s() == pytest.approx(8 * 0.030 / 2)


def test_closed_loop_callers_up_to_the_bound_are_never_refused() -> None:
    """16 callers that each keep one call in flight, 2 workers, 30 ms per call: the last
    expects (15 - 2 + 1) x 30 / 2 = 210 ms of waiting, inside a 500 ms bound."""
    a = Admission(capacity=66, workers=2, max_wait_s=0.5)
    a.service_s = 0.030
    decisions = [a.decide(time_remaining_s=None) for _ in range(16)]
    assert all(d.admitted for d in decisions)
    assert decisions[-1].expected_wait_s == pytest.approx(14 * 0.030 / 2)


def test_a_call_that_cannot_meet_its_deadline_is_refused_with_a_retry_delay() -> None:
    a = Admission(capacity=100, workers=1, max_wait_s=10.0)
    a.service_s = 0.4
    assert a.decide(None).admitted  # running
    assert a.decide(None).admitted  # waits 0.4 s
    late = a.decide(time_remaining_s=0.5)  # would wait 0.8 s and run 0.4 s
    assert not late.admitted
    assert "deadline" in late.why
    assert late.retry_after_s >= 0.4
    ok = a.decide(time_remaining_s=1.3)  # 0.8 + 0.4 fits
    assert ok.admitted
    assert a.refused == 1


def test_the_queue_bound_caps_every_call_and_sets_the_retry_delay() -> None:
    """Beyond the guaranteed calls the expected answer time (wait + service), with one
    service time of headroom, must fit the bound: 1 worker, 0.1 s a call, 1 s bound, 4
    guaranteed."""
    assert HEADROOM == 1.0
    a = Admission(capacity=100, workers=1, max_wait_s=1.0)
    a.service_s = 0.1
    decisions = [a.decide(time_remaining_s=60) for _ in range(9)]  # waits 0 .. 0.8 s
    assert all(d.admitted for d in decisions)
    assert [d.bounded for d in decisions] == [False] * 4 + [True] * 5
    refused = a.decide(time_remaining_s=60)  # would wait 0.9 s: 0.9 + 0.1 + 0.1 > 1.0
    assert not refused.admitted
    assert "queue bound" in refused.why
    assert refused.retry_after_s == pytest.approx(0.1)  # 1.1 - 1.0, at least one service
    a.pending = 20  # waits 2 s: the delay is the time the queue needs to drain within the bound
    assert a.decide(time_remaining_s=60).retry_after_s == pytest.approx(2.0 + 0.2 - 1.0)


def test_a_bounded_call_that_waited_the_whole_bound_is_refused_when_its_turn_comes() -> None:
    a = Admission(capacity=100, workers=1, max_wait_s=1.0)
    a.service_s = 0.1
    decisions = [a.decide(None) for _ in range(6)]
    guaranteed, bounded = decisions[1], decisions[5]
    assert not guaranteed.bounded and bounded.bounded
    assert not a.expired_bound(bounded, waited_s=0.85)  # answered within the bound: it runs
    assert a.expired_bound(bounded, waited_s=0.95)  # 0.95 + 0.1 s: slower than estimated
    assert not a.expired_bound(guaranteed, waited_s=5.0)  # guaranteed calls always run
    assert a.late_retry_s() == pytest.approx(0.1)
    unbounded = Admission(capacity=100, workers=1)  # no queue bound: nothing is bounded
    assert not any(unbounded.decide(None).bounded for _ in range(20))


def test_capacity_is_a_hard_limit() -> None:
    a = Admission(capacity=3, workers=1)
    assert [a.decide(None).admitted for _ in range(4)] == [True, True, True, False]
    a.leave(0.1)
    assert a.decide(None).admitted


def test_service_time_is_a_moving_average_and_unran_calls_do_not_count() -> None:
    a = Admission(capacity=10, workers=1, max_wait_s=math.inf)
    a.decide(None)
    a.leave(0.2)
    assert a.service_s == pytest.approx(0.2)
    a.decide(None)
    a.leave(None)  # abandoned before it ran
    assert a.service_s == pytest.approx(0.2)
    a.decide(None)
    a.leave(1.2)
    assert a.service_s == pytest.approx(0.9 * 0.2 + 0.1 * 1.2)
    assert a.pending == 0


def test_four_calls_per_worker_are_admitted_however_slow_the_service() -> None:
    """A slow day (2 s a call) does not refuse a closed loop of 4 x workers callers without
    deadlines; the fifth per worker meets the queue bound."""
    a = Admission(capacity=100, workers=2, max_wait_s=0.5)
    a.service_s = 2.0
    assert all(a.decide(None).admitted for _ in range(8))
    ninth = a.decide(None)
    assert not ninth.admitted
    assert "queue bound" in ninth.why
    assert a.decide(time_remaining_s=None).admitted is False


def test_a_guaranteed_slot_still_respects_the_callers_deadline() -> None:
    a = Admission(capacity=100, workers=1, max_wait_s=0.5)
    a.service_s = 1.0
    assert a.decide(None).admitted
    assert not a.decide(time_remaining_s=1.5).admitted  # 1 s wait + 1 s service > 1.5 s
    assert a.decide(time_remaining_s=2.5).admitted
