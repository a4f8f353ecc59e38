"""The SES stand-in's quota (bench/ses_quota.py): SES's rate and 24-hour limits, as SES answers
them, on clocks the test moves."""

from __future__ import annotations

from bench.ses_quota import DAILY_QUOTA_EXCEEDED, DAY_S, RATE_EXCEEDED, Refusal, SesQuota
from tests.support.clock import ManualClock


def quota(rate: float, daily: float | None = None) -> tuple[SesQuota, ManualClock, ManualClock]:
    clock, day = ManualClock(100.0), ManualClock(1_800_000_000.0)
    return SesQuota(rate, max_24_hour_send=daily, clock=clock, day_clock=day), clock, day


def test_one_seconds_worth_of_recipients_is_accepted_and_the_next_is_throttled() -> None:
    limits, _, _ = quota(10)
    assert [limits.admit(2) for _ in range(5)] == [None] * 5
    assert limits.admit(1) == Refusal(400, "Throttling", RATE_EXCEEDED)
    assert (limits.accepted_calls, limits.throttled_calls) == (5, 1)


def test_the_bucket_refills_at_the_rate() -> None:
    limits, clock, _ = quota(10)
    limits.admit(10)
    clock.now += 0.5
    assert [limits.admit(1) for _ in range(5)] == [None] * 5
    assert limits.admit(1) == Refusal(400, "Throttling", RATE_EXCEEDED)


def test_a_new_rate_applies_from_then_on_and_getaccount_reports_it() -> None:
    limits, clock, _ = quota(10)
    limits.admit(10)
    limits.set_rate(100)
    clock.now += 0.5
    assert limits.admit(50) is None
    assert limits.send_quota()["MaxSendRate"] == 100


def test_the_daily_cap_refuses_with_ses_daily_quota_error_until_the_window_moves_on() -> None:
    limits, clock, day = quota(1000, daily=3)
    assert limits.admit(2) is None
    clock.now += 1
    assert limits.admit(2) == Refusal(400, "Throttling", DAILY_QUOTA_EXCEEDED)
    assert limits.send_quota() == {"Max24HourSend": 3, "MaxSendRate": 1000, "SentLast24Hours": 2}
    day.now += DAY_S
    assert limits.admit(2) is None


def test_getaccount_says_minus_one_for_no_daily_limit() -> None:
    limits, _, _ = quota(14)
    assert limits.send_quota()["Max24HourSend"] == -1


def test_accepted_recipients_are_counted_per_second_for_the_benchmark() -> None:
    limits, clock, _ = quota(100)
    limits.admit(3)
    clock.now += 1
    limits.admit(4)
    assert limits.accepted_by_second == {100: 3, 101: 4}
