"""The send-rate limiter: a token bucket of recipients, paced by the clock it is given."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import pytest

from tests.support.clock import ManualClock
from worker.processing.send_rate import SendRateLimiter


def limiter(rate_per_s: float) -> tuple[SendRateLimiter, ManualClock]:
    clock = ManualClock(100.0)
    return SendRateLimiter(rate_per_s, clock=clock), clock


def test_one_seconds_worth_of_recipients_goes_without_waiting() -> None:
    bucket, _ = limiter(10)
    assert [bucket.reserve(1, max_wait_s=60) for _ in range(10)] == [0.0] * 10


def test_beyond_the_burst_each_send_waits_for_the_ones_before_it() -> None:
    bucket, _ = limiter(10)
    for _ in range(10):
        bucket.reserve(1, max_wait_s=60)
    waits = [bucket.reserve(1, max_wait_s=60) for _ in range(4)]
    assert waits == pytest.approx([0.0, 0.1, 0.2, 0.3])


def test_a_message_larger_than_the_burst_goes_at_once_and_delays_the_next_by_its_size() -> None:
    bucket, _ = limiter(10)
    assert bucket.reserve(50, max_wait_s=60) == 0.0
    assert bucket.reserve(1, max_wait_s=60) == pytest.approx(4.0)


def test_time_pays_the_debt_back() -> None:
    bucket, clock = limiter(10)
    bucket.reserve(50, max_wait_s=60)
    clock.now += 4.0
    assert bucket.reserve(1, max_wait_s=60) == 0.0


def test_an_idle_bucket_fills_to_one_seconds_worth_only() -> None:
    bucket, clock = limiter(10)
    clock.now += 3600
    waits = [bucket.reserve(1, max_wait_s=60) for _ in range(12)]
    assert waits == pytest.approx([0.0] * 11 + [0.1])


def test_a_wait_longer_than_allowed_is_refused_and_takes_nothing() -> None:
    bucket, _ = limiter(10)
    bucket.reserve(50, max_wait_s=60)
    assert bucket.reserve(1, max_wait_s=3.0) is None
    assert bucket.reserve(1, max_wait_s=60) == pytest.approx(4.0)


def test_a_rate_below_one_per_second_still_lets_one_recipient_through_at_once() -> None:
    bucket, _ = limiter(0.5)
    assert bucket.reserve(1, max_wait_s=60) == 0.0
    assert bucket.reserve(1, max_wait_s=60) == 0.0
    assert bucket.reserve(1, max_wait_s=60) == pytest.approx(2.0)


@pytest.fixture
def frequent_thread_switches() -> Iterator[None]:
    """Switch threads as often as the interpreter can, so unguarded updates interleave."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


@pytest.mark.usefixtures("frequent_thread_switches")
def test_threads_sharing_the_bucket_lose_no_reservation() -> None:
    bucket, _ = limiter(100)
    waits: list[float] = []
    lock = threading.Lock()

    def reserve_many() -> None:
        for _ in range(1000):
            wait = bucket.reserve(1, max_wait_s=3600)
            assert wait is not None
            with lock:
                waits.append(wait)

    threads = [threading.Thread(target=reserve_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 8,000 recipients at an instant: 101 go at once, then one every 1/100 s.
    assert sorted(waits) == pytest.approx([0.0] * 101 + [n / 100 for n in range(1, 7900)])


@pytest.mark.parametrize("rate", [0, -1])
def test_a_rate_that_is_not_positive_is_refused(rate: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        SendRateLimiter(rate)


def test_a_new_rate_paces_the_sends_after_it() -> None:
    bucket, _ = limiter(10)
    for _ in range(10):
        bucket.reserve(1, max_wait_s=60)
    bucket.set_rate_per_s(2)
    waits = [bucket.reserve(1, max_wait_s=60) for _ in range(3)]
    assert waits == pytest.approx([0.0, 0.5, 1.0])


def test_a_new_rate_keeps_what_the_old_rate_refilled_until_then() -> None:
    bucket, clock = limiter(10)
    for _ in range(10):
        bucket.reserve(1, max_wait_s=60)
    clock.now += 0.5  # five recipients' worth refilled at 10 per second
    bucket.set_rate_per_s(100)
    # The five refilled recipients, then one more into debt, go at once; then 100 per second.
    assert [bucket.reserve(1, max_wait_s=60) for _ in range(6)] == [0.0] * 6
    assert bucket.reserve(1, max_wait_s=60) == pytest.approx(0.01)


@pytest.mark.parametrize("rate", [0, -1])
def test_a_new_rate_that_is_not_positive_is_refused(rate: float) -> None:
    bucket, _ = limiter(10)
    with pytest.raises(ValueError, match="positive"):
        bucket.set_rate_per_s(rate)
