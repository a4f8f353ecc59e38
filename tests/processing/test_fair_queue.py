"""Fair shares of the send rate between services, on a clock the test moves.

Each simulation drives the limiter as its threads would: sends queue, the clock moves in
small steps, and every step each waiting send asks whether it may go.
"""

from __future__ import annotations

from collections import Counter

import pytest

from tests.support.clock import ManualClock
from worker.processing.fair_queue import FairQueue, Places
from worker.processing.send_rate import SendRateLimiter, Ticket

STEP_S = 0.005


def backlogged(weights: dict[str, float], *, rate: float, seconds: float) -> Counter[str]:
    """Recipients granted to each service when each keeps 30 sends waiting throughout."""
    clock = ManualClock(0.0)
    bucket = SendRateLimiter(rate, clock=clock)
    waiting: list[Ticket] = []
    granted: Counter[str] = Counter()
    for _ in range(int(seconds / STEP_S)):
        for service_id, weight in weights.items():
            while sum(t.service_id == service_id for t in waiting) < 30:
                ticket = bucket.request(1, max_wait_s=3600, service_id=service_id, weight=weight)
                assert ticket is not None
                waiting.append(ticket)
        for ticket in list(waiting):
            if bucket.poll(ticket) == 0.0:
                granted[ticket.service_id] += ticket.recipients
                waiting.remove(ticket)
        clock.now += STEP_S
    return granted


def test_two_backlogged_services_weighted_3_to_1_send_3_to_1() -> None:
    granted = backlogged({"a": 3, "b": 1}, rate=100, seconds=60)
    assert granted["a"] / granted["b"] == pytest.approx(3.0, rel=0.05)
    assert granted.total() == pytest.approx(100 * 60, rel=0.03)


def test_two_backlogged_services_of_equal_weight_share_equally() -> None:
    granted = backlogged({"a": 1, "b": 1}, rate=50, seconds=40)
    assert granted["a"] / granted["b"] == pytest.approx(1.0, rel=0.05)


def test_a_trickle_beside_a_backlog_waits_little_and_the_backlog_takes_the_rest() -> None:
    # Service A keeps 30 sends waiting; service B sends 2 a second, at 14 recipients a second
    # (a new SES account's rate). In arrival order B would wait behind A's 30: over 2 s.
    clock = ManualClock(0.0)
    bucket = SendRateLimiter(14, clock=clock)
    waiting: dict[Ticket, float] = {}
    b_waits: list[float] = []
    granted: Counter[str] = Counter()
    for step in range(int(60 / STEP_S)):
        while sum(t.service_id == "a" for t in waiting) < 30:
            a = bucket.request(1, max_wait_s=3600, service_id="a")
            assert a is not None
            waiting[a] = clock.now
        if step % int(0.5 / STEP_S) == 0:
            b = bucket.request(1, max_wait_s=3600, service_id="b")
            assert b is not None
            waiting[b] = clock.now
        for ticket, since in list(waiting.items()):
            if bucket.poll(ticket) == 0.0:
                granted[ticket.service_id] += 1
                if ticket.service_id == "b":
                    b_waits.append(clock.now - since)
                del waiting[ticket]
        clock.now += STEP_S
    assert len(b_waits) >= 119
    assert max(b_waits) < 0.25
    assert granted.total() == pytest.approx(14 * 60, rel=0.03)
    assert granted["a"] >= 14 * 60 * 0.95 - granted["b"]


def test_a_high_priority_send_overtakes_its_own_services_bulk() -> None:
    queue = FairQueue()
    bulk = [queue.add("a", 1, weight=1, high=False) for _ in range(10)]
    urgent = queue.add("a", 1, weight=1, high=True)
    assert queue.head() is urgent
    assert queue.recipients_ahead(bulk[0]) == 2


def test_a_high_priority_send_does_not_overtake_another_services_turn() -> None:
    queue = FairQueue()
    other = queue.add("b", 1, weight=1, high=False)
    for _ in range(5):
        queue.add("a", 1, weight=1, high=False)
    urgent = queue.add("a", 1, weight=1, high=True)
    assert queue.pop() is other
    assert queue.pop() is urgent


def test_sending_everything_as_high_priority_gains_a_service_nothing() -> None:
    queue = FairQueue()
    order: list[str] = []
    for _ in range(20):
        queue.add("a", 1, weight=1, high=True)
        queue.add("b", 1, weight=1, high=False)
    for _ in range(20):
        order.append(queue.pop().service_id)
    assert Counter(order) == {"a": 10, "b": 10}


def test_a_lone_service_takes_every_place_but_the_spare_ones() -> None:
    places = Places(16)
    taken = sum(places.take("a", {}) for _ in range(20))
    assert taken == 16 - places.spare == 14


def test_a_newcomer_finds_a_place_and_the_busy_service_is_held_to_its_share() -> None:
    places = Places(16)
    weights = {"a": 3.0, "b": 1.0}
    while places.take("a", weights):
        pass
    assert places.held_by("a") == 14
    while places.take("b", weights):
        pass
    assert places.held_by("b") == 4  # its share of 16 at 1:3
    for _ in range(3):  # three of a's sends finish
        places.give_back("a")
    assert places.take("a", weights)  # back to 12, 3/4 of 16...
    assert not places.take("a", weights)  # ...and no more


def test_the_limiter_without_places_lets_every_send_in() -> None:
    bucket = SendRateLimiter(10)
    assert all(bucket.enter("a") for _ in range(1000))


def test_the_limiter_gives_a_place_back_when_a_send_leaves() -> None:
    bucket = SendRateLimiter(10, places=2)
    assert bucket.enter("a")
    assert not bucket.enter("a")
    bucket.leave("a")
    assert bucket.enter("a")
