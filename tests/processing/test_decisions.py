"""The ack / nack / dead-letter / publish rules for each outcome."""

from __future__ import annotations

import pytest

from worker.processing.decisions import Decision, decide, is_last_attempt
from worker.processing.pipeline import Outcome, Status


def outcome(status: Status) -> Outcome:
    return Outcome(status, request_id="r1", service_id="svc")


def test_a_sent_request_publishes_its_result_and_is_acked() -> None:
    assert decide(outcome(Status.SENT), delivery_attempt=1, max_delivery_attempts=5) == Decision(
        publish_result=True, dead_letter=False, ack=True
    )


@pytest.mark.parametrize("status", [Status.REJECTED, Status.FAILED])
def test_a_rejected_or_failed_request_is_published_dead_lettered_and_acked(status: Status) -> None:
    assert decide(outcome(status), delivery_attempt=1, max_delivery_attempts=5) == Decision(
        publish_result=True, dead_letter=True, ack=True
    )


def test_a_transient_failure_before_the_last_attempt_is_only_nacked() -> None:
    assert decide(outcome(Status.RETRY), delivery_attempt=4, max_delivery_attempts=5) == Decision(
        publish_result=False, dead_letter=False, ack=False
    )


def test_a_transient_failure_on_the_last_attempt_publishes_a_result_then_nacks() -> None:
    assert decide(outcome(Status.RETRY), delivery_attempt=5, max_delivery_attempts=5) == Decision(
        publish_result=True, dead_letter=False, ack=False
    )


def test_without_a_dead_letter_policy_no_attempt_is_the_last() -> None:
    assert not is_last_attempt(None, 5)
    assert not is_last_attempt(7, None)


@pytest.mark.parametrize(
    ("status", "attempt", "expected"),
    [
        (Status.REJECTED, 1, Decision(publish_result=False, dead_letter=True, ack=True)),
        (Status.FAILED, 1, Decision(publish_result=False, dead_letter=True, ack=True)),
        (Status.RETRY, 5, Decision(publish_result=False, dead_letter=False, ack=False)),
    ],
)
def test_an_outcome_whose_service_is_unconfirmed_publishes_no_result(
    status: Status, attempt: int, expected: Decision
) -> None:
    unconfirmed = Outcome(status, request_id="r1", service_id="svc", service_confirmed=False)
    assert decide(unconfirmed, delivery_attempt=attempt, max_delivery_attempts=5) == expected


@pytest.mark.parametrize("status", [Status.SCHEDULED, Status.CANCELLED, Status.CANCEL_REFUSED])
def test_a_scheduled_or_cancelled_request_or_a_refused_cancel_is_published_and_acked(
    status: Status,
) -> None:
    decision = decide(Outcome(status, "r1"), delivery_attempt=1, max_delivery_attempts=5)

    assert decision == Decision(publish_result=True, dead_letter=False, ack=True)


@pytest.mark.parametrize("attempt", [1, 5])
def test_a_held_request_deferred_into_the_ledger_is_acked_without_a_result(attempt: int) -> None:
    deferred = Outcome(Status.HELD, "r1", "svc", held_for="daily_cap", deferred_until=1e9)

    decision = decide(deferred, delivery_attempt=attempt, max_delivery_attempts=5)

    assert decision == Decision(publish_result=False, dead_letter=False, ack=True)


def test_a_held_push_that_was_not_deferred_is_still_nacked() -> None:
    held = Outcome(Status.HELD, "r1", "svc", held_for="daily_cap")

    decision = decide(held, delivery_attempt=1, max_delivery_attempts=5)

    assert decision == Decision(publish_result=False, dead_letter=False, ack=False)
