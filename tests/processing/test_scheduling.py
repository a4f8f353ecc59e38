"""Scheduled requests and cancels through the pipeline, on a real SQLite ledger.

The clock is the ledger's, moved by hand; the session records what would go to SES.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.processing.test_pipeline import CONFIG
from tests.support.clock import ManualClock
from worker.config.settings import Settings
from worker.ledger import FirestoreLedger, Ledger, LedgerKey, SqliteLedger
from worker.ledger.schedule_stores import schedules_of
from worker.ledger.schedules import ScheduleState
from worker.processing.pipeline import Delivery, Deps, Outcome, Status, process
from worker.processing.tenancy import REPLAY, Source
from worker.sending.session_cache import SessionCache
from worker.sending.testing import RecordingSession, fresh_id

NOW = 1_800_000_000.0
KEY = LedgerKey("billing", "invoice-1")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def ledger(tmp_path: Path, clock: ManualClock) -> Iterator[SqliteLedger]:
    with SqliteLedger(tmp_path / "ledger.db", claim_lease_s=60, clock=clock) as opened:
        yield opened


@pytest.fixture
def session() -> RecordingSession:
    return RecordingSession(fresh_id, service_config=CONFIG)


def deps(session: RecordingSession, ledger: Ledger | None, **env: str) -> Deps:
    settings = Settings.from_env({"EMAIL_WORKER_ALLOWED_SERVICES": "billing,shop", **env})
    return Deps(settings, SessionCache(lambda _: session, ttl_s=60), ledger=ledger)


def at(seconds_ahead: float) -> str:
    return datetime.fromtimestamp(NOW + seconds_ahead, UTC).isoformat()


def request(send_in_s: float | None = 120, **fields: Any) -> dict[str, Any]:
    document = {
        "version": 1,
        "request_id": "invoice-1",
        "to": ["alice@example.net"],
        "subject": "Your invoice",
        "text": "Hello",
        **fields,
    }
    if send_in_s is not None:
        document["send_at"] = at(send_in_s)
    return document


def published(document: dict[str, Any], *, service: str = "billing", **fields: Any) -> Delivery:
    data = json.dumps(document).encode()
    return Delivery(data, {}, message_id="m1", source=Source.service(service), **fields)


def run(
    document: dict[str, Any], session: RecordingSession, ledger: SqliteLedger | None, **kw: Any
) -> Outcome:
    return process(published(document, **kw), deps(session, ledger))


def test_a_request_due_later_is_kept_and_answered_scheduled_without_sending(
    session: RecordingSession, ledger: SqliteLedger
) -> None:
    outcome = run(request(), session, ledger)

    assert (outcome.status, outcome.request_id, outcome.service_id) == (
        Status.SCHEDULED,
        "invoice-1",
        "billing",
    )
    assert outcome.send_at == datetime.fromtimestamp(NOW + 120, UTC).isoformat(
        timespec="milliseconds"
    ).replace("+00:00", "Z")
    assert session.calls == 0
    kept = schedules_of(ledger).get(KEY)
    assert kept is not None
    assert kept.due_at == NOW + 120


@pytest.mark.parametrize("send_in_s", [-3600, 0, 60])
def test_a_request_due_in_the_past_or_within_a_minute_is_sent_now(
    session: RecordingSession, ledger: SqliteLedger, send_in_s: float
) -> None:
    outcome = run(request(send_in_s), session, ledger)

    assert outcome.status is Status.SENT
    assert session.calls == 1
    assert schedules_of(ledger).get(KEY) is None


def test_the_nearest_send_at_that_is_kept_is_a_setting(
    session: RecordingSession, ledger: SqliteLedger
) -> None:
    near = deps(session, ledger, EMAIL_WORKER_SCHEDULE_MIN_AHEAD_S="5")

    assert process(published(request(10)), near).status is Status.SCHEDULED
    assert session.calls == 0


def test_a_request_more_than_thirty_days_ahead_is_rejected_at_once(
    session: RecordingSession, ledger: SqliteLedger
) -> None:
    outcome = run(request(30 * 86400 + 60), session, ledger)

    assert (outcome.status, outcome.error_code) == (Status.REJECTED, "send_at_too_far")
    assert schedules_of(ledger).get(KEY) is None


def test_a_request_that_could_never_be_sent_is_rejected_on_arrival_not_on_the_day(
    session: RecordingSession, ledger: SqliteLedger
) -> None:
    document = {**request(), "from": "x@elsewhere.example.com"}
    outcome = run(document, session, ledger)

    assert (outcome.status, outcome.error_code) == (Status.REJECTED, "sender_not_allowed")
    assert schedules_of(ledger).get(KEY) is None


def test_an_attachment_outside_the_services_prefixes_is_rejected_on_arrival(
    session: RecordingSession, ledger: SqliteLedger
) -> None:
    attachment = {"filename": "a.pdf", "content_type": "application/pdf", "gcs": "gs://b/a.pdf"}
    outcome = run(request(attachments=[attachment]), session, ledger)

    assert (outcome.status, outcome.error_code) == (Status.REJECTED, "attachment_forbidden")
    assert schedules_of(ledger).get(KEY) is None


def test_the_same_scheduling_message_again_is_answered_scheduled_and_kept_once(
    session: RecordingSession, ledger: SqliteLedger
) -> None:
    run(request(), session, ledger)
    again = run(request(), session, ledger)

    assert again.status is Status.SCHEDULED
    assert len(schedules_of(ledger).scheduled("billing")) == 1


def test_another_request_under_a_scheduled_request_id_is_a_conflict(
    session: RecordingSession, ledger: SqliteLedger
) -> None:
    run(request(), session, ledger)
    other = run(request(subject="Another"), session, ledger)

    assert (other.status, other.error_code) == (Status.REJECTED, "request_id_conflict")


def test_without_a_ledger_a_request_for_later_fails_as_a_configuration_error(
    session: RecordingSession,
) -> None:
    outcome = run(request(), session, None)

    assert (outcome.status, outcome.error_code) == (Status.FAILED, "configuration_error")
    assert session.calls == 0


def cancel(**fields: Any) -> dict[str, Any]:
    return {"version": 1, "cancel": "invoice-1", **fields}


def test_a_cancel_from_the_services_own_topic_cancels_and_the_request_is_never_sent(
    session: RecordingSession, ledger: SqliteLedger, clock: ManualClock
) -> None:
    run(request(), session, ledger)

    outcome = run(cancel(), session, ledger)
    assert (outcome.status, outcome.error_code) == (Status.CANCELLED, "cancelled")
    assert (outcome.request_id, outcome.service_id) == ("invoice-1", "billing")
    clock.now = NOW + 300
    # Its message delivered again after its time stays cancelled.
    assert run(request(), session, ledger).status is Status.CANCELLED
    assert session.calls == 0


def test_a_cancel_from_another_services_topic_cannot_cancel_it(
    session: RecordingSession, ledger: SqliteLedger
) -> None:
    run(request(), session, ledger)

    named = run(cancel(service_id="billing"), session, ledger, service="shop")
    unnamed = run(cancel(), session, ledger, service="shop")

    assert (named.status, named.error_code) == (Status.REJECTED, "publisher_not_allowed")
    assert (unnamed.status, unnamed.error_code) == (Status.CANCEL_REFUSED, "schedule_not_found")
    kept = schedules_of(ledger).get(KEY)
    assert kept is not None
    assert kept.state is ScheduleState.SCHEDULED


def test_a_cancel_from_the_replay_topic_is_refused(
    session: RecordingSession, ledger: SqliteLedger
) -> None:
    run(request(), session, ledger)
    data = json.dumps(cancel(service_id="billing")).encode()

    outcome = process(Delivery(data, {}, message_id="m9", source=REPLAY), deps(session, ledger))

    assert outcome.error_code == "publisher_not_allowed"
    assert not outcome.service_confirmed  # no result: dead-lettered for the operators
    kept = schedules_of(ledger).get(KEY)
    assert kept is not None
    assert kept.state is ScheduleState.SCHEDULED


def test_a_cancel_after_the_send_reports_that_it_came_too_late(
    session: RecordingSession, ledger: SqliteLedger, clock: ManualClock
) -> None:
    run(request(), session, ledger)
    book = schedules_of(ledger)
    clock.now = NOW + 121
    (due,) = book.take_due(owner="dispatcher", lease_s=30, limit=10)
    process(published(request(), scheduled=True), deps(session, ledger))
    book.finish(due.key, owner="dispatcher")

    outcome = run(cancel(), session, ledger)

    assert (outcome.status, outcome.error_code) == (Status.CANCEL_REFUSED, "cancel_too_late")
    assert session.calls == 1


def test_a_cancel_of_nothing_scheduled_is_refused_as_not_found(
    session: RecordingSession, ledger: SqliteLedger
) -> None:
    outcome = run(cancel(), session, ledger)

    assert (outcome.status, outcome.error_code) == (Status.CANCEL_REFUSED, "schedule_not_found")


def test_a_request_too_large_for_a_firestore_document_is_refused_on_arrival(
    session: RecordingSession, firestore_env: object, clock: ManualClock
) -> None:
    ledger = FirestoreLedger(claim_lease_s=60, clock=clock)
    try:
        outcome = process(published(request(text="x" * 1_000_001)), deps(session, ledger))
    finally:
        ledger.close()

    assert (outcome.status, outcome.error_code) == (Status.REJECTED, "message_too_large")
