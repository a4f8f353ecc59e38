"""Recipients' statuses in every ledger backend: kept per message and recipient, only ever
moving forward, whatever order SES's events arrive in."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.ledger.common import RETENTION_S, START
from tests.support.clock import ManualClock
from worker.ledger import Ledger, LedgerKey, RecipientStatus

KEY = LedgerKey("billing", "invoice-2027-0042")


def status(
    event_type: str, second: int, recipient: str = "a@example.org", **fields: object
) -> RecipientStatus:
    return RecipientStatus(
        message_id=str(fields.pop("message_id", "ses-1")),
        recipient=recipient,
        event_type=event_type,
        occurred_at=datetime.fromtimestamp(START + second, UTC),
        **fields,  # type: ignore[arg-type]
    )


def test_recorded_statuses_are_read_back_oldest_first(ledger: Ledger) -> None:
    sent = status("send", 1)
    bounced = status("bounce", 5, "b@example.org", detail="Permanent/General", batch=1)
    ledger.record_statuses(KEY, [bounced, sent])

    assert ledger.statuses(KEY) == [sent, bounced]


def test_a_late_delay_does_not_overwrite_a_delivery(ledger: Ledger) -> None:
    delivered = status("delivery", 10)
    ledger.record_statuses(KEY, [delivered])
    ledger.record_statuses(KEY, [status("delivery_delay", 5)])
    ledger.record_statuses(KEY, [status("send", 1)])

    assert ledger.statuses(KEY) == [delivered]


def test_a_complaint_after_a_delivery_replaces_it(ledger: Ledger) -> None:
    complained = status("complaint", 60, detail="abuse")
    ledger.record_statuses(KEY, [status("delivery", 10)])
    ledger.record_statuses(KEY, [complained])

    assert ledger.statuses(KEY) == [complained]


def test_a_later_event_of_the_same_rank_replaces_an_earlier_one(ledger: Ledger) -> None:
    second_delay = status("delivery_delay", 300, detail="MailboxFull")
    ledger.record_statuses(
        KEY, [status("delivery_delay", 100, detail="TransientCommunicationFailure")]
    )
    ledger.record_statuses(KEY, [second_delay])
    ledger.record_statuses(KEY, [status("delivery_delay", 200)])

    assert ledger.statuses(KEY) == [second_delay]


def test_the_same_event_recorded_twice_is_kept_once(ledger: Ledger) -> None:
    delivered = status("delivery", 10)
    ledger.record_statuses(KEY, [delivered])
    ledger.record_statuses(KEY, [delivered])

    assert ledger.statuses(KEY) == [delivered]


def test_each_message_and_recipient_has_its_own_status(ledger: Ledger) -> None:
    statuses = [
        status("delivery", 3, "a@example.org"),
        status("bounce", 4, "b@example.org", detail="Transient/MailboxFull"),
        status("delivery", 5, "a@example.org", message_id="ses-2", batch=1),
    ]
    ledger.record_statuses(KEY, statuses)

    assert ledger.statuses(KEY) == statuses
    assert ledger.statuses(LedgerKey("billing", "another-request")) == []


def test_statuses_are_kept_without_a_claim_record(ledger: Ledger) -> None:
    ledger.record_statuses(KEY, [status("send", 1)])

    assert ledger.get(KEY) is None
    assert [s.event_type for s in ledger.statuses(KEY)] == ["send"]


def test_statuses_expire_after_the_retention(ledger: Ledger, clock: ManualClock) -> None:
    ledger.record_statuses(KEY, [status("delivery", 1)])
    clock.now += RETENTION_S + 1

    assert ledger.statuses(KEY) == []
