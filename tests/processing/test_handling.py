"""The transport-independent handler: one log line per request, and settle's decision."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from typing import Any

from structlog.testing import capture_logs

from worker.config.settings import Settings
from worker.ledger import MemoryLedger
from worker.ledger.send_counts import hour_of
from worker.ledger.service_count_stores import service_counts_of
from worker.ledger.service_counter import ServiceCounter
from worker.processing.handling import Handler
from worker.processing.outputs import Outputs
from worker.processing.pipeline import Delivery, Deps, Status
from worker.processing.send_rate import SendRateLimiter
from worker.sending.errors import IdentityNotVerifiedError, TransientError
from worker.sending.service_config import ServiceConfig
from worker.sending.session_cache import SessionCache
from worker.sending.testing import RecordingSession

SECRET_BODY = "the secret body text"


CONFIG = ServiceConfig(
    service_id="billing",
    service_role_arn="arn:aws:iam::123456789012:role/x",
    allowed_from_domains=("example.com",),
)


def session() -> RecordingSession:
    return RecordingSession(lambda _: ["ses-1", "ses-2"], service_config=CONFIG)


def done(value: Any = "id") -> Future[Any]:
    future: Future[Any] = Future()
    future.set_result(value)
    return future


def make_handler(published: list[tuple[str, bytes, dict[str, str]]]) -> Handler:
    settings = Settings.from_env(
        {"EMAIL_WORKER_ALLOWED_SERVICES": "billing", "EMAIL_WORKER_TENANCY": "shared"}
    )
    deps = Deps(settings, SessionCache(lambda _: session(), ttl_s=60))

    def publish(topic: str, data: bytes, attributes: Any) -> Future[Any]:
        published.append((topic, data, dict(attributes)))
        return done()

    outputs = Outputs(publish, results_topic="results", dead_letter_topic="dlq", timeout_s=5)
    return Handler(deps, outputs, max_delivery_attempts=5)


def delivery(**fields: Any) -> Delivery:
    document = {
        "version": 1,
        "service_id": "billing",
        "from": "a@example.com",
        "to": ["alice@example.org", "bob@example.org"],
        "subject": "Private subject",
        "text": SECRET_BODY,
        **fields,
    }
    return Delivery(json.dumps(document).encode(), {}, message_id="m1", delivery_attempt=2)


def test_one_log_line_per_request_carries_its_identifiers_and_outcome() -> None:
    acks: list[str] = []
    with capture_logs() as logs:
        make_handler([])(
            delivery(request_id="r1"), ack=lambda: acks.append("ack"), nack=lambda: None
        )
    [line] = [entry for entry in logs if entry["event"] == "request processed"]
    assert line["request_id"] == "r1"
    assert line["service_id"] == "billing"
    assert line["outcome"] == "sent"
    assert line["error_code"] is None
    assert line["message_ids"] == ["ses-1", "ses-2"]
    assert line["recipient_count"] == 2
    assert line["send_rate_wait_ms"] == 0.0  # no send rate limit set
    assert line["acked"] is True
    assert line["duration_ms"] >= 0
    assert acks == ["ack"]


def test_the_log_line_has_no_addresses_subject_or_body() -> None:
    with capture_logs() as logs:
        make_handler([])(delivery(), ack=lambda: None, nack=lambda: None)
    text = repr(logs)
    for secret in ("alice@example.org", "a@example.com", "Private subject", SECRET_BODY):
        assert secret not in text


def test_a_rejected_request_is_published_dead_lettered_with_bytes_intact_and_acked() -> None:
    published: list[tuple[str, bytes, dict[str, str]]] = []
    acks: list[str] = []
    bad = Delivery(b"\xff not json", {"origin": "x"}, message_id="m9", delivery_attempt=1)
    outcome = make_handler(published)(bad, ack=lambda: acks.append("ack"), nack=lambda: None)
    assert outcome.status is Status.REJECTED
    [(results_topic, _, result_attrs), (dlq_topic, data, attributes)] = published
    assert (results_topic, dlq_topic) == ("results", "dlq")
    assert result_attrs["status"] == "rejected"
    assert data == b"\xff not json"
    assert attributes["origin"] == "x"
    assert attributes["email_worker_error_code"] == "invalid_json"
    assert attributes["email_worker_original_message_id"] == "m9"
    assert acks == ["ack"]


def test_a_failed_publish_means_nack_not_ack() -> None:
    settings = Settings.from_env(
        {"EMAIL_WORKER_ALLOWED_SERVICES": "billing", "EMAIL_WORKER_TENANCY": "shared"}
    )
    deps = Deps(settings, SessionCache(lambda _: session(), ttl_s=60))

    def failing(topic: str, data: bytes, attributes: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_exception(TimeoutError("publish timed out"))
        return future

    outputs = Outputs(failing, results_topic="results", dead_letter_topic="dlq", timeout_s=5)
    calls: list[str] = []
    Handler(deps, outputs, max_delivery_attempts=5)(
        delivery(), ack=lambda: calls.append("ack"), nack=lambda: calls.append("nack")
    )
    assert calls == ["nack"]


def test_the_handler_tells_transports_when_the_worker_is_stopping() -> None:
    handler = make_handler([])
    assert not handler.stopping.is_set()
    handler.stopping.set()  # what a transport does on SIGTERM
    assert handler.deps.stopping.is_set()  # the pipeline stops retrying


def test_a_delivery_waiting_for_its_services_share_is_held_counted_and_not_logged() -> None:
    published: list[tuple[str, bytes, dict[str, str]]] = []
    handler = make_handler(published)
    handler.deps.send_rate = SendRateLimiter(10, places=1)
    assert handler.deps.send_rate.enter("billing")
    plain = delivery()
    waiting = Delivery(plain.data, {}, message_id="m1", delivery_attempt=2, may_hold=True)
    settled: list[str] = []
    with capture_logs() as logs:
        outcome = handler(
            waiting,
            ack=lambda: settled.append("ack"),
            nack=lambda: settled.append("nack"),
            hold=lambda: settled.append("hold"),
        )
    assert (outcome.status, outcome.held_for) == (Status.HELD, "share")
    assert settled == ["hold"]
    assert published == []
    assert [entry for entry in logs if entry["event"] == "request processed"] == []
    assert handler.metrics.waiting_turn.labels("share")._value.get() == 1


def counting_handler(ledger: MemoryLedger) -> tuple[Handler, ServiceCounter]:
    handler = make_handler([])
    handler.deps.ledger = ledger
    handler.outcome_counts = ServiceCounter(ledger, flush_interval_s=3600)
    return handler, handler.outcome_counts


def counted(ledger: MemoryLedger, counter: ServiceCounter, service_id: str) -> dict[str, int]:
    counter.flush()
    now = hour_of(time.time())
    hours = service_counts_of(ledger).read(service_id, range(now - 1, now + 1))
    return {kind: n for counts in hours.values() for kind, n in counts.items()}


def test_each_finished_request_is_counted_for_its_service_sent_with_its_recipients() -> None:
    ledger = MemoryLedger(claim_lease_s=60)
    handler, counter = counting_handler(ledger)
    for request_id in ("r1", "r2"):
        handler(delivery(request_id=request_id), ack=lambda: None, nack=lambda: None)
    handler(delivery(request_id="r3", to=[]), ack=lambda: None, nack=lambda: None)
    assert counted(ledger, counter, "billing") == {"sent": 2, "recipients": 4, "rejected": 1}


def test_a_result_replayed_from_the_ledger_is_not_counted_again() -> None:
    ledger = MemoryLedger(claim_lease_s=60)
    handler, counter = counting_handler(ledger)
    for _ in range(3):  # Pub/Sub delivers the same request three times
        handler(delivery(request_id="r1"), ack=lambda: None, nack=lambda: None)
    assert counted(ledger, counter, "billing") == {"sent": 1, "recipients": 2}


def test_requests_of_services_the_worker_does_not_send_for_are_not_counted() -> None:
    ledger = MemoryLedger(claim_lease_s=60)
    handler, counter = counting_handler(ledger)
    handler(delivery(service_id="stranger"), ack=lambda: None, nack=lambda: None)
    assert counted(ledger, counter, "stranger") == {}


def sessions_of(behaviour: Callable[[int], list[str]]) -> Callable[[str], RecordingSession]:
    session = RecordingSession(behaviour, service_config=CONFIG)
    return lambda _: session


def test_a_failure_and_a_last_attempt_that_ran_out_count_as_failed_an_earlier_one_not() -> None:
    ledger = MemoryLedger(claim_lease_s=60)
    handler, counter = counting_handler(ledger)
    handler.deps.sleep = lambda _: None

    def unavailable(_: int) -> list[str]:
        raise TransientError("SES answered 503")

    def unverified(_: int) -> list[str]:
        raise IdentityNotVerifiedError("the From domain is not verified")

    for behaviour, request_id, attempt in (
        (unavailable, "r1", 2),  # nacked: Pub/Sub delivers it again
        (unavailable, "r2", 5),  # the last attempt: the requester is told it failed
        (unverified, "r3", 1),
    ):
        handler.deps.sessions = SessionCache(sessions_of(behaviour), ttl_s=60)
        late = replace(delivery(request_id=request_id), delivery_attempt=attempt)
        handler(late, ack=lambda: None, nack=lambda: None)
    assert counted(ledger, counter, "billing") == {"failed": 2}
