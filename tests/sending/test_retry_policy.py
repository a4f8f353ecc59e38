"""The one retry policy of a send: what earns another attempt, and when retrying stops."""

from __future__ import annotations

import pytest

from worker.sending import errors
from worker.sending.retry_policy import RetryPolicy, worth_retrying

POLICY = RetryPolicy(max_attempts=4, deadline_s=60.0, initial_backoff_s=0.5, max_backoff_s=4.0)


def attempts_until_raised(
    policy: RetryPolicy, error: Exception, *, give_up: bool = False
) -> tuple[int, list[float]]:
    """How many calls a failing send gets under ``policy``, and the waits between them."""
    calls: list[int] = []
    sleeps: list[float] = []

    def failing() -> None:
        calls.append(1)
        raise error

    retrying = policy.retrying(sleep=sleeps.append, give_up=(lambda: give_up))
    with pytest.raises(type(error)):
        retrying(failing)
    return len(calls), sleeps


def test_a_transient_failure_that_sent_nothing_is_worth_retrying() -> None:
    assert worth_retrying(errors.ThrottledError("slow down"))


def test_a_permanent_refusal_is_not_retried() -> None:
    assert not worth_retrying(errors.MessageRejectedError("no"))


def test_a_send_whose_answer_was_lost_is_not_retried() -> None:
    assert not worth_retrying(errors.MaybeSentError("lost"))


def test_a_partial_send_is_not_retried() -> None:
    assert not worth_retrying(errors.ThrottledError("slow down", sent_message_ids=("ses-1",)))


def test_something_other_than_an_email_error_is_not_retried() -> None:
    assert not worth_retrying(ValueError("a bug"))


def test_a_transient_failure_is_retried_up_to_the_attempts_with_capped_backoff() -> None:
    calls, sleeps = attempts_until_raised(POLICY, errors.ThrottledError("slow down"))
    assert calls == 4
    assert len(sleeps) == 3
    assert all(0.5 <= sleep <= 4.0 for sleep in sleeps)


def test_giving_up_stops_retrying_after_the_first_attempt() -> None:
    calls, sleeps = attempts_until_raised(POLICY, errors.ThrottledError("x"), give_up=True)
    assert (calls, sleeps) == (1, [])


def test_no_attempt_starts_after_the_deadline() -> None:
    no_time = RetryPolicy(max_attempts=4, deadline_s=0.0, initial_backoff_s=0.5, max_backoff_s=4.0)
    calls, _ = attempts_until_raised(no_time, errors.ThrottledError("slow down"))
    assert calls == 1
