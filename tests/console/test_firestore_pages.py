"""The console's ledger pages over the Firestore ledger (the emulator): a request's page, a
recipient's lookup and the services page read the same there as in SQLite."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.console import Console, console_on
from tests.support.pubsub_emulator import unique_name
from tests.support.worker_stack import Stack
from worker.ledger import FirestoreLedger, LedgerKey, Pause, RecipientStatus, StoredResult
from worker.ledger.send_counts import hour_of
from worker.ledger.service_count_stores import service_counts_of

ALICE = "alice@example.org"


@pytest.fixture
def console(stack: Stack, firestore_env: Any) -> Iterator[Console]:
    ledger = FirestoreLedger(
        collection=unique_name("console-ledger"), claim_lease_s=60, retention_s=86400 * 8
    )
    key = LedgerKey("billing", "order-7")
    ledger.claim(key, owner="worker-1", content_hash="0" * 64)
    ledger.complete(
        key, owner="worker-1", result=StoredResult("sent", ("ses-1",), recipient_count=1)
    )
    at = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)
    ledger.record_statuses(key, [RecipientStatus("ses-1", ALICE, "delivery", at)])
    with console_on(stack, ledger=ledger, EMAIL_WORKER_LEDGER="firestore") as console:
        yield console


def test_a_request_page_reads_the_firestore_ledger(console: Console) -> None:
    document = console.json("/request", service="billing", id="order-7")
    assert document["record"]["result"]["message_ids"] == ["ses-1"]
    assert [(r["recipient"], r["status"]) for r in document["recipients"]] == [(ALICE, "delivery")]


def test_a_recipient_lookup_finds_its_request_in_the_firestore_ledger(console: Console) -> None:
    form = {"csrf": console.csrf_token(), "address": ALICE, "days": "2"}
    document = console.client.post("/recipient?format=json", data=form).json()
    assert [(e["service_id"], e["request_id"], e["status"]) for e in document["emails"]] == [
        ("billing", "order-7", "delivery")
    ]


def test_the_services_page_reads_the_counters_and_pauses_of_the_firestore_ledger(
    console: Console,
) -> None:
    ledger = console.sources.ledger
    hour = hour_of(time.time())
    service_counts_of(ledger).add({("shop", hour): {"sent": 2, "recipients": 4, "bounced": 1}})
    ledger.add_pause(Pause("shop", dt.datetime.now(dt.UTC), by="alice", reason="incident 42"))
    [_, shop] = console.json("/services")["services"]
    assert (shop["last_24_hours"]["sent"], shop["last_24_hours"]["bounce_rate_percent"]) == (
        2,
        25.0,
    )
    assert (shop["pause"]["by"], shop["pause"]["reason"]) == ("alice", "incident 42")
