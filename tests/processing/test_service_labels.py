"""Which service ids may become a label or a counter's key: vouched for by the settings or by
an admission to send, never only by a request's body."""

from __future__ import annotations

from worker.processing.delivery import Outcome, Status
from worker.processing.service_labels import vouched_service

ALLOWED = frozenset({"billing"})


def test_an_allowed_service_is_vouched_for_even_when_its_request_was_refused() -> None:
    outcome = Outcome(Status.REJECTED, request_id="r", service_id="billing")
    assert vouched_service(outcome, ALLOWED) == "billing"


def test_a_refused_request_of_a_service_not_allowed_here_names_no_service() -> None:
    outcome = Outcome(Status.REJECTED, request_id="r", service_id="made-up")
    assert vouched_service(outcome, ALLOWED) is None


def test_without_the_allowed_services_a_refused_request_names_no_service() -> None:
    outcome = Outcome(Status.REJECTED, request_id="r", service_id="billing")
    assert vouched_service(outcome) is None


def test_a_delivery_that_called_ses_vouches_for_its_service() -> None:
    outcome = Outcome(Status.SENT, request_id="r", service_id="billing", ses_calls=1)
    assert vouched_service(outcome) == "billing"


def test_a_delivery_that_waited_for_the_send_rate_vouches_for_its_service() -> None:
    outcome = Outcome(Status.RETRY, request_id="r", service_id="billing", send_rate_wait_s=0.2)
    assert vouched_service(outcome) == "billing"


def test_an_outcome_without_a_service_names_none() -> None:
    outcome = Outcome(Status.REJECTED, request_id="r", service_id=None, ses_calls=1)
    assert vouched_service(outcome, ALLOWED) is None
