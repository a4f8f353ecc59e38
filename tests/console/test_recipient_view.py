"""The recipient page: what was sent to one address in the last days, each email's latest
status, found by the ledger's index; the address is posted, never in a URL or the log."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.support.console import Console, console_on, stack_ledger
from tests.support.worker_stack import Stack
from worker.ledger import LedgerKey, RecipientStatus

ALICE = "alice@example.org"


@pytest.fixture
def console(stack: Stack) -> Iterator[Console]:
    with console_on(stack) as console:
        yield console


def sent(stack: Stack, request_id: str, event_type: str, days_ago: float) -> None:
    at = dt.datetime.now(dt.UTC) - dt.timedelta(days=days_ago)
    with stack_ledger(stack) as ledger:
        status = RecipientStatus(f"ses-{request_id}", ALICE, event_type, at, detail=None)
        ledger.record_statuses(LedgerKey("billing", request_id), [status])


def look_up(console: Console, address: str, days: str = "7", json_twin: bool = False) -> Any:
    form = {"csrf": console.csrf_token(), "address": address, "days": days}
    path = "/recipient?format=json" if json_twin else "/recipient"
    return console.client.post(path, data=form)


def test_a_recipients_emails_of_the_last_days_are_listed_newest_first(
    console: Console, stack: Stack
) -> None:
    sent(stack, "r-old", "delivery", days_ago=10)
    sent(stack, "r-1", "delivery", days_ago=2)
    sent(stack, "r-2", "bounce", days_ago=1)
    response = look_up(console, ALICE, json_twin=True)
    document = response.json()
    assert [(e["request_id"], e["status"]) for e in document["emails"]] == [
        ("r-2", "bounce"),
        ("r-1", "delivery"),
    ]
    page = look_up(console, ALICE).text
    assert "bounced" in page
    assert "delivered" in page
    assert "/request?service=billing&amp;id=r-1" in page


def test_the_lookup_needs_the_csrf_token(console: Console) -> None:
    console.csrf_token()
    response = console.client.post("/recipient", data={"address": ALICE})
    assert response.status_code == 403


def test_something_that_is_no_address_is_refused_with_a_message(console: Console) -> None:
    response = look_up(console, "not-an-address")
    assert response.status_code == 400
    assert "give an email address" in response.text


def test_the_address_stays_out_of_the_log(console: Console, stack: Stack) -> None:
    sent(stack, "r-1", "delivery", days_ago=1)
    with capture_logs() as logs:
        look_up(console, ALICE)
    assert ALICE not in json.dumps(logs, default=str)
