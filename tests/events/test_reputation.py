"""The reputation breaker's arithmetic: per-service rates over a window, a minimum volume, a
pause when a rate reaches its threshold, and a fresh start after a trip. No servers: the events
are read from SES records as the reader reads them."""

from __future__ import annotations

from typing import Any

from structlog.testing import capture_logs

from tests.events.ses_records import eventbridge_body, ses_record, ses_tags
from tests.support.clock import ManualClock
from worker.events.event_records import read_event
from worker.events.reputation import ReputationBreaker, Thresholds
from worker.formats.event import EmailEvent

LIMITS = Thresholds(window_s=600, min_sends=20, bounce_percent=4.0, complaint_percent=0.5)


def event(kind: str, service: str = "billing", n: int = 0, **section: Any) -> EmailEvent:
    record = ses_record(
        kind, message_id=f"ses-{service}-{n}", tags=ses_tags(service, f"{service}-{n}"), **section
    )
    read = read_event(eventbridge_body(record))
    assert isinstance(read, EmailEvent)
    return read


def sends(count: int, service: str = "billing") -> list[EmailEvent]:
    """``count`` Send events of two recipients each."""
    return [event("Send", service, n) for n in range(count)]


class Pauses:
    def __init__(self, fail: int = 0) -> None:
        self.calls: list[tuple[str, str]] = []
        self.fail = fail

    def __call__(self, service_id: str, reason: str) -> None:
        if self.fail:
            self.fail -= 1
            raise RuntimeError("ledger unreachable")
        self.calls.append((service_id, reason))


def breaker(pauses: Pauses, clock: ManualClock | None = None, **limits: Any) -> ReputationBreaker:
    thresholds = Thresholds(**{**LIMITS.__dict__, **limits})
    return ReputationBreaker(thresholds, pauses, clock=clock or ManualClock(1_000_000.0))


def feed(target: ReputationBreaker, events: list[EmailEvent]) -> None:
    for item in events:
        target.count(item)


def test_a_hard_bounce_rate_over_the_threshold_pauses_that_service_only() -> None:
    pauses = Pauses()
    target = breaker(pauses)
    feed(target, sends(10) + sends(10, "shop"))  # 20 recipients each
    feed(target, [event("Bounce", n=n) for n in range(2)])  # 2 of 20: 10%
    assert target.check() == ["billing"]
    [(service, reason)] = pauses.calls
    assert service == "billing"
    assert reason.startswith("reputation breaker: hard bounces 10.00% (2/20)")
    assert "limits 4% and 0.5%" in reason


def test_a_complaint_rate_over_the_threshold_pauses_the_service() -> None:
    pauses = Pauses()
    target = breaker(pauses)
    feed(target, [*sends(50), event("Complaint")])  # 1 of 100: 1%
    assert target.check() == ["billing"]
    assert "complaints 1.00% (1/100)" in pauses.calls[0][1]


def test_a_small_sample_below_the_minimum_volume_never_trips() -> None:
    pauses = Pauses()
    target = breaker(pauses)
    feed(target, sends(9) + [event("Bounce", n=n) for n in range(9)])  # 18 sends, 50% bounced
    assert target.check() == []
    assert pauses.calls == []


def test_soft_bounces_do_not_count() -> None:
    pauses = Pauses()
    target = breaker(pauses)
    feed(target, sends(10) + [event("Bounce", n=n, bounceType="Transient") for n in range(5)])
    assert target.check() == []
    assert target.totals("billing").bounces == 0


def test_counts_older_than_the_window_are_forgotten() -> None:
    clock = ManualClock(1_000_000.0)
    pauses = Pauses()
    target = breaker(pauses, clock)
    feed(target, [event("Bounce", n=n) for n in range(5)])
    clock.now += LIMITS.window_s + 60
    feed(target, sends(10))
    assert target.totals("billing").bounces == 0
    assert target.check() == []


def test_after_a_trip_the_service_counts_from_nothing() -> None:
    pauses = Pauses()
    target = breaker(pauses)
    feed(target, sends(10) + [event("Bounce", n=n) for n in range(5)])
    assert target.check() == ["billing"]
    assert target.totals("billing").sends == 0
    feed(target, [event("Bounce", n=9)])  # a late bounce of the storm
    assert target.check() == []
    assert len(pauses.calls) == 1


def test_a_pause_that_fails_is_tried_again_after_the_next_batch() -> None:
    pauses = Pauses(fail=1)
    target = breaker(pauses)
    feed(target, sends(10) + [event("Bounce", n=n) for n in range(5)])
    with capture_logs() as logs:
        assert target.check() == []
    assert any(e["event"] == "reputation breaker could not pause the service" for e in logs)
    assert target.check() == ["billing"]


def test_a_trip_logs_a_warning_naming_the_service_and_its_rates() -> None:
    target = breaker(Pauses())
    feed(target, sends(10) + [event("Bounce", n=n) for n in range(5)])
    with capture_logs() as logs:
        target.check()
    [warning] = [e for e in logs if e["event"] == "reputation breaker tripped: service paused"]
    assert warning["log_level"] == "warning"
    assert (warning["service_id"], warning["by"]) == ("billing", "reputation-breaker")
    assert (warning["sends"], warning["hard_bounces"], warning["bounce_percent"]) == (20, 5, 25.0)


def test_a_minimum_volume_of_zero_turns_the_breaker_off() -> None:
    pauses = Pauses()
    target = breaker(pauses, min_sends=0)
    feed(target, sends(10) + [event("Bounce", n=n) for n in range(10)])
    assert not target.enabled
    assert target.check() == []
