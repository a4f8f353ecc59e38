"""Per-service tenancy in the pipeline: a service sends only as itself, and a replay only
re-sends what a service published.

A real SQLite ledger; the session is ``worker.sending.testing.RecordingSession``. The same
behaviour through the Pub/Sub emulator and moto is in ``test_tenancy_end_to_end``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.processing.test_pipeline import CONFIG, sent
from worker.config.settings import Settings
from worker.formats.pubsub import REQUEST_ID_ATTRIBUTE, SERVICE_ID_ATTRIBUTE
from worker.ledger import LedgerKey, SqliteLedger
from worker.processing.decisions import Decision, decide
from worker.processing.pipeline import Delivery, Deps, Status, process
from worker.processing.tenancy import REPLAY, SHARED, Source, SourceKind, subscription_sources
from worker.sending import errors
from worker.sending.session_cache import SessionCache
from worker.sending.testing import RecordingSession

BILLING = Source.service("billing")
SHOP = Source.service("shop")


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[SqliteLedger]:
    with SqliteLedger(tmp_path / "ledger.db", claim_lease_s=90.0) as opened:
        yield opened


def deps(session: RecordingSession, ledger: SqliteLedger | None, **env: str) -> Deps:
    settings = Settings.from_env({"EMAIL_WORKER_ALLOWED_SERVICES": "billing,shop", **env})
    return Deps(
        settings,
        SessionCache(lambda _: session, ttl_s=60),
        sleep=lambda _: None,
        ledger=ledger,
    )


def delivery(source: Source | None, message_id: str = "m1", **fields: Any) -> Delivery:
    request = {
        "version": 1,
        "request_id": "r-1",
        "service_id": "billing",
        "to": ["alice@example.net"],
        "subject": "Hi",
        "text": "Hello",
        **fields,
    }
    document = {k: v for k, v in request.items() if v is not None}
    return Delivery(json.dumps(document).encode(), {}, message_id, 1, source=source)


def session_for(behaviour: Any = sent) -> RecordingSession:
    return RecordingSession(behaviour, service_config=CONFIG)


def test_a_request_published_to_its_own_services_topic_is_sent(ledger: SqliteLedger) -> None:
    session = session_for()
    outcome = process(delivery(BILLING), deps(session, ledger))
    assert (outcome.status, outcome.service_id, session.calls) == (Status.SENT, "billing", 1)


def test_a_request_naming_another_service_is_refused_and_not_sent(ledger: SqliteLedger) -> None:
    session = session_for()
    outcome = process(delivery(SHOP), deps(session, ledger))
    assert (outcome.status, outcome.error_code) == (Status.REJECTED, "publisher_not_allowed")
    assert session.calls == 0


def test_the_refusal_goes_to_the_publishing_service_not_the_one_named(
    ledger: SqliteLedger,
) -> None:
    outcome = process(delivery(SHOP), deps(session_for(), ledger))
    assert outcome.service_id == "shop"


def test_a_refused_request_leaves_no_ledger_record_under_the_service_it_named(
    ledger: SqliteLedger,
) -> None:
    process(delivery(SHOP), deps(session_for(), ledger))
    assert ledger.get(LedgerKey("billing", "r-1")) is None


def test_a_request_that_names_no_service_is_sent_as_its_topics_service(
    ledger: SqliteLedger,
) -> None:
    session = session_for()
    outcome = process(delivery(BILLING, service_id=None), deps(session, ledger))
    assert (outcome.status, outcome.service_id) == (Status.SENT, "billing")


def test_an_invalid_request_is_reported_to_the_publishing_service(ledger: SqliteLedger) -> None:
    outcome = process(delivery(SHOP, to="not-a-list"), deps(session_for(), ledger))
    assert (outcome.status, outcome.service_id) == (Status.REJECTED, "shop")


def test_per_service_tenancy_refuses_a_delivery_whose_source_is_unknown(
    ledger: SqliteLedger,
) -> None:
    session = session_for()
    for source in (None, SHARED):
        outcome = process(delivery(source), deps(session, ledger))
        assert outcome.error_code == "publisher_not_allowed"
    assert session.calls == 0


def test_shared_tenancy_trusts_the_service_named_in_the_request(ledger: SqliteLedger) -> None:
    session = session_for()
    outcome = process(delivery(None), deps(session, ledger, EMAIL_WORKER_TENANCY="shared"))
    assert (outcome.status, outcome.service_id) == (Status.SENT, "billing")


def failed_transiently(ledger: SqliteLedger) -> Delivery:
    """A billing request whose SES call was throttled: released, nothing sent."""
    original = delivery(BILLING)
    outcome = process(
        original, deps(session_for(throttled), ledger, EMAIL_WORKER_SEND_MAX_ATTEMPTS="1")
    )
    assert outcome.status is Status.RETRY
    return original


def throttled(_: int) -> list[str]:
    raise errors.ThrottledError("slow down")


def replayed(original: Delivery, **attributes: str) -> Delivery:
    return replace(original, message_id="m-replay", source=REPLAY, attributes=attributes)


def test_a_replay_of_a_request_the_service_published_is_sent_once(ledger: SqliteLedger) -> None:
    original = failed_transiently(ledger)
    session = session_for()
    first = process(replayed(original), deps(session, ledger))
    second = process(replayed(original), deps(session, ledger))
    assert (first.status, second.status) == (Status.SENT, Status.SENT)
    assert session.calls == 1


def test_a_replay_with_a_tampered_payload_is_refused(ledger: SqliteLedger) -> None:
    failed_transiently(ledger)
    session = session_for()
    forged = replayed(delivery(BILLING, to=["mallory@example.net"]))
    outcome = process(forged, deps(session, ledger))
    assert (outcome.status, outcome.error_code) == (Status.REJECTED, "publisher_not_allowed")
    assert session.calls == 0


def test_a_replay_of_a_request_nobody_published_is_refused(ledger: SqliteLedger) -> None:
    session = session_for()
    outcome = process(replayed(delivery(BILLING, request_id="made-up")), deps(session, ledger))
    assert outcome.error_code == "publisher_not_allowed"
    assert session.calls == 0


def test_a_replay_passing_a_services_request_off_as_anothers_is_refused(
    ledger: SqliteLedger,
) -> None:
    # Billing's request names no service (its topic did): the same bytes must not be
    # replayable as shop's by changing the service attribute.
    original = delivery(BILLING, service_id=None)
    process(original, deps(session_for(throttled), ledger, EMAIL_WORKER_SEND_MAX_ATTEMPTS="1"))
    session = session_for()
    as_shop = process(replayed(original, **{SERVICE_ID_ATTRIBUTE: "shop"}), deps(session, ledger))
    as_billing = process(
        replayed(original, **{SERVICE_ID_ATTRIBUTE: "billing"}), deps(session, ledger)
    )
    assert as_shop.error_code == "publisher_not_allowed"
    assert (as_billing.status, session.calls) == (Status.SENT, 1)


def test_a_replay_finds_a_request_by_the_id_the_worker_gave_it(ledger: SqliteLedger) -> None:
    # No request_id in the body: the original's was its Pub/Sub message id, which the dead
    # letter (and so the replay) carries as an attribute.
    original = delivery(BILLING, request_id=None)
    process(original, deps(session_for(throttled), ledger, EMAIL_WORKER_SEND_MAX_ATTEMPTS="1"))
    session = session_for()
    outcome = process(
        replayed(original, **{REQUEST_ID_ATTRIBUTE: "m1", SERVICE_ID_ATTRIBUTE: "billing"}),
        deps(session, ledger),
    )
    assert (outcome.status, outcome.request_id, session.calls) == (Status.SENT, "m1", 1)


def test_a_replay_of_a_sent_request_republishes_its_result_without_sending(
    ledger: SqliteLedger,
) -> None:
    original = delivery(BILLING)
    process(original, deps(session_for(), ledger))
    session = session_for()
    outcome = process(replayed(original), deps(session, ledger))
    assert (outcome.status, outcome.message_ids, session.calls) == (Status.SENT, ("ses-1",), 0)


def reported_to(outcome: Any) -> Decision:
    return decide(outcome, delivery_attempt=5, max_delivery_attempts=5)


def test_a_refused_replay_goes_to_the_operators_only_never_to_the_services_results(
    ledger: SqliteLedger,
) -> None:
    forged = process(replayed(delivery(BILLING, request_id="order-1")), deps(session_for(), ledger))
    assert (forged.service_id, forged.error_code) == ("billing", "publisher_not_allowed")
    assert reported_to(forged) == Decision(publish_result=False, dead_letter=True, ack=True)


@pytest.mark.parametrize(
    "fields",
    [{"to": "not-a-list"}, {"service_id": "unknown"}],
    ids=["invalid", "unknown-service"],
)
def test_a_replay_refused_before_the_ledger_check_publishes_no_result_either(
    ledger: SqliteLedger, fields: dict[str, Any]
) -> None:
    outcome = process(replayed(delivery(BILLING, **fields)), deps(session_for(), ledger))
    assert outcome.status is Status.REJECTED
    assert not reported_to(outcome).publish_result


def test_a_replay_that_cannot_be_checked_publishes_no_result_on_its_last_attempt(
    tmp_path: Path,
) -> None:
    closed = SqliteLedger(tmp_path / "closed.db", claim_lease_s=90.0)
    closed.close()  # every call now fails as unavailable
    outcome = process(replayed(delivery(BILLING)), deps(session_for(), closed))
    assert (outcome.status, outcome.error_code) == (Status.RETRY, "ledger_unavailable")
    assert reported_to(outcome) == Decision(publish_result=False, dead_letter=False, ack=False)


def test_a_confirmed_replay_reports_to_its_service_as_usual(ledger: SqliteLedger) -> None:
    original = failed_transiently(ledger)
    outcome = process(replayed(original), deps(session_for(), ledger))
    assert (outcome.status, reported_to(outcome).publish_result) == (Status.SENT, True)


def test_without_a_ledger_no_replay_is_sent() -> None:
    session = session_for()
    outcome = process(replayed(delivery(BILLING)), deps(session, None))
    assert outcome.error_code == "publisher_not_allowed"
    assert session.calls == 0


def test_each_allowed_service_has_a_subscription_and_the_replay_topic_one() -> None:
    settings = Settings.from_env(
        {
            "GOOGLE_CLOUD_PROJECT": "p",
            "EMAIL_WORKER_ALLOWED_SERVICES": "shop,billing",
            "EMAIL_WORKER_SERVICE_SUBSCRIPTION": "in-{service}",
        }
    )
    assert subscription_sources(settings) == {
        "projects/p/subscriptions/in-billing": BILLING,
        "projects/p/subscriptions/in-shop": SHOP,
        "projects/p/subscriptions/email-replays-worker": REPLAY,
    }


def test_shared_tenancy_reads_only_the_shared_subscription() -> None:
    settings = Settings.from_env({"GOOGLE_CLOUD_PROJECT": "p", "EMAIL_WORKER_TENANCY": "shared"})
    sources = subscription_sources(settings)
    assert sources == {"projects/p/subscriptions/email-requests-worker": SHARED}
    assert all(s.kind is SourceKind.SHARED for s in sources.values())
