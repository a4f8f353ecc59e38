"""The pipeline with a fake session: outcomes, retries and sender rules, no servers needed."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.support.clock import ManualClock
from worker.config.settings import Settings
from worker.processing.pipeline import Delivery, Deps, Outcome, Status, process
from worker.processing.send_rate import SendRateLimiter
from worker.sending import errors
from worker.sending.service_config import ServiceConfig
from worker.sending.ses_session import BaseSession
from worker.sending.session_cache import SessionCache
from worker.sending.testing import RecordingSession

CONFIG = ServiceConfig(
    service_id="billing",
    service_role_arn="arn:aws:iam::123456789012:role/x",
    default_from_address="Billing <billing@example.com>",
    allowed_from_domains=("example.org",),
)


def deps_for(
    session: RecordingSession, env: Mapping[str, str] | None = None, **fields: Any
) -> Deps:
    """Deps as production builds them (waits pass on ``stopping``), unless ``fields`` say."""
    settings = Settings.from_env(
        {
            "EMAIL_WORKER_ALLOWED_SERVICES": "billing",
            "EMAIL_WORKER_TENANCY": "shared",
            **(env or {}),
        }
    )
    return Deps(settings, SessionCache(lambda _: session, ttl_s=60), **fields)


def delivery_of(document: dict[str, Any] | None = None) -> Delivery:
    request = {
        "version": 1,
        "service_id": "billing",
        "to": ["alice@example.net"],
        "subject": "Hi",
        "text": "Hello",
        **(document or {}),
    }
    return Delivery(json.dumps(request).encode(), {}, message_id="m1", delivery_attempt=1)


def run(
    behaviour: Callable[[int], list[str]],
    document: dict[str, Any] | None = None,
    *,
    send_rate: SendRateLimiter | None = None,
    **env: str,
) -> tuple[Outcome, RecordingSession, list[float]]:
    session = RecordingSession(behaviour, service_config=CONFIG)
    sleeps: list[float] = []
    deps = deps_for(session, env, sleep=sleeps.append, send_rate=send_rate)
    return process(delivery_of(document), deps), session, sleeps


def sent(_: int) -> list[str]:
    return ["ses-1"]


def test_a_request_without_from_is_sent_from_the_services_default_address() -> None:
    outcome, session, _ = run(sent)
    assert outcome.status is Status.SENT
    assert outcome.message_ids == ("ses-1",)
    assert session.last_message is not None
    assert str(session.last_message["From"]) == "Billing <billing@example.com>"


def test_a_from_in_an_allowed_domain_is_accepted() -> None:
    outcome, _, _ = run(sent, {"from": "news@example.org"})
    assert outcome.status is Status.SENT


def test_a_from_outside_the_allowed_domains_is_rejected_without_sending() -> None:
    outcome, session, _ = run(sent, {"from": "news@example.com"})
    assert (outcome.status, outcome.error_code) == (Status.REJECTED, "sender_not_allowed")
    assert session.calls == 0


def test_a_transient_failure_is_retried_with_backoff_then_sent() -> None:
    def flaky(call: int) -> list[str]:
        if call < 3:
            raise errors.ThrottledError("slow down")
        return ["ses-1"]

    outcome, session, sleeps = run(flaky)
    assert outcome.status is Status.SENT
    assert outcome.retries == 2
    assert session.calls == 3
    assert len(sleeps) == 2
    assert all(0 < s <= 8 for s in sleeps)


def test_the_outcome_counts_the_ses_calls_made_and_those_ses_throttled() -> None:
    def flaky(call: int) -> list[str]:
        if call == 1:
            raise errors.ThrottledError("slow down")
        if call == 2:
            raise errors.TransientError("unavailable")
        return ["ses-1"]

    outcome, _, _ = run(flaky)
    assert outcome.status is Status.SENT
    assert (outcome.ses_calls, outcome.ses_throttled) == (3, 1)


def test_a_request_refused_before_sending_counts_no_ses_call() -> None:
    outcome, _, _ = run(sent, {"from": "news@example.com"})
    assert (outcome.ses_calls, outcome.ses_throttled) == (0, 0)


def test_retries_stop_at_the_configured_attempts_and_hand_the_delivery_back() -> None:
    def throttled(_: int) -> list[str]:
        raise errors.ThrottledError("slow down")

    outcome, session, _ = run(throttled, EMAIL_WORKER_SEND_MAX_ATTEMPTS="3")
    assert (outcome.status, outcome.error_code) == (Status.RETRY, "throttled")
    assert session.calls == 3
    assert (outcome.ses_calls, outcome.ses_throttled) == (3, 3)


def test_a_permanent_failure_is_not_retried() -> None:
    def unverified(_: int) -> list[str]:
        raise errors.IdentityNotVerifiedError("not verified")

    outcome, session, _ = run(unverified)
    assert (outcome.status, outcome.error_code) == (Status.FAILED, "identity_not_verified")
    assert session.calls == 1


def test_a_partial_send_is_reported_and_not_retried_to_avoid_duplicates() -> None:
    def partial(_: int) -> list[str]:
        raise errors.ThrottledError("slow down", sent_message_ids=("ses-1",))

    outcome, session, _ = run(partial)
    assert (outcome.status, outcome.error_code) == (Status.FAILED, "partially_sent")
    assert outcome.message_ids == ("ses-1",)
    assert session.calls == 1


def test_a_rejected_message_from_ses_is_the_requests_fault() -> None:
    def rejected(_: int) -> list[str]:
        raise errors.MessageRejectedError("virus")

    outcome, _, _ = run(rejected)
    assert (outcome.status, outcome.error_code) == (Status.REJECTED, "ses_rejected")


def test_a_service_whose_configuration_is_broken_fails_with_configuration_error() -> None:
    settings = Settings.from_env(
        {"EMAIL_WORKER_ALLOWED_SERVICES": "billing", "EMAIL_WORKER_TENANCY": "shared"}
    )

    def broken(_: str) -> BaseSession:
        raise errors.ConfigurationError("no configuration for service 'billing'")

    deps = Deps(settings, SessionCache(broken, ttl_s=60))
    data = json.dumps(
        {"version": 1, "service_id": "billing", "to": "a@example.net", "subject": "", "text": "x"}
    ).encode()
    outcome = process(Delivery(data, {}, message_id="m1"), deps)
    assert (outcome.status, outcome.error_code) == (Status.FAILED, "configuration_error")


def test_an_unexpected_bug_fails_the_request_and_logs_no_request_content() -> None:
    def bug(_: int) -> list[str]:
        raise KeyError("alice@example.net secret body")

    with capture_logs() as logs:
        outcome, _, _ = run(bug)
    assert (outcome.status, outcome.error_code) == (Status.FAILED, "internal_error")
    assert logs[0]["error"] == "KeyError"
    assert "alice" not in repr(logs)


def test_a_stop_during_an_ses_call_lets_it_finish_and_ends_its_retries_at_once() -> None:
    stopping = threading.Event()

    def throttled_as_the_stop_comes(_: int) -> list[str]:
        stopping.set()
        raise errors.ThrottledError("slow")

    session = RecordingSession(throttled_as_the_stop_comes, service_config=CONFIG)
    outcome = process(delivery_of(), deps_for(session, sleep=lambda _: None, stopping=stopping))
    assert (outcome.status, outcome.error_code) == (Status.RETRY, "throttled")
    assert session.calls == 1


@pytest.mark.parametrize("service", ["payroll", "billing2"])
def test_a_service_that_is_not_allowed_is_rejected(service: str) -> None:
    outcome, session, _ = run(sent, {"service_id": service})
    assert (outcome.status, outcome.error_code) == (Status.REJECTED, "unknown_service")
    assert session.calls == 0


def paced(rate_per_s: float) -> tuple[SendRateLimiter, list[float]]:
    """A limiter on a clock that its waits move, and the waits it made."""
    clock = ManualClock()
    waits: list[float] = []

    def wait(seconds: float, _stopping: object) -> None:
        waits.append(seconds)
        clock.now += seconds

    return SendRateLimiter(rate_per_s, clock=clock, wait=wait), waits


def test_under_a_send_rate_limit_a_send_waits_for_the_debt_before_it() -> None:
    send_rate, waits = paced(2)
    send_rate.reserve(3, max_wait_s=60)  # one recipient more than the burst
    outcome, session, sleeps = run(sent, send_rate=send_rate)
    assert outcome.status is Status.SENT
    assert waits == [0.25, 0.25]  # looked again at least every quarter second
    assert sleeps == []
    assert outcome.send_rate_wait_s == 0.5
    assert session.calls == 1


def test_the_send_rate_limit_counts_every_recipient() -> None:
    send_rate, _ = paced(1)
    outcome, _, _ = run(
        sent,
        {"to": ["a@example.net"], "cc": ["b@example.net"], "bcc": ["c@example.net"]},
        send_rate=send_rate,
    )
    assert outcome.status is Status.SENT
    assert send_rate.reserve(1, max_wait_s=60) == 2.0


def test_a_high_priority_request_is_queued_before_its_services_bulk() -> None:
    send_rate, _ = paced(1)
    send_rate.reserve(2, max_wait_s=60)  # a second of debt
    bulk = send_rate.request(1, max_wait_s=60, service_id="billing")
    assert bulk is not None
    outcome, _, _ = run(sent, {"priority": "high"}, send_rate=send_rate)
    assert outcome.status is Status.SENT
    assert not bulk.granted  # the high one went first, ahead of the bulk send


def test_a_send_rate_limit_saturated_past_the_deadline_hands_the_delivery_back_unsent() -> None:
    send_rate, _ = paced(1)
    send_rate.reserve(1000, max_wait_s=60)  # 999 s of debt, beyond the 30 s send deadline
    outcome, session, sleeps = run(sent, send_rate=send_rate)
    assert (outcome.status, outcome.error_code) == (Status.RETRY, "throttled")
    assert outcome.error_message is not None
    assert "EMAIL_WORKER_SEND_RATE_PER_S" in outcome.error_message
    assert session.calls == 0
    assert len(sleeps) == 3  # backoffs between the default 4 attempts, as for SES throttling


def test_shutdown_cuts_a_send_rate_wait_short_and_hands_the_delivery_back_unsent() -> None:
    session = RecordingSession(sent, service_config=CONFIG)
    send_rate = SendRateLimiter(1)
    send_rate.reserve(21, max_wait_s=60)  # the next send waits 20 s
    deps = deps_for(session, send_rate=send_rate)
    threading.Timer(0.2, deps.stopping.set).start()
    started = time.monotonic()
    outcome = process(delivery_of(), deps)
    assert time.monotonic() - started < 10  # not the 20 s the limit asked for
    assert (outcome.status, outcome.error_code) == (Status.RETRY, "worker_stopped")
    assert session.calls == 0


def test_a_stopping_worker_hands_a_delivery_back_unsent_before_its_ses_call() -> None:
    session = RecordingSession(sent, service_config=CONFIG)
    deps = deps_for(session, send_rate=SendRateLimiter(10))
    deps.stopping.set()  # only an SES call under way at the stop is finished
    outcome = process(delivery_of(), deps)
    assert (outcome.status, outcome.error_code) == (Status.RETRY, "worker_stopped")
    assert outcome.error_message is not None
    assert session.calls == 0


def test_a_stopping_worker_still_rejects_a_bad_request_for_good() -> None:
    session = RecordingSession(sent, service_config=CONFIG)
    deps = deps_for(session)
    deps.stopping.set()
    outcome = process(delivery_of({"to": ["not an address"]}), deps)
    assert outcome.status is Status.REJECTED
    assert session.calls == 0


def test_sends_in_several_threads_share_one_retry_policy_and_each_counts_its_own_retries() -> None:
    steady_done = threading.Event()
    failures: dict[str, int] = {}

    def behaviour(_: int) -> list[str]:
        name = threading.current_thread().name
        if name == "flaky" and failures.get(name, 0) < 2:
            failures[name] = failures.get(name, 0) + 1
            raise errors.ThrottledError("slow down")
        return [f"ses-{name}"]

    session = RecordingSession(behaviour, service_config=CONFIG)
    # The flaky send's first backoff lasts until the steady send, in another thread, is done
    # with the same retry policy: its start must not reset the flaky send's attempts.
    deps = deps_for(session, sleep=lambda _: steady_done.wait(10))
    outcomes: dict[str, Outcome] = {}

    def send(name: str) -> None:
        outcomes[name] = process(delivery_of(), deps)
        if name == "steady":
            steady_done.set()

    flaky = threading.Thread(target=send, args=("flaky",), name="flaky")
    flaky.start()
    deadline = time.monotonic() + 10
    while not failures:
        assert time.monotonic() < deadline, "the flaky send never failed"
        time.sleep(0.01)
    steady = threading.Thread(target=send, args=("steady",), name="steady")
    steady.start()
    for thread in (flaky, steady):
        thread.join(timeout=30)

    assert deps.send_retrying is deps.send_retrying
    assert (outcomes["steady"].status, outcomes["steady"].retries) == (Status.SENT, 0)
    assert (outcomes["flaky"].status, outcomes["flaky"].retries) == (Status.SENT, 2)
    assert outcomes["flaky"].message_ids == ("ses-flaky",)


def held_delivery(document: dict[str, Any] | None = None) -> Delivery:
    plain = delivery_of(document)
    return Delivery(plain.data, {}, message_id="m1", delivery_attempt=1, may_hold=True)


def test_a_pull_delivery_whose_service_holds_its_share_of_places_waits_outside_unsent() -> None:
    send_rate = SendRateLimiter(10, places=1)
    assert send_rate.enter("billing")  # another of billing's sends holds the only place
    session = RecordingSession(sent, service_config=CONFIG)
    outcome = process(held_delivery(), deps_for(session, send_rate=send_rate))
    assert (outcome.status, outcome.held_for) == (Status.HELD, "share")
    assert session.calls == 0
    send_rate.leave("billing")
    assert process(held_delivery(), deps_for(session, send_rate=send_rate)).status is Status.SENT
    assert send_rate.enter("billing")  # the send gave its place back


def test_a_push_delivery_is_not_held_outside_the_send_rate_limiter() -> None:
    send_rate = SendRateLimiter(10, places=1)
    assert send_rate.enter("billing")
    outcome, session, _ = run(sent, send_rate=send_rate)
    assert outcome.status is Status.SENT
    assert session.calls == 1
