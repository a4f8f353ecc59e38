"""The pull worker end to end: the Pub/Sub emulator, moto (through a fault proxy) and the
metadata stand-in, with the topology (dead-letter policy included) created per test."""

from __future__ import annotations

import email
import email.policy
import threading
from collections import Counter
from concurrent.futures import Future
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from google.api_core import exceptions as gexc
from structlog.testing import capture_logs

from tests.support import fault_proxy as faults
from tests.support.worker_stack import Stack, b64, make_stack, request
from worker.config.settings import Settings
from worker.processing.handling import Handler
from worker.processing.pipeline import Delivery
from worker.transports.pull import PullWorker


@pytest.fixture
def stack(pubsub_env: Any, fault_proxy: Any, tmp_path: Path) -> Stack:
    return make_stack(pubsub_env, tmp_path, fault_proxy.endpoint)


def raw_of(sent: Any) -> email.message.EmailMessage:
    return email.message_from_string(sent.raw_data, policy=email.policy.default)


def test_a_valid_request_is_sent_and_its_result_published(stack: Stack, moto: Any) -> None:
    with stack.running():
        message_id = stack.publish(request(request_id="inv-1"))
        [result] = stack.results(1)
    [sent] = moto.sent_messages()
    assert result["status"] == "sent"
    assert result["request_id"] == "inv-1"
    assert result["service_id"] == "billing"
    assert result["message_ids"] == [sent.message_id]
    assert result["pubsub_message_id"] == message_id
    assert result["error"] is None
    assert result["_attributes"] == {
        "request_id": "inv-1",
        "status": "sent",
        "service_id": "billing",
        "version": "1",
    }
    assert sent.destinations == ["alice@example.org"]
    assert raw_of(sent)["Subject"] == "Your invoice"


def test_the_request_id_defaults_to_the_pubsub_message_id(stack: Stack) -> None:
    with stack.running():
        message_id = stack.publish(request())
        [result] = stack.results(1)
    assert result["request_id"] == message_id


def test_html_with_an_attachment_is_sent_as_multipart(stack: Stack, moto: Any) -> None:
    attachment = {
        "filename": "invoice.pdf",
        "content_type": "application/pdf",
        "content_base64": b64(b"%PDF-1.4 test"),
    }
    with stack.running():
        stack.publish(request(html="<p>Hello <b>Alice</b></p>", attachments=[attachment]))
        [result] = stack.results(1)
    assert result["status"] == "sent"
    sent = raw_of(moto.sent_messages()[0])
    assert sent.is_multipart()
    [part] = list(sent.iter_attachments())
    assert part.get_filename() == "invoice.pdf"
    assert part.get_content() == b"%PDF-1.4 test"
    assert sent.get_body(preferencelist=("html",)) is not None


def send_to_120_and_check_each_is_reached_once(stack: Stack, moto: Any) -> None:
    to = [f"user{n}@example.org" for n in range(120)]
    with stack.running():
        stack.publish(request(to=to))
        [result] = stack.results(1)
    assert result["status"] == "sent"
    assert len(result["message_ids"]) == 3
    reached = [a for m in moto.sent_messages() for a in m.destinations]
    assert sorted(reached) == sorted(to)


def test_120_recipients_are_sent_in_three_batches(stack: Stack, moto: Any) -> None:
    send_to_120_and_check_each_is_reached_once(stack, moto)


def test_a_throttled_second_batch_is_retried_alone_and_everyone_is_reached_once(
    stack: Stack, moto: Any, fault_proxy: Any
) -> None:
    # The second batch's first four calls are throttled; the session retries that batch alone
    # rather than leave the request partially sent.
    fault_proxy.add_rule(faults.fail_after(1, 4, faults.ses_error("TooManyRequestsException", 429)))
    send_to_120_and_check_each_is_reached_once(stack, moto)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"{not json", "invalid_json"),
        (request(subject=None), "invalid_request"),
        (request(subject="Hi\r\nBcc: victim@example.org"), "header_injection"),
        (request(to=["not an address"]), "invalid_address"),
        (request(service_id="payroll"), "unknown_service"),
        (request(**{"from": "boss@elsewhere.example"}), "sender_not_allowed"),
    ],
    ids=["invalid-json", "schema", "header-injection", "bad-address", "unknown-service", "from"],
)
def test_a_bad_request_is_rejected_dead_lettered_with_its_reason_and_not_sent(
    stack: Stack, moto: Any, data: Any, code: str
) -> None:
    with stack.running():
        message_id = stack.publish(data, origin="tests")
        [result] = stack.results(1)
        [dead] = stack.dead_letters(1)
    assert result["status"] == "rejected"
    assert result["error"]["code"] == code
    assert result["message_ids"] == []
    assert dead.attributes["email_worker_error_code"] == code
    assert dead.attributes["email_worker_original_message_id"] == message_id
    assert dead.attributes["origin"] == "tests"
    assert dead.attributes["email_worker_error_message"]
    expected = data if isinstance(data, bytes) else None
    if expected is not None:
        assert dead.data == expected
    assert moto.sent_messages() == []


def test_an_unverified_identity_fails_and_is_dead_lettered(stack: Stack, moto: Any) -> None:
    with stack.running():
        stack.publish(request(**{"from": "billing@unverified.example"}))
        [result] = stack.results(1)
        [dead] = stack.dead_letters(1)
    assert result["status"] == "failed"
    assert result["error"]["code"] == "identity_not_verified"
    assert dead.attributes["email_worker_error_code"] == "identity_not_verified"
    assert moto.sent_messages() == []


def test_transient_throttling_is_retried_by_the_worker_s_paced_attempts_and_then_sent(
    stack: Stack, moto: Any, fault_proxy: Any
) -> None:
    # The worker's sessions leave SES's throttling to its own retry (botocore does not repeat
    # the call): each throttle is one of the worker's attempts, with its backoff.
    fault_proxy.add_rule(faults.fail_first(2, faults.ses_error("TooManyRequestsException", 429)))
    with stack.running():
        stack.publish(request())
        [result] = stack.results(1)
    assert result["status"] == "sent"
    assert result["attempt"] == 1
    assert len(moto.sent_messages()) == 1
    assert fault_proxy.count("ses_send") == 3
    assert len(stack.sleeps) == 2  # one backoff before each of the worker's two retries


def test_persistent_throttling_fails_on_the_last_attempt_and_pubsub_dead_letters_it(
    stack: Stack, moto: Any, fault_proxy: Any
) -> None:
    fault_proxy.add_rule(faults.fail_always(faults.ses_error("TooManyRequestsException", 429)))
    with stack.running(EMAIL_WORKER_SEND_MAX_ATTEMPTS="1"):
        stack.publish(request(request_id="slow-1"))
        [result] = stack.results(1, timeout_s=120)
        [dead] = stack.dead_letters(1, timeout_s=120)
        assert stack.nothing_more(stack.results_subscription)
    assert result["status"] == "failed"
    assert result["error"]["code"] == "throttled"
    assert result["attempt"] == 5
    assert dead.attributes.get("CloudPubSubDeadLetterSourceDeliveryCount") == "5"
    assert moto.sent_messages() == []


def test_with_a_send_rate_limit_a_send_waits_for_the_recipients_sent_before_it(
    stack: Stack, moto: Any
) -> None:
    # At 1 recipient/s, four recipients leave a debt of three, 3 s, for the next send.
    four = ["a@example.org", "b@example.org", "c@example.org", "d@example.org"]
    with stack.running(EMAIL_WORKER_SEND_RATE_PER_S="1") as runtime:
        stack.publish(request(request_id="first", to=four))
        [first] = stack.results(1)
        stack.publish(request(request_id="second"))
        [second] = stack.results(1)
        waited_s = runtime.handler.metrics.send_rate_wait._value.get()
    assert first["status"] == second["status"] == "sent"
    assert 1 < waited_s <= 3  # less the time between the two sends
    assert len(moto.sent_messages()) == 2


def test_every_request_gets_exactly_one_result(stack: Stack) -> None:
    with stack.running():
        for n in range(20):
            stack.publish(request(request_id=f"r{n}"))
        stack.publish(b"garbage", kind="bad")
        results = stack.results(21)
        assert stack.nothing_more(stack.results_subscription)
    counts = Counter(r["request_id"] for r in results)
    assert all(c == 1 for c in counts.values())
    assert Counter(r["status"] for r in results) == {"sent": 20, "rejected": 1}


class EndingStreams:
    """A subscriber whose streams each deliver some messages and then end with a retryable
    error: the emulator cannot be made to end a stream that way, Google's front end can."""

    def __init__(self, deliveries: list[int]) -> None:
        self._deliveries = list(deliveries)

    def subscription_path(self, project: str, subscription: str) -> str:
        return f"projects/{project}/subscriptions/{subscription}"

    def subscribe(self, path: str, callback: Any, **_: Any) -> Future[None]:
        for n in range(self._deliveries.pop(0)):
            callback(
                SimpleNamespace(
                    ack_id=f"ack-{n}",
                    data=b"{}",
                    attributes={},
                    message_id=str(n),
                    delivery_attempt=1,
                    ack=lambda: None,
                    nack=lambda: None,
                )
            )
        stream: Future[None] = Future()
        stream.set_exception(gexc.ServiceUnavailable("stream reset"))
        return stream


def run_through(streams: list[int]) -> tuple[list[float], list[Delivery], list[Any]]:
    """Run a pull worker over ``streams`` (messages each delivers before it ends); return the
    waits between them, the deliveries handled and the log events."""
    settings = Settings.from_env(
        {
            "GOOGLE_CLOUD_PROJECT": "test-project",
            "EMAIL_WORKER_ALLOWED_SERVICES": "billing",
            "EMAIL_WORKER_TENANCY": "shared",
        }
    )
    waits: list[float] = []

    def record(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == len(streams):
            worker.stop()

    handled: list[Delivery] = []

    def handle(delivery: Delivery, ack: Any, nack: Any, hold: Any = None) -> None:
        handled.append(delivery)
        ack()

    handle.stopping = threading.Event()  # type: ignore[attr-defined]
    handle.pauses = None  # type: ignore[attr-defined]
    worker = PullWorker(settings, cast(Handler, handle), EndingStreams(streams), wait=record)
    with capture_logs() as logs:
        assert worker.run() == 0
    return waits, handled, logs


def test_streams_that_keep_ending_are_reopened_with_a_doubling_wait() -> None:
    waits, _, logs = run_through([0] * 7)
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert [e["backoff_s"] for e in logs if e["event"] == "stream ended; pulling again"] == waits


def test_the_reconnect_wait_starts_again_after_a_stream_that_delivered_messages() -> None:
    waits, handled, _ = run_through([0, 0, 0, 2, 0, 0])
    assert len(handled) == 2
    assert waits == [1.0, 2.0, 4.0, 1.0, 2.0, 4.0]


def test_the_reconnect_wait_starts_again_after_a_stream_that_stayed_open(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each stream here stays open for at least one half-second poll of the run loop.
    monkeypatch.setattr("worker.transports.pull._HEALTHY_STREAM_S", 0.4)
    waits, _, _ = run_through([0, 0, 0])
    assert waits == [1.0, 1.0, 1.0]
