"""Metrics: each app has its own registry, and the handler and publishes feed it."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tests.support.metadata_server import MetadataServer
from tests.support.push import AUDIENCE, PUSHER, auth_env, envelope, push_app_on
from tests.support.worker_stack import Stack, make_stack, request
from worker.config.settings import Settings
from worker.processing.handling import Handler
from worker.processing.metrics import Metrics
from worker.processing.outputs import Outputs
from worker.processing.pipeline import Delivery, Deps, LedgerEvent, Outcome, Status
from worker.sending.session_cache import SessionCache

RESULTS = "projects/p/topics/results"
DEAD = "projects/p/topics/dead"


def value(metrics: Metrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def done_future(error: Exception | None = None) -> Future[Any]:
    future: Future[Any] = Future()
    if error is None:
        future.set_result("id-1")
    else:
        future.set_exception(error)
    return future


def no_session(service_id: str) -> Any:
    raise AssertionError("no session is needed for a request that is not JSON")


def test_two_metrics_objects_never_share_counts() -> None:
    first, second = Metrics(), Metrics()
    first.requests.labels("sent", "none").inc()
    assert value(first, "email_worker_requests_total", outcome="sent", error_code="none") == 1
    assert value(second, "email_worker_requests_total", outcome="sent", error_code="none") == 0


def test_a_registry_passed_in_is_the_one_used() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.retries.inc(2)
    assert registry.get_sample_value("email_worker_send_retries_total") == 2


def test_an_observed_outcome_counts_request_latency_retries_and_settlement() -> None:
    metrics = Metrics()
    outcome = Outcome(Status.RETRY, request_id="r", error_code="throttled", retries=3)
    metrics.observe(outcome, acked=False, duration_s=1.5)
    labels = {"outcome": "retry", "error_code": "throttled"}
    assert value(metrics, "email_worker_requests_total", **labels) == 1
    assert value(metrics, "email_worker_send_duration_seconds_count", outcome="retry") == 1
    assert value(metrics, "email_worker_send_duration_seconds_sum", outcome="retry") == 1.5
    assert value(metrics, "email_worker_send_retries_total") == 3
    assert value(metrics, "email_worker_deliveries_settled_total", action="nack") == 1


def test_time_spent_waiting_for_the_send_rate_limit_is_added_up() -> None:
    metrics = Metrics()
    for wait_s in (0.25, 0.0, 1.5):
        outcome = Outcome(Status.SENT, request_id="r", send_rate_wait_s=wait_s)
        metrics.observe(outcome, acked=True, duration_s=2.0)
    assert value(metrics, "email_worker_send_rate_wait_seconds_total") == 1.75


def test_sends_ses_calls_throttling_and_waits_are_counted_per_service() -> None:
    metrics = Metrics()
    for outcome in (
        Outcome(
            Status.SENT,
            request_id="a",
            service_id="billing",
            recipient_count=3,
            ses_calls=2,
            ses_throttled=1,
            send_rate_wait_s=0.5,
        ),
        Outcome(Status.RETRY, request_id="b", service_id="billing", ses_calls=1, ses_throttled=1),
        Outcome(Status.SENT, request_id="c", service_id="shop", recipient_count=1, ses_calls=1),
    ):
        metrics.observe(outcome, acked=True, duration_s=1.0)
    assert value(metrics, "email_worker_recipients_sent_total", service_id="billing") == 3
    assert value(metrics, "email_worker_ses_calls_total", service_id="billing") == 3
    assert value(metrics, "email_worker_ses_throttled_total", service_id="billing") == 2
    assert value(metrics, "email_worker_ses_throttled_total", service_id="shop") == 0
    assert value(metrics, "email_worker_recipients_sent_total", service_id="shop") == 1
    wait = "email_worker_service_send_rate_wait_seconds_total"
    assert value(metrics, wait, service_id="billing") == 0.5


def test_a_service_never_admitted_to_send_gets_no_per_service_series() -> None:
    # A rejected request's service id may come from its body: it never becomes a label value.
    metrics = Metrics()
    outcome = Outcome(Status.REJECTED, request_id="r", service_id="made-up", recipient_count=1)
    metrics.observe(outcome, acked=True, duration_s=0.1)
    assert b"made-up" not in metrics.exposition()


def test_confirmed_publishes_are_counted_by_result_status_and_dead_letter_code() -> None:
    metrics = Metrics()
    publish = metrics.counting(
        lambda topic, data, attributes: done_future(), results_topic=RESULTS, dead_letter_topic=DEAD
    )
    publish(RESULTS, b"{}", {"status": "rejected"}).result()
    publish(DEAD, b"x", {"email_worker_error_code": "invalid_json"}).result()
    publish("projects/p/topics/other", b"x", {}).result()
    assert value(metrics, "email_worker_results_published_total", status="rejected") == 1
    assert (
        value(metrics, "email_worker_dead_letters_forwarded_total", error_code="invalid_json") == 1
    )


def test_a_failed_publish_is_counted_as_a_failure_not_as_published() -> None:
    metrics = Metrics()
    publish = metrics.counting(
        lambda topic, data, attributes: done_future(RuntimeError("down")),
        results_topic=RESULTS,
        dead_letter_topic=DEAD,
    )
    publish(RESULTS, b"{}", {"status": "sent"})
    assert value(metrics, "email_worker_publish_failures_total", topic="results") == 1
    assert value(metrics, "email_worker_results_published_total", status="sent") == 0


def test_the_handler_counts_a_delivery_as_in_flight_while_it_runs() -> None:
    metrics = Metrics()
    seen: list[float] = []
    release = threading.Event()

    def publish(topic: str, data: bytes, attributes: Mapping[str, str]) -> Future[Any]:
        seen.append(value(metrics, "email_worker_in_flight"))
        return done_future()

    deps = Deps(
        settings=Settings.from_env({"EMAIL_WORKER_TENANCY": "shared"}),
        sessions=SessionCache(no_session, ttl_s=60),
    )
    outputs = Outputs(publish, results_topic=RESULTS, dead_letter_topic=DEAD, timeout_s=1)
    handler = Handler(deps, outputs, max_delivery_attempts=None, metrics=metrics)
    handler(Delivery(b"not json", {}, "m-1"), ack=release.set, nack=lambda: None)
    assert seen == [1.0, 1.0]  # result and dead letter published while in flight
    assert value(metrics, "email_worker_in_flight") == 0
    assert release.is_set()
    labels = {"outcome": "rejected", "error_code": "invalid_json"}
    assert value(metrics, "email_worker_requests_total", **labels) == 1


def test_the_exposition_is_prometheus_text() -> None:
    metrics = Metrics()
    metrics.push_responses.labels("204").inc()
    text = metrics.exposition().decode()
    assert "# TYPE email_worker_push_responses_total counter" in text
    assert 'email_worker_push_responses_total{code="204"} 1.0' in text


# -- /metrics of the push app ----------------------------------------------------------


@pytest.fixture
def stack(pubsub_env: Any, aws_env: Any, tmp_path: Path) -> Stack:
    return make_stack(pubsub_env, tmp_path, aws_env.endpoint)


def test_the_metrics_endpoint_shows_what_the_push_endpoint_did(
    stack: Stack, clean_metadata: MetadataServer
) -> None:
    with push_app_on(stack, **auth_env(clean_metadata.certs_url)) as push:
        token = clean_metadata.mint_token(AUDIENCE, email=PUSHER)
        assert push.post(envelope(request(), message_id="1"), token=token).status_code == 204
        rejected = envelope(request(service_id="payroll"), message_id="2")
        assert push.post(rejected, token=token).status_code == 204
        assert push.post(envelope(request())).status_code == 401
        push.wait_for("email_worker_dead_letters_forwarded_total", 1, error_code="unknown_service")
        push.wait_for("email_worker_results_published_total", 1, status="rejected")
        push.wait_for("email_worker_results_published_total", 1, status="sent")
        response = push.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for line in (
        'email_worker_requests_total{error_code="none",outcome="sent"} 1.0',
        'email_worker_requests_total{error_code="unknown_service",outcome="rejected"} 1.0',
        'email_worker_push_responses_total{code="204"} 2.0',
        'email_worker_push_responses_total{code="401"} 1.0',
        'email_worker_push_auth_failures_total{reason="missing_token"} 1.0',
        'email_worker_results_published_total{status="sent"} 1.0',
        'email_worker_results_published_total{status="rejected"} 1.0',
        'email_worker_dead_letters_forwarded_total{error_code="unknown_service"} 1.0',
        'email_worker_deliveries_settled_total{action="ack"} 2.0',
        'email_worker_send_duration_seconds_count{outcome="sent"} 1.0',
        "email_worker_in_flight 0.0",
    ):
        assert line in text, line


def test_what_the_ledger_said_is_counted_by_event() -> None:
    metrics = Metrics()
    replayed = Outcome(Status.SENT, request_id="r", ledger=LedgerEvent.REPLAYED)
    metrics.observe(replayed, acked=True, duration_s=0.01)
    metrics.observe(replayed, acked=True, duration_s=0.01)
    metrics.observe(Outcome(Status.SENT, request_id="s"), acked=True, duration_s=0.01)
    assert value(metrics, "email_worker_ledger_events_total", event="replayed") == 2
    assert value(metrics, "email_worker_ledger_events_total", event="claimed") == 0
