"""The pipeline under the request ledger: one send per request, whatever comes twice.

A real SQLite ledger (the embedded backend) on a clock the test moves; the session is
``worker.sending.testing.RecordingSession``. The same behaviour on Firestore, Pub/Sub and moto is in
``test_exactly_once``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.processing.test_pipeline import CONFIG, delivery_of, deps_for, sent
from tests.support.clock import ManualClock
from tests.support.ports import free_port
from worker.formats.pubsub import REPLAY_COUNT_ATTRIBUTE
from worker.ledger import (
    FirestoreLedger,
    LedgerKey,
    RecipientStatus,
    SqliteLedger,
    content_hash,
)
from worker.processing.decisions import decide
from worker.processing.pipeline import Delivery, Deps, LedgerEvent, Status, process
from worker.sending import errors
from worker.sending.testing import RecordingSession

CLAIM_S = 90.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_800_000_000.0)


@pytest.fixture
def ledger(tmp_path: Path, clock: ManualClock) -> Iterator[SqliteLedger]:
    with SqliteLedger(tmp_path / "ledger.db", claim_lease_s=CLAIM_S, clock=clock) as opened:
        yield opened


def deps(session: RecordingSession, ledger: Any, **env: str) -> Deps:
    return deps_for(session, env, sleep=lambda _: None, ledger=ledger)


def again(delivery: Delivery, message_id: str = "m2", attempt: int = 1) -> Delivery:
    return replace(delivery, message_id=message_id, delivery_attempt=attempt)


REQUEST = {"request_id": "invoice-42"}


def test_a_redelivered_request_is_not_sent_again_and_its_stored_result_is_replayed(
    ledger: SqliteLedger,
) -> None:
    session = RecordingSession(lambda n: [f"ses-{n}"], service_config=CONFIG)
    first = process(delivery_of(REQUEST), deps(session, ledger))
    second = process(again(delivery_of(REQUEST), "m1", 2), deps(session, ledger))
    assert session.calls == 1
    assert first.ledger is LedgerEvent.CLAIMED
    assert second.ledger is LedgerEvent.REPLAYED
    assert (second.status, second.message_ids) == (Status.SENT, ("ses-1",))
    assert second.request_id == first.request_id == "invoice-42"


def test_the_same_request_published_again_is_not_sent_again(ledger: SqliteLedger) -> None:
    session = RecordingSession(sent, service_config=CONFIG)
    process(delivery_of(REQUEST), deps(session, ledger))
    replayed = process(again(delivery_of(REQUEST), "another-message"), deps(session, ledger))
    assert session.calls == 1
    assert replayed.status is Status.SENT
    assert replayed.message_ids == ("ses-1",)


def test_a_request_id_reused_for_other_content_is_rejected_and_not_sent(
    ledger: SqliteLedger,
) -> None:
    session = RecordingSession(sent, service_config=CONFIG)
    process(delivery_of(REQUEST), deps(session, ledger))
    other = delivery_of({**REQUEST, "subject": "Another invoice"})
    outcome = process(again(other), deps(session, ledger))
    assert session.calls == 1
    assert (outcome.status, outcome.error_code) == (Status.REJECTED, "request_id_conflict")
    assert outcome.ledger is LedgerEvent.CONFLICT
    # The first request's record is untouched: it still replays.
    assert process(again(delivery_of(REQUEST), "m3"), deps(session, ledger)).message_ids == (
        "ses-1",
    )


def test_without_a_request_id_two_publishes_are_two_requests(ledger: SqliteLedger) -> None:
    session = RecordingSession(sent, service_config=CONFIG)
    process(delivery_of(), deps(session, ledger))
    process(again(delivery_of()), deps(session, ledger))
    assert session.calls == 2


def test_a_transient_failure_releases_the_claim_so_the_redelivery_sends(
    ledger: SqliteLedger,
) -> None:
    def throttled_then_sent(n: int) -> list[str]:
        if n <= 4:
            raise errors.ThrottledError("slow down")
        return ["ses-5"]

    session = RecordingSession(throttled_then_sent, service_config=CONFIG)
    first = process(delivery_of(REQUEST), deps(session, ledger, EMAIL_WORKER_SEND_MAX_ATTEMPTS="4"))
    assert first.status is Status.RETRY
    second = process(again(delivery_of(REQUEST), "m1", 2), deps(session, ledger))
    assert (second.status, second.message_ids) == (Status.SENT, ("ses-5",))
    assert second.ledger is LedgerEvent.CLAIMED


def test_a_permanent_failure_is_stored_and_a_redelivery_replays_it_without_sending(
    ledger: SqliteLedger,
) -> None:
    def rejected(_: int) -> list[str]:
        raise errors.MessageRejectedError("content rule")

    session = RecordingSession(rejected, service_config=CONFIG)
    first = process(delivery_of(REQUEST), deps(session, ledger))
    second = process(again(delivery_of(REQUEST), "m1", 2), deps(session, ledger))
    assert session.calls == 1
    assert first.status is Status.REJECTED
    assert (second.status, second.error_code) == (first.status, first.error_code)
    assert second.ledger is LedgerEvent.REPLAYED


def test_a_delivery_that_finds_a_live_claim_is_in_progress_and_sends_nothing(
    ledger: SqliteLedger,
) -> None:
    key = LedgerKey("billing", "invoice-42")
    data = delivery_of(REQUEST).data
    ledger.claim(key, owner="another-delivery", content_hash=content_hash(data))
    session = RecordingSession(sent, service_config=CONFIG)
    outcome = process(delivery_of(REQUEST), deps(session, ledger))
    assert session.calls == 0
    assert (outcome.status, outcome.ledger) == (Status.IN_PROGRESS, LedgerEvent.BUSY)
    decision = decide(outcome, delivery_attempt=1, max_delivery_attempts=5)
    assert (decision.publish_result, decision.dead_letter, decision.ack) == (False, False, False)


def test_an_expired_claim_is_taken_over_and_sent_by_default(
    ledger: SqliteLedger, clock: ManualClock
) -> None:
    data = delivery_of(REQUEST).data
    ledger.claim(
        LedgerKey("billing", "invoice-42"), owner="crashed", content_hash=content_hash(data)
    )
    clock.now += CLAIM_S + 1
    session = RecordingSession(sent, service_config=CONFIG)
    with capture_logs() as logs:
        outcome = process(delivery_of(REQUEST), deps(session, ledger))
    assert session.calls == 1
    assert (outcome.status, outcome.ledger) == (Status.SENT, LedgerEvent.TAKEOVER)
    assert any("took over" in entry["event"] for entry in logs)
    record = ledger.get(LedgerKey("billing", "invoice-42"))
    assert record is not None
    assert (record.state, record.takeovers) == ("done", 1)


def test_with_takeover_set_to_fail_an_expired_claim_fails_as_outcome_unknown(
    ledger: SqliteLedger, clock: ManualClock
) -> None:
    data = delivery_of(REQUEST).data
    ledger.claim(
        LedgerKey("billing", "invoice-42"), owner="crashed", content_hash=content_hash(data)
    )
    clock.now += CLAIM_S + 1
    session = RecordingSession(sent, service_config=CONFIG)
    outcome = process(
        delivery_of(REQUEST), deps(session, ledger, EMAIL_WORKER_LEDGER_TAKEOVER="fail")
    )
    assert session.calls == 0
    assert (outcome.status, outcome.error_code) == (Status.FAILED, "outcome_unknown")
    # Stored like any final result: a later delivery replays the failure.
    replayed = process(again(delivery_of(REQUEST)), deps(session, ledger))
    assert (replayed.ledger, replayed.error_code) == (LedgerEvent.REPLAYED, "outcome_unknown")


def test_an_unreachable_ledger_sends_nothing_and_hands_the_delivery_back() -> None:
    # A real Firestore client against a closed loopback port.
    previous = os.environ.get("FIRESTORE_EMULATOR_HOST")
    os.environ["FIRESTORE_EMULATOR_HOST"] = f"127.0.0.1:{free_port()}"
    try:
        unreachable = FirestoreLedger(project="p", claim_lease_s=CLAIM_S, timeout_s=1.0)
    finally:
        if previous is None:
            del os.environ["FIRESTORE_EMULATOR_HOST"]
        else:
            os.environ["FIRESTORE_EMULATOR_HOST"] = previous
    session = RecordingSession(sent, service_config=CONFIG)
    outcome = process(delivery_of(REQUEST), deps(session, unreachable))
    unreachable.close()
    assert session.calls == 0
    assert (outcome.status, outcome.error_code) == (Status.RETRY, "ledger_unavailable")
    assert outcome.ledger is LedgerEvent.UNAVAILABLE


def test_a_replayed_result_is_published_and_acked_but_not_dead_lettered_again(
    ledger: SqliteLedger,
) -> None:
    def rejected(_: int) -> list[str]:
        raise errors.MessageRejectedError("content rule")

    session = RecordingSession(rejected, service_config=CONFIG)
    process(delivery_of(REQUEST), deps(session, ledger))
    replayed = process(again(delivery_of(REQUEST)), deps(session, ledger))
    decision = decide(replayed, delivery_attempt=1, max_delivery_attempts=5)
    assert (decision.publish_result, decision.dead_letter, decision.ack) == (True, False, True)


def test_the_request_body_is_hashed_not_stored(ledger: SqliteLedger) -> None:
    session = RecordingSession(sent, service_config=CONFIG)
    process(delivery_of({**REQUEST, "text": "secret body"}), deps(session, ledger))
    record = ledger.get(LedgerKey("billing", "invoice-42"))
    assert record is not None
    assert "secret body" not in json.dumps(record.__dict__, default=str)


def replay_of(delivery: Delivery) -> Delivery:
    """As ``email-worker dlq replay`` publishes it again: a new message, a replay count."""
    return replace(delivery, message_id="replayed", attributes={REPLAY_COUNT_ATTRIBUTE: "1"})


def test_an_operators_replay_of_a_request_that_failed_unsent_sends_it(
    ledger: SqliteLedger,
) -> None:
    def unverified_then_sent(n: int) -> list[str]:
        if n == 1:
            raise errors.IdentityNotVerifiedError("not verified")
        return ["ses-2"]

    session = RecordingSession(unverified_then_sent, service_config=CONFIG)
    first = process(delivery_of(REQUEST), deps(session, ledger))
    replayed = process(replay_of(delivery_of(REQUEST)), deps(session, ledger))
    assert first.error_code == "identity_not_verified"
    assert (replayed.status, replayed.message_ids) == (Status.SENT, ("ses-2",))
    assert replayed.ledger is LedgerEvent.CLAIMED


def test_an_operators_replay_of_a_sent_request_does_not_send_it_again(
    ledger: SqliteLedger,
) -> None:
    session = RecordingSession(sent, service_config=CONFIG)
    process(delivery_of(REQUEST), deps(session, ledger))
    replayed = process(replay_of(delivery_of(REQUEST)), deps(session, ledger))
    assert session.calls == 1
    assert replayed.ledger is LedgerEvent.REPLAYED


def crashed_during_its_send(ledger: SqliteLedger, clock: ManualClock, **document: Any) -> None:
    """A delivery claimed the request and died; its claim has since expired."""
    data = delivery_of({**REQUEST, **document}).data
    ledger.claim(
        LedgerKey("billing", "invoice-42"), owner="crashed", content_hash=content_hash(data)
    )
    clock.now += CLAIM_S + 1


def ses_reported(ledger: SqliteLedger, *sends: tuple[str, int | None]) -> None:
    """The events reader recorded SES's Send events for these (message id, batch)."""
    ledger.record_statuses(
        LedgerKey("billing", "invoice-42"),
        [
            RecipientStatus(message_id, f"r{batch}@example.net", "send", datetime.now(UTC), batch)
            for message_id, batch in sends
        ],
    )


def test_a_takeover_whose_send_ses_reported_settles_as_sent_without_sending(
    ledger: SqliteLedger, clock: ManualClock
) -> None:
    crashed_during_its_send(ledger, clock)
    ses_reported(ledger, ("ses-from-the-dead", None))
    session = RecordingSession(sent, service_config=CONFIG)
    outcome = process(delivery_of(REQUEST), deps(session, ledger))
    assert session.calls == 0
    assert (outcome.status, outcome.message_ids) == (Status.SENT, ("ses-from-the-dead",))
    assert outcome.ledger is LedgerEvent.TAKEOVER
    replayed = process(again(delivery_of(REQUEST)), deps(session, ledger))
    assert (replayed.ledger, replayed.message_ids) == (LedgerEvent.REPLAYED, ("ses-from-the-dead",))


def test_a_settled_takeover_is_sent_even_with_takeover_set_to_fail(
    ledger: SqliteLedger, clock: ManualClock
) -> None:
    crashed_during_its_send(ledger, clock)
    ses_reported(ledger, ("ses-from-the-dead", None))
    session = RecordingSession(sent, service_config=CONFIG)
    outcome = process(
        delivery_of(REQUEST), deps(session, ledger, EMAIL_WORKER_LEDGER_TAKEOVER="fail")
    )
    assert (outcome.status, session.calls) == (Status.SENT, 0)


def test_a_takeover_of_a_multi_batch_send_settles_only_with_every_batch_reported(
    ledger: SqliteLedger, clock: ManualClock
) -> None:
    many = {"to": [f"r{n}@example.net" for n in range(120)]}  # three SES calls
    crashed_during_its_send(ledger, clock, **many)
    ses_reported(ledger, ("ses-b0", 0), ("ses-b1", 1))
    session = RecordingSession(sent, service_config=CONFIG)
    outcome = process(delivery_of({**REQUEST, **many}), deps(session, ledger))
    assert session.calls == 0
    assert (outcome.status, outcome.error_code) == (Status.FAILED, "partially_sent")
    assert outcome.message_ids == ("ses-b0", "ses-b1")


def test_a_takeover_of_a_multi_batch_send_with_every_batch_reported_is_sent(
    ledger: SqliteLedger, clock: ManualClock
) -> None:
    many = {"to": [f"r{n}@example.net" for n in range(120)]}
    crashed_during_its_send(ledger, clock, **many)
    ses_reported(ledger, ("ses-b2", 2), ("ses-b0", 0), ("ses-b1", 1))
    session = RecordingSession(sent, service_config=CONFIG)
    outcome = process(delivery_of({**REQUEST, **many}), deps(session, ledger))
    assert (outcome.status, session.calls) == (Status.SENT, 0)
    assert outcome.message_ids == ("ses-b0", "ses-b1", "ses-b2")


def test_an_expired_claim_waits_for_send_events_before_it_is_taken_over(
    tmp_path: Path, clock: ManualClock
) -> None:
    with SqliteLedger(
        tmp_path / "waiting.db", claim_lease_s=CLAIM_S, takeover_wait_s=60.0, clock=clock
    ) as waiting:
        crashed_during_its_send(waiting, clock)  # the lease ran out a second ago
        session = RecordingSession(sent, service_config=CONFIG)
        early = process(delivery_of(REQUEST), deps(session, waiting))
        clock.now += 60
        late = process(again(delivery_of(REQUEST)), deps(session, waiting))
    assert (early.status, early.ledger) == (Status.IN_PROGRESS, LedgerEvent.BUSY)
    assert (late.status, late.ledger, session.calls) == (Status.SENT, LedgerEvent.TAKEOVER, 1)


def answer_lost(_: int) -> list[str]:
    raise errors.MaybeSentError("SES's answer was lost")


def test_a_send_whose_answer_was_lost_is_not_retried_and_keeps_its_claim(
    ledger: SqliteLedger,
) -> None:
    session = RecordingSession(answer_lost, service_config=CONFIG)
    outcome = process(delivery_of(REQUEST), deps(session, ledger))
    assert session.calls == 1
    assert (outcome.status, outcome.error_code) == (Status.RETRY, "outcome_unknown")
    record = ledger.get(LedgerKey("billing", "invoice-42"))
    assert record is not None
    assert record.owner is not None  # kept, not released: a redelivery must wait
    busy = process(again(delivery_of(REQUEST)), deps(session, ledger))
    assert (busy.status, session.calls) == (Status.IN_PROGRESS, 1)


def test_a_lost_answer_is_settled_from_ses_s_events_once_the_claim_expires(
    ledger: SqliteLedger, clock: ManualClock
) -> None:
    process(
        delivery_of(REQUEST), deps(RecordingSession(answer_lost, service_config=CONFIG), ledger)
    )
    ses_reported(ledger, ("ses-accepted-all-along", None))
    clock.now += CLAIM_S + 1
    session = RecordingSession(sent, service_config=CONFIG)
    outcome = process(again(delivery_of(REQUEST)), deps(session, ledger))
    assert session.calls == 0
    assert (outcome.status, outcome.message_ids) == (Status.SENT, ("ses-accepted-all-along",))


def test_a_lost_answer_with_no_event_is_sent_again_once_the_claim_expires(
    ledger: SqliteLedger, clock: ManualClock
) -> None:
    process(
        delivery_of(REQUEST), deps(RecordingSession(answer_lost, service_config=CONFIG), ledger)
    )
    clock.now += CLAIM_S + 1
    session = RecordingSession(sent, service_config=CONFIG)
    outcome = process(again(delivery_of(REQUEST)), deps(session, ledger))
    assert (outcome.status, session.calls) == (Status.SENT, 1)
