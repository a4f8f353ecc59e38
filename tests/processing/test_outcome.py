"""Outcomes of a request, as the pipeline's steps build them (worker.processing.delivery)."""

from __future__ import annotations

import json

from worker.formats.request import EmailRequest, parse_request
from worker.formats.result import ErrorCode
from worker.processing.delivery import LedgerEvent, Outcome, Status


def request() -> EmailRequest:
    document = {
        "version": 1,
        "service_id": "billing",
        "request_id": "invoice-7",
        "to": ["alice@example.net", "bob@example.net"],
        "subject": "Hi",
        "text": "Hello",
    }
    return parse_request(
        json.dumps(document).encode(), pubsub_message_id="m1", default_service_id=None
    )


def test_an_outcome_for_a_request_carries_its_id_service_and_recipient_count() -> None:
    outcome = Outcome.for_request(request(), Status.SENT, message_ids=("ses-1",), retries=1)
    assert (outcome.request_id, outcome.service_id, outcome.recipient_count) == (
        "invoice-7",
        "billing",
        2,
    )
    assert (outcome.status, outcome.message_ids, outcome.retries) == (Status.SENT, ("ses-1",), 1)


def test_a_recipient_count_given_replaces_the_requests() -> None:
    assert Outcome.for_request(request(), Status.SENT, recipient_count=5).recipient_count == 5


def test_a_refusal_takes_the_documented_status_of_its_error_code() -> None:
    rejected = Outcome.refused(request(), ErrorCode.SENDER_NOT_ALLOWED, "not that domain")
    unknown = Outcome.refused(
        request(), ErrorCode.OUTCOME_UNKNOWN, "may have been sent", ledger=LedgerEvent.TAKEOVER
    )
    assert (rejected.status, rejected.error_code) == (Status.REJECTED, "sender_not_allowed")
    assert (unknown.status, unknown.ledger) == (Status.FAILED, LedgerEvent.TAKEOVER)


def test_a_request_handed_back_by_a_stopping_worker_is_retried_later() -> None:
    outcome = Outcome.handed_back(request(), retries=2)
    assert (outcome.status, outcome.error_code, outcome.retries) == (
        Status.RETRY,
        ErrorCode.WORKER_STOPPED,
        2,
    )
