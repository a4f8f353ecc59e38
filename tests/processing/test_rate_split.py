"""Splitting an account's rate between instances, lending what one leaves unused, and the
load each instance measures for its heartbeat."""

from __future__ import annotations

import pytest

from tests.support.clock import ManualClock
from worker.ledger import Heartbeat
from worker.processing.rate_split import (
    FLOOR,
    LoadMeter,
    claim_per_s,
    share_of,
    split_per_s,
)
from worker.processing.send_rate import SendRateLimiter

pytestmark = pytest.mark.unit


def beat(instance: str, sent_per_s: float = 0.0, *, limited: bool) -> Heartbeat:
    return Heartbeat("g", instance, 0.0, 15.0, sent_per_s=sent_per_s, limited=limited)


def test_instances_that_all_want_more_get_equal_shares() -> None:
    assert split_per_s(200, {"a": None, "b": None, "c": None, "d": None}) == dict.fromkeys(
        "abcd", 50
    )


def test_a_claim_below_the_level_is_met_and_the_rest_is_shared_by_the_others() -> None:
    assert split_per_s(200, {"a": 20, "b": None, "c": None}) == {"a": 20, "b": 90, "c": 90}


def test_claims_above_the_level_get_the_level() -> None:
    shares = split_per_s(300, {"a": 10, "b": 500, "c": None})
    assert shares == {"a": 10, "b": 145, "c": 145}


def test_claims_that_leave_rate_over_share_it_equally() -> None:
    shares = split_per_s(100, {"a": 10, "b": 30})
    assert shares == {"a": 40, "b": 60}


@pytest.mark.parametrize(
    "claims",
    [
        {"a": 1.0, "b": 2.0, "c": None},
        {"a": 90.0, "b": 90.0, "c": 90.0},
        {"a": None},
        {"a": 0.5, "b": 300.0, "c": 7.0, "d": None, "e": None},
    ],
)
def test_the_shares_always_add_up_to_the_rate(claims: dict[str, float | None]) -> None:
    assert sum(split_per_s(250, claims).values()) == pytest.approx(250)


def test_nobody_to_share_with_gets_nothing() -> None:
    assert split_per_s(200, {}) == {}


def test_a_limited_instance_claims_all_it_can_get() -> None:
    assert claim_per_s(beat("a", 30, limited=True), 50) is None


def test_an_instance_that_sends_without_waiting_claims_an_equal_share() -> None:
    assert claim_per_s(beat("a", 30, limited=False), 50) == 50


def test_an_idle_instance_claims_a_floor_of_an_equal_share() -> None:
    assert claim_per_s(beat("a", 0, limited=False), 50) == pytest.approx(FLOOR * 50)


def test_an_instance_without_a_heartbeat_yet_takes_an_equal_share() -> None:
    beats = [beat("a", limited=True), beat("b", limited=False)]
    assert share_of("new", 200, beats) == 100


def test_an_instance_s_share_comes_from_the_split_of_every_live_heartbeat() -> None:
    beats = [beat("a", limited=True), beat("b", 0, limited=False)]
    assert share_of("a", 200, beats) == pytest.approx(200 - FLOOR * 100)


def test_the_first_measure_is_a_quiet_instance_s() -> None:
    meter = LoadMeter(SendRateLimiter(10, clock=ManualClock()), ManualClock())
    assert meter.measure() == (0.0, False)


def test_the_load_is_the_recipients_let_through_per_second_since_the_last_measure() -> None:
    clock = ManualClock()
    limiter = SendRateLimiter(100, clock=clock)
    meter = LoadMeter(limiter, clock)
    meter.measure()
    for _ in range(3):
        limiter.request(10, max_wait_s=60)
    clock.now += 2
    assert meter.measure() == (15.0, False)


def test_a_send_that_had_to_wait_marks_the_instance_limited() -> None:
    clock = ManualClock()
    limiter = SendRateLimiter(10, clock=clock)
    meter = LoadMeter(limiter, clock)
    meter.measure()
    limiter.request(11, max_wait_s=60)  # into debt
    waiting = limiter.request(1, max_wait_s=60)
    assert waiting is not None
    assert not waiting.granted
    clock.now += 1
    assert meter.measure() == (11.0, True)
    clock.now += 1
    assert meter.measure() == (0.0, False)  # nothing asked since
