"""The send-rate limiter: a token bucket of recipients, paced by the clock it is given, whose
waiting sends take turns fairly between services."""

from __future__ import annotations

import threading
import time

import pytest

from tests.support.clock import ManualClock
from worker.processing.send_rate import SendRateLimiter, Ticket


def limiter(rate_per_s: float, places: int | None = None) -> tuple[SendRateLimiter, ManualClock]:
    clock = ManualClock(100.0)

    def advance(seconds: float, _stopping: object) -> None:
        clock.now += seconds

    return SendRateLimiter(rate_per_s, clock=clock, places=places, wait=advance), clock


def queued(bucket: SendRateLimiter, count: int, **how: object) -> list[Ticket]:
    tickets = [bucket.request(1, max_wait_s=3600, **how) for _ in range(count)]  # type: ignore[arg-type]
    assert all(ticket is not None for ticket in tickets)
    return [ticket for ticket in tickets if ticket is not None]


def test_one_seconds_worth_of_recipients_goes_without_waiting() -> None:
    bucket, _ = limiter(10)
    assert [bucket.reserve(1, max_wait_s=60) for _ in range(10)] == [0.0] * 10


def test_beyond_the_burst_each_send_is_told_to_wait_for_the_ones_before_it() -> None:
    bucket, _ = limiter(10)
    queued(bucket, 10)
    waits = [bucket.poll(ticket) for ticket in queued(bucket, 4)]
    assert waits == pytest.approx([0.0, 0.1, 0.2, 0.3])


def test_a_send_waits_until_the_debt_before_it_is_paid() -> None:
    bucket, clock = limiter(10)
    assert bucket.reserve(50, max_wait_s=60) == 0.0
    assert bucket.reserve(1, max_wait_s=60) == pytest.approx(4.0)
    assert clock.now == pytest.approx(104.0)


def test_time_pays_the_debt_back() -> None:
    bucket, clock = limiter(10)
    bucket.reserve(50, max_wait_s=60)
    clock.now += 4.0
    assert bucket.reserve(1, max_wait_s=60) == 0.0


def test_an_idle_bucket_fills_to_one_seconds_worth_only() -> None:
    bucket, clock = limiter(10)
    clock.now += 3600
    waits = [bucket.poll(ticket) for ticket in queued(bucket, 12)]
    assert waits == pytest.approx([0.0] * 11 + [0.1])


def test_a_wait_longer_than_allowed_is_refused_and_takes_nothing() -> None:
    bucket, _ = limiter(10)
    bucket.reserve(50, max_wait_s=60)
    assert bucket.reserve(1, max_wait_s=3.0) is None
    assert bucket.reserve(1, max_wait_s=60) == pytest.approx(4.0)


def test_a_send_pushed_back_beyond_its_longest_wait_gives_up_its_place() -> None:
    bucket, _ = limiter(1)
    bucket.reserve(2, max_wait_s=60)  # one second of debt
    bulk = bucket.request(1, max_wait_s=1.5, service_id="a")
    assert bulk is not None
    for _ in range(3):  # another service's sends arrive first in the fair order
        bucket.request(1, max_wait_s=60, service_id="b", weight=100)
    assert bucket.poll(bulk) > 1.5
    bucket.withdraw(bulk)
    assert not bulk.granted


def test_a_rate_below_one_per_second_still_lets_one_recipient_through_at_once() -> None:
    bucket, _ = limiter(0.5)
    assert bucket.reserve(1, max_wait_s=60) == 0.0
    assert bucket.reserve(1, max_wait_s=60) == 0.0
    assert bucket.reserve(1, max_wait_s=60) == pytest.approx(2.0)


def test_a_new_rate_applies_from_now_on() -> None:
    bucket, clock = limiter(10)
    bucket.reserve(30, max_wait_s=60)  # 20 recipients of debt: 2 s at 10/s
    clock.now += 1.0  # 10 paid back at the old rate
    bucket.set_rate_per_s(100)
    assert bucket.rate_per_s == 100
    assert bucket.reserve(1, max_wait_s=60) == pytest.approx(0.1)


def test_a_stop_ends_the_wait_and_gives_up_the_turn() -> None:
    stopping = threading.Event()
    bucket = SendRateLimiter(1, wait=lambda _s, _e: stopping.set())
    bucket.reserve(5, max_wait_s=60)
    waited = bucket.reserve(1, max_wait_s=60, stopping=stopping)
    assert waited is not None
    assert waited < 1.0
    assert bucket.poll(queued(bucket, 1)[0]) > 0  # nothing was taken for the stopped send


def test_threads_sharing_the_bucket_each_get_their_turn_at_the_rate() -> None:
    bucket = SendRateLimiter(400)
    waits: list[float | None] = []
    lock = threading.Lock()

    def reserve_many(service_id: str) -> None:
        for _ in range(100):
            wait = bucket.reserve(1, max_wait_s=60, service_id=service_id)
            with lock:
                waits.append(wait)

    threads = [threading.Thread(target=reserve_many, args=(f"s{n % 3}",)) for n in range(8)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    # 800 recipients: 401 at once, then one every 1/400 s: about one second.
    assert len(waits) == 800
    assert None not in waits
    assert 0.9 < elapsed < 5


@pytest.mark.parametrize("rate", [0, -1])
def test_a_rate_that_is_not_positive_is_refused(rate: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        SendRateLimiter(rate)


def test_a_new_rate_paces_the_sends_after_it() -> None:
    bucket, _ = limiter(10)
    for _ in range(10):
        bucket.reserve(1, max_wait_s=60)
    bucket.set_rate_per_s(2)
    # Each send waits its own turn (the clock advances by the waits): one at 2 per second.
    waits = [bucket.reserve(1, max_wait_s=60) for _ in range(3)]
    assert waits == pytest.approx([0.0, 0.5, 0.5])


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


def test_a_send_that_may_not_wait_counts_what_time_has_refilled_since_the_last_send() -> None:
    clock = ManualClock()
    limiter = SendRateLimiter(10, clock=clock)
    limiter.request(11, max_wait_s=0.0)  # one recipient into debt
    clock.now += 1  # paid back, and nine more

    ticket = limiter.request(1, max_wait_s=0.0)
    assert ticket is not None
    assert ticket.granted
