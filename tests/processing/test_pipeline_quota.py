"""The pipeline under the quota pacer: SES's throttling heard, sends counted, and requests held
at the 24-hour cap, never failed or dead-lettered."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from tests.processing.test_pipeline import CONFIG, delivery_of, deps_for, sent
from tests.support.clock import ManualClock
from worker.formats.result import ErrorCode
from worker.processing.decisions import decide
from worker.processing.pipeline import Deps, Status, process
from worker.processing.quota_pacer import DECREASE, PacerTerms, QuotaPacer
from worker.processing.send_rate import SendRateLimiter
from worker.sending import errors
from worker.sending.quota import QuotaGroup, SendQuota
from worker.sending.testing import RecordingSession

GROUP = QuotaGroup("123456789012", "eu-west-2")


def paced(
    session: RecordingSession, quota: SendQuota, clock: ManualClock
) -> tuple[Deps, QuotaPacer]:
    def advance(seconds: float, _stopping: object) -> None:
        clock.now += seconds  # the limiter's own waits pass on the test's clock

    limiter = SendRateLimiter(1, clock=clock, wait=advance)

    def sources() -> Mapping[QuotaGroup, Callable[[], SendQuota]]:
        return {GROUP: lambda: quota}

    pacer = QuotaPacer(
        limiter, sources, ledger=None, instance="a", terms=PacerTerms(fraction=1), clock=clock
    )
    pacer.tick()
    sleeps: list[float] = []
    return deps_for(session, sleep=sleeps.append, send_rate=limiter, quota=pacer), pacer


def ses_says(text: str) -> Callable[[int], list[str]]:
    def throttled(call: int) -> list[str]:
        if call == 1:
            raise errors.ThrottledError(f"SendEmail failed: Throttling: {text}", provider_code="x")
        return ["ses-2"]

    return throttled


def test_a_request_over_the_daily_cap_is_held_unsent_and_neither_failed_nor_dead_lettered() -> None:
    session = RecordingSession(sent, service_config=CONFIG)
    deps, _ = paced(session, SendQuota(14, 200, 200), ManualClock())

    outcome = process(delivery_of(), deps)

    assert (outcome.status, outcome.error_code) == (Status.HELD, ErrorCode.THROTTLED)
    assert session.calls == 0
    decision = decide(outcome, delivery_attempt=5, max_delivery_attempts=5, can_hold=True)
    assert (decision.hold, decision.dead_letter, decision.publish_result) == (True, False, False)


def test_each_sent_recipient_counts_towards_the_daily_cap() -> None:
    session = RecordingSession(sent, service_config=CONFIG)
    deps, pacer = paced(session, SendQuota(14, 200, 197), ManualClock())

    first = process(delivery_of({"to": ["a@example.net", "b@example.net"]}), deps)
    second = process(delivery_of({"to": ["c@example.net"]}), deps)
    third = process(delivery_of(), deps)

    assert [first.status, second.status, third.status] == [Status.SENT, Status.SENT, Status.HELD]
    assert pacer.daily_cap_reached()


def test_ses_throttling_the_send_rate_cuts_the_instances_rate_and_the_retry_sends() -> None:
    session = RecordingSession(ses_says("Maximum sending rate exceeded."), service_config=CONFIG)
    deps, pacer = paced(session, SendQuota(100, None, 0), ManualClock())

    outcome = process(delivery_of(), deps)

    assert outcome.status is Status.SENT
    assert pacer.rate_per_s == 100 * DECREASE


def test_ses_saying_the_daily_quota_is_exceeded_holds_the_request_instead_of_failing_it() -> None:
    session = RecordingSession(ses_says("Daily message quota exceeded."), service_config=CONFIG)
    deps, pacer = paced(session, SendQuota(100, 10_000, 10), ManualClock())

    outcome = process(delivery_of(), deps)

    assert outcome.status is Status.HELD
    assert session.calls == 1  # no retry while the cap holds
    assert pacer.rate_per_s == 100  # the rate was not the trouble
