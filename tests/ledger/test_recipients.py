"""Looking up what was sent to one recipient, in every ledger backend: each email's latest
status, newest first, within a time window and the retention."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.ledger.common import RETENTION_S, START
from tests.ledger.test_statuses import status
from tests.support.clock import ManualClock
from worker.ledger import Ledger, LedgerKey

ALICE = "alice@example.org"


def at(second: int) -> datetime:
    return datetime.fromtimestamp(START + second, UTC)


def test_what_was_sent_to_a_recipient_is_found_newest_first_with_its_request(
    ledger: Ledger,
) -> None:
    invoice, reminder = LedgerKey("billing", "invoice-1"), LedgerKey("shop", "order-9")
    ledger.record_statuses(invoice, [status("delivery", 5, ALICE), status("send", 5, "b@x.org")])
    ledger.record_statuses(reminder, [status("bounce", 9, ALICE, message_id="ses-2")])
    found = ledger.sent_to(ALICE, at(0))
    assert [(key, s.event_type, s.message_id) for key, s in found] == [
        (reminder, "bounce", "ses-2"),
        (invoice, "delivery", "ses-1"),
    ]


def test_only_the_latest_status_of_each_email_is_found(ledger: Ledger) -> None:
    key = LedgerKey("billing", "invoice-1")
    ledger.record_statuses(key, [status("send", 1, ALICE)])
    ledger.record_statuses(key, [status("delivery", 3, ALICE)])
    assert [s.event_type for _, s in ledger.sent_to(ALICE, at(0))] == ["delivery"]


def test_emails_before_the_window_are_left_out(ledger: Ledger) -> None:
    ledger.record_statuses(LedgerKey("billing", "old"), [status("delivery", 1, ALICE)])
    ledger.record_statuses(LedgerKey("billing", "new"), [status("delivery", 100, ALICE)])
    assert [key.request_id for key, _ in ledger.sent_to(ALICE, at(50))] == ["new"]


def test_the_lookup_stops_at_its_limit(ledger: Ledger) -> None:
    for index in range(5):
        ledger.record_statuses(
            LedgerKey("billing", f"r{index}"), [status("delivery", index, ALICE)]
        )
    found = ledger.sent_to(ALICE, at(0), limit=2)
    assert [key.request_id for key, _ in found] == ["r4", "r3"]


def test_another_recipient_finds_nothing(ledger: Ledger) -> None:
    ledger.record_statuses(LedgerKey("billing", "r1"), [status("delivery", 1, ALICE)])
    assert ledger.sent_to("bob@example.org", at(0)) == []


def test_expired_statuses_are_not_found(ledger: Ledger, clock: ManualClock) -> None:
    ledger.record_statuses(LedgerKey("billing", "r1"), [status("delivery", 1, ALICE)])
    clock.now += RETENTION_S + 1
    assert ledger.sent_to(ALICE, at(0)) == []
