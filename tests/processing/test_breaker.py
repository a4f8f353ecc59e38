"""The outage breaker on a hand-moved clock: when it trips, what it ignores, how it probes."""

from __future__ import annotations

import threading

from structlog.testing import capture_logs

from tests.support.clock import ManualClock
from worker.processing.breaker import BreakerState, OutageBreaker


def breaker(clock: ManualClock, **overrides: float) -> OutageBreaker:
    options: dict[str, float] = {
        "window_s": 30.0,
        "min_calls": 10,
        "failure_ratio": 0.8,
        "probe_interval_s": 5.0,
        **overrides,
    }
    return OutageBreaker(
        window_s=options["window_s"],
        min_calls=int(options["min_calls"]),
        failure_ratio=options["failure_ratio"],
        probe_interval_s=options["probe_interval_s"],
        clock=clock,
    )


def fail(b: OutageBreaker, *services: str, times: int = 1) -> None:
    for _ in range(times):
        for service in services:
            b.record(service, failed=True)


def answer(b: OutageBreaker, *services: str, times: int = 1) -> None:
    for _ in range(times):
        for service in services:
            b.record(service, failed=False)


def tripped(clock: ManualClock) -> OutageBreaker:
    b = breaker(clock)
    fail(b, "alpha", "beta", times=5)
    assert b.holding
    return b


def test_transient_failures_of_two_services_trip_it_and_new_work_is_held() -> None:
    clock = ManualClock()
    b = breaker(clock)
    with capture_logs() as logs:
        fail(b, "alpha", "beta", times=5)
    assert b.state is BreakerState.OPEN
    assert b.trips == 1
    assert not b.admit()
    assert any("holding new work" in r["event"] for r in logs)


def test_it_does_not_trip_before_the_minimum_number_of_calls() -> None:
    b = breaker(ManualClock())
    fail(b, "alpha", "beta", times=4)
    assert not b.holding
    assert b.admit()


def test_one_service_failing_while_another_sends_does_not_trip_it() -> None:
    b = breaker(ManualClock(), failure_ratio=0.5)
    for _ in range(20):
        fail(b, "alpha")
        answer(b, "beta")
    assert not b.holding


def test_a_worker_serving_one_service_trips_when_that_service_s_calls_all_fail() -> None:
    b = breaker(ManualClock())
    fail(b, "alpha", times=10)
    assert b.holding


def test_a_failure_share_below_the_ratio_does_not_trip_it() -> None:
    b = breaker(ManualClock())
    for _ in range(10):
        fail(b, "alpha", "beta")
        answer(b, "gamma")
    assert not b.holding  # 2 of 3 fail: below 0.8


def test_permanent_refusals_count_as_answers_so_one_denied_role_never_trips_it() -> None:
    # The pipeline reports AccessDenied, an unverified identity and the like as answers.
    b = breaker(ManualClock())
    answer(b, "alpha", times=50)
    fail(b, "beta", times=5)
    assert not b.holding


def test_failures_older_than_the_window_are_forgotten() -> None:
    clock = ManualClock()
    b = breaker(clock)
    fail(b, "alpha", "beta", times=4)
    clock.now = 31.0
    fail(b, "alpha")
    assert not b.holding  # only one failure is in the last 30 s


def test_after_the_probe_interval_exactly_one_delivery_is_admitted_as_a_probe() -> None:
    clock = ManualClock()
    b = tripped(clock)
    clock.now = 4.9
    assert not b.admit()
    assert b.seconds_until_probe() > 0
    clock.now = 5.0
    assert b.seconds_until_probe() == 0
    assert b.admit()
    assert b.state is BreakerState.HALF_OPEN
    assert not b.admit()  # one probe at a time
    assert b.holding


def test_a_probe_that_gets_an_answer_resumes_work() -> None:
    clock = ManualClock()
    b = tripped(clock)
    clock.now = 5.0
    assert b.admit()
    with capture_logs() as logs:
        answer(b, "alpha")
    assert b.state is BreakerState.CLOSED
    assert b.admit()
    assert any("taking work again" in r["event"] for r in logs)
    # The window starts afresh: the old failures do not trip it again.
    fail(b, "alpha")
    assert not b.holding


def test_a_probe_that_fails_holds_for_another_interval() -> None:
    clock = ManualClock()
    b = tripped(clock)
    clock.now = 5.0
    assert b.admit()
    fail(b, "alpha")
    assert b.state is BreakerState.OPEN
    assert not b.admit()
    clock.now = 10.0
    assert b.admit()
    assert b.trips == 1  # still the same outage


def test_a_probe_that_never_reached_the_downstream_lets_the_next_delivery_probe() -> None:
    clock = ManualClock()
    b = tripped(clock)
    clock.now = 5.0
    assert b.admit()
    b.end_probe()  # say the request was malformed: no call was made
    assert b.admit()
    assert b.state is BreakerState.HALF_OPEN


def test_ending_a_delivery_on_another_thread_does_not_end_the_probe() -> None:
    clock = ManualClock()
    b = tripped(clock)
    clock.now = 5.0
    assert b.admit()
    other = threading.Thread(target=b.end_probe)
    other.start()
    other.join()
    assert not b.admit()


def test_reports_while_open_do_not_change_it() -> None:
    clock = ManualClock()
    b = tripped(clock)
    answer(b, "alpha", times=20)  # stragglers from before the trip
    assert b.state is BreakerState.OPEN


def test_listeners_hear_every_change_of_state() -> None:
    clock = ManualClock()
    b = breaker(clock)
    changes: list[tuple[str, str]] = []
    b.add_listener(lambda old, new: changes.append((old.value, new.value)))
    fail(b, "alpha", "beta", times=5)
    clock.now = 5.0
    b.admit()
    answer(b, "beta")
    assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
