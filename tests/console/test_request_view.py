"""The request page: the ledger's timeline, each recipient's latest status, the template, and
the dead letter of a request that was not sent, with what to do about it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from tests.console.common import dead_lettered
from tests.support.console import Console, console_on, stack_ledger
from tests.support.worker_stack import Stack
from worker.ledger import LedgerKey, RecipientStatus, StoredResult

AT = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)


@pytest.fixture
def console(stack: Stack) -> Iterator[Console]:
    with console_on(stack, EMAIL_WORKER_CONSOLE_DEAD_LETTER_SEARCH_S="5") as console:
        yield console


def record_sent(
    stack: Stack,
    request_id: str,
    template: tuple[str, int, str] | None = None,
    at: dt.datetime = AT,
) -> None:
    key = LedgerKey("billing", request_id)
    with stack_ledger(stack) as ledger:
        ledger.claim(key, owner="worker-1", content_hash="0" * 64)
        result = StoredResult("sent", ("ses-1",), recipient_count=2, template=template)
        ledger.complete(key, owner="worker-1", result=result)
        ledger.record_statuses(
            key,
            [
                RecipientStatus("ses-1", "alice@example.org", "delivery", at),
                RecipientStatus(
                    "ses-1", "bob@example.org", "bounce", at, detail="Permanent/General"
                ),
            ],
        )


def test_a_sent_request_shows_each_recipients_latest_status_and_time(
    console: Console, stack: Stack
) -> None:
    record_sent(stack, "r1")
    document = console.json("/request", service="billing", id="r1")
    assert document["found"] is True
    assert document["record"]["result"]["message_ids"] == ["ses-1"]
    assert [(r["recipient"], r["status"], r["occurred_at"]) for r in document["recipients"]] == [
        ("alice@example.org", "delivery", "2026-12-01T09:30:00.000Z"),
        ("bob@example.org", "bounce", "2026-12-01T09:30:00.000Z"),
    ]
    page = console.get("/request?service=billing&id=r1").text
    assert "delivered" in page
    assert "bounced" in page
    assert "Permanent/General" in page
    assert "sent to 2 recipient(s): ses-1" in page


def test_a_template_request_names_its_template_and_version(console: Console, stack: Stack) -> None:
    record_sent(stack, "r1", template=("invoice", 3, "en"))
    document = console.json("/request", service="billing", id="r1")
    assert document["record"]["result"]["template"] == {
        "name": "invoice",
        "version": 3,
        "language": "en",
    }
    assert 'data-field="template-version">3<' in console.get("/request?service=billing&id=r1").text


def test_a_failed_request_shows_its_dead_letter_what_to_do_and_the_actions(
    console: Console, stack: Stack
) -> None:
    message_id = dead_lettered(
        stack, "r1", message="MessageRejected: not verified: billing@unverified.example"
    )
    document = console.json("/request", service="billing", id="r1")
    [item] = document["dead_letters"]["items"]
    assert item["message_id"] == message_id
    assert item["reason"].startswith("identity_not_verified: MessageRejected")
    assert "<address>" in item["reason"]
    assert "unverified.example" not in str(document)
    assert "Verify the sender" in item["advice"]
    page = console.get("/request?service=billing&id=r1").text
    assert f"/dead-letters/confirm?action=replay&amp;message_id={message_id}" in page
    assert f"/dead-letters/confirm?action=purge&amp;message_id={message_id}" in page


def test_a_request_the_ledger_does_not_know_is_not_found(console: Console) -> None:
    response = console.get("/request?service=billing&id=nobody")
    assert response.status_code == 404
    assert "Not in the request ledger" in response.text


def test_a_request_page_without_a_service_or_id_says_what_is_missing(console: Console) -> None:
    response = console.get("/request?service=billing")
    assert response.status_code == 400
    assert "give a service and a request id" in response.text
