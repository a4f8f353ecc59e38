"""The push endpoint: Pub/Sub's envelope in, the shared pipeline, the decision as an HTTP answer.

End-to-end tests let the Pub/Sub emulator push to the app served by uvicorn; the rest post
envelopes to the app in process. Authentication is off here (the emulator cannot sign
requests); tests/transports/test_push_auth.py covers it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from tests.support import fault_proxy as faults
from tests.support.ports import LOOPBACK, free_port
from tests.support.pubsub_emulator import unique_name
from tests.support.push import (
    PushApp,
    create_push_subscription,
    delete_subscription,
    envelope,
    push_app_on,
)
from tests.support.worker_stack import Stack, make_stack, request
from worker.app.http_server import BackgroundServer
from worker.app.runtime import build_runtime
from worker.transports.push import MAX_BODY_BYTES, push_app


@pytest.fixture
def stack(pubsub_env: Any, fault_proxy: Any, tmp_path: Path) -> Stack:
    return make_stack(pubsub_env, tmp_path, fault_proxy.endpoint)


@pytest.fixture
def push(stack: Stack) -> Iterator[PushApp]:
    with push_app_on(stack) as app:
        yield app


@pytest.fixture
def served(stack: Stack) -> Iterator[tuple[str, Any]]:
    """The push app served by uvicorn on a free loopback port: (base URL, runtime)."""
    settings = stack.settings(EMAIL_WORKER_PUSH_AUTH="off")
    runtime = build_runtime(settings, subscription_readable=False)
    runtime.handler.deps.sleep = stack.sleeps.append
    server = BackgroundServer(
        push_app(runtime.handler, None, settings=runtime.settings),
        host=LOOPBACK,
        port=free_port(),
        shutdown_timeout_s=5,
    ).start()
    try:
        yield f"http://{LOOPBACK}:{server.port}", runtime
    finally:
        server.stop()
        runtime.close()


# -- through the emulator ------------------------------------------------------------


def test_a_message_pushed_by_the_emulator_is_sent_and_its_result_published(
    stack: Stack, served: tuple[str, Any], moto: Any
) -> None:
    base_url, _ = served
    subscription = create_push_subscription(stack, f"{base_url}/pubsub/push")
    try:
        message_id = stack.publish(request(request_id="push-1"))
        [result] = stack.results(1)
    finally:
        delete_subscription(stack, subscription)
    [sent] = moto.sent_messages()
    assert result["status"] == "sent"
    assert result["request_id"] == "push-1"
    assert result["pubsub_message_id"] == message_id
    assert result["message_ids"] == [sent.message_id]
    assert sent.destinations == ["alice@example.org"]


def test_the_emulator_names_the_configured_push_subscription_so_its_pushes_are_sent(
    stack: Stack, moto: Any
) -> None:
    name = unique_name("push")
    settings = stack.settings(EMAIL_WORKER_PUSH_AUTH="off", EMAIL_WORKER_PUSH_SUBSCRIPTION=name)
    runtime = build_runtime(settings, subscription_readable=False)
    server = BackgroundServer(
        push_app(runtime.handler, None, settings=runtime.settings),
        host=LOOPBACK,
        port=free_port(),
        shutdown_timeout_s=5,
    ).start()
    try:
        subscription = create_push_subscription(
            stack, f"http://{LOOPBACK}:{server.port}/pubsub/push", name=name
        )
        try:
            stack.publish(request(request_id="push-named"))
            [result] = stack.results(1)
        finally:
            delete_subscription(stack, subscription)
    finally:
        server.stop()
        runtime.close()
    assert result["status"] == "sent"
    assert len(moto.sent_messages()) == 1


def test_a_rejected_request_is_answered_2xx_and_not_redelivered(
    stack: Stack, served: tuple[str, Any], moto: Any
) -> None:
    base_url, runtime = served
    subscription = create_push_subscription(stack, f"{base_url}/pubsub/push")
    try:
        stack.publish(request(subject=None), origin="push-test")
        [result] = stack.results(1)
        [dead] = stack.dead_letters(1)
        # The emulator pushes again at once after a non-2xx answer; give it the chance.
        assert stack.nothing_more(stack.results_subscription, wait_s=3)
    finally:
        delete_subscription(stack, subscription)
    registry = runtime.metrics.registry
    assert registry.get_sample_value("email_worker_push_responses_total", {"code": "204"}) == 1
    assert [
        s.value
        for m in registry.collect()
        if m.name == "email_worker_push_responses"
        for s in m.samples
        if s.name.endswith("_total")
    ] == [1]
    assert result["status"] == "rejected"
    assert result["error"]["code"] == "invalid_request"
    assert dead.attributes["origin"] == "push-test"
    assert moto.sent_messages() == []


# -- answers -------------------------------------------------------------------------


def test_a_sent_request_is_answered_204(push: PushApp, stack: Stack, moto: Any) -> None:
    response = push.post(envelope(request(request_id="r-1")))
    assert response.status_code == 204
    assert response.content == b""
    [result] = stack.results(1)
    assert result["request_id"] == "r-1"
    assert len(moto.sent_messages()) == 1


def test_the_delivery_attempt_of_the_envelope_reaches_the_result(
    push: PushApp, stack: Stack
) -> None:
    response = push.post(envelope(request(), message_id="77", delivery_attempt=2))
    assert response.status_code == 204
    [result] = stack.results(1)
    assert result["attempt"] == 2
    assert result["pubsub_message_id"] == "77"


def test_a_permanent_failure_is_answered_204_and_dead_lettered(
    push: PushApp, stack: Stack, moto: Any
) -> None:
    response = push.post(
        envelope(request(**{"from": "billing@unverified.example"}), attributes={"k": "v"})
    )
    assert response.status_code == 204
    [result] = stack.results(1)
    [dead] = stack.dead_letters(1)
    assert result["status"] == "failed"
    assert dead.attributes["email_worker_error_code"] == "identity_not_verified"
    assert dead.attributes["k"] == "v"
    assert moto.sent_messages() == []


def test_throttling_that_outlasts_the_retries_is_answered_429_and_publishes_nothing(
    stack: Stack, fault_proxy: Any, moto: Any
) -> None:
    fault_proxy.add_rule(faults.fail_always(faults.ses_error("TooManyRequestsException", 429)))
    with push_app_on(stack, EMAIL_WORKER_SEND_MAX_ATTEMPTS="1") as push:
        response = push.post(envelope(request(), delivery_attempt=1))
        assert response.status_code == 429
        assert response.json() == {"outcome": "retry", "error_code": "throttled"}
        assert stack.nothing_more(stack.results_subscription)
    assert moto.sent_messages() == []


def test_an_unavailable_provider_is_answered_503(stack: Stack, fault_proxy: Any) -> None:
    fault_proxy.add_rule(faults.fail_always(faults.ses_error("ServiceUnavailable", 503)))
    with push_app_on(stack, EMAIL_WORKER_SEND_MAX_ATTEMPTS="1") as push:
        response = push.post(envelope(request()))
    assert response.status_code == 503
    assert response.json()["outcome"] == "retry"


def test_on_the_last_attempt_a_failed_result_is_published_and_pubsub_is_left_to_dead_letter(
    stack: Stack, fault_proxy: Any, moto: Any
) -> None:
    fault_proxy.add_rule(faults.fail_always(faults.ses_error("TooManyRequestsException", 429)))
    overrides = {"EMAIL_WORKER_SEND_MAX_ATTEMPTS": "1", "EMAIL_WORKER_MAX_DELIVERY_ATTEMPTS": "5"}
    with push_app_on(stack, **overrides) as push:
        response = push.post(envelope(request(request_id="last"), delivery_attempt=5))
        [result] = stack.results(1)
    assert response.status_code == 429  # a nack: Pub/Sub's policy moves it to the dead letters
    assert result["status"] == "failed"
    assert result["error"]["code"] == "throttled"
    assert result["attempt"] == 5
    assert stack.nothing_more(stack.queue.dead_letter_subscription)  # Pub/Sub's job, not ours


def test_the_last_attempt_is_read_from_the_subscription_when_not_configured(
    stack: Stack,
) -> None:
    # The stack's subscription (EMAIL_WORKER_SUBSCRIPTION) has a policy of 5 attempts.
    with push_app_on(stack) as push:
        assert push.runtime.handler.max_delivery_attempts == 5


def test_an_unreadable_subscription_leaves_the_last_attempt_unknown_instead_of_failing(
    stack: Stack,
) -> None:
    with push_app_on(stack, EMAIL_WORKER_SUBSCRIPTION="no-such-subscription") as push:
        assert push.runtime.handler.max_delivery_attempts is None
        assert push.client.get("/readyz").status_code == 200


# -- refused before processing -------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b'"message"',
        b"{}",
        b'{"message": "hello"}',
        b'{"message": {"messageId": "1", "data": "***"}}',
        b'{"message": {"messageId": "1", "data": 42}}',
        b'{"message": {"messageId": "1", "data": "aGk=", "attributes": {"a": 1}}}',
        b'{"message": {"messageId": "1", "data": "aGk=", "attributes": ["a"]}}',
        b'{"message": {"data": "aGk="}}',
        b'{"message": {"messageId": "", "data": "aGk="}}',
        b'{"message": {"messageId": 1, "data": "aGk="}}',
        b'{"message": {"messageId": "1", "data": "aGk="}, "deliveryAttempt": 0}',
        b'{"message": {"messageId": "1", "data": "aGk="}, "deliveryAttempt": "2"}',
        b'{"message": {"messageId": "1", "data": "aGk="}, "deliveryAttempt": true}',
        b'{"message": {"messageId": "1", "data": "aGk="}, "subscription": 5}',
        b"\xff\xfe\x00",
        b"[" * 100_000 + b"]" * 100_000,
    ],
    ids=[
        "not-json",
        "array",
        "string",
        "no-message",
        "message-not-object",
        "data-not-base64",
        "data-not-string",
        "attribute-not-string",
        "attributes-not-object",
        "no-message-id",
        "empty-message-id",
        "numeric-message-id",
        "attempt-zero",
        "attempt-string",
        "attempt-bool",
        "subscription-number",
        "not-utf8",
        "deeply-nested",
    ],
)
def test_a_malformed_envelope_is_answered_400_and_not_processed(push: PushApp, body: bytes) -> None:
    response = push.client.post(
        "/pubsub/push", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]
    assert push.requests_processed() == 0


def test_a_deeply_nested_envelope_is_refused_before_it_is_parsed(
    push: PushApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    def must_not_parse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a body nested this deep must not reach json.loads")

    monkeypatch.setattr("worker.transports.push_envelope.json.loads", must_not_parse)
    response = push.client.post(
        "/pubsub/push",
        content=b"[" * 100_000 + b"]" * 100_000,
        headers={"Content-Type": "application/json"},
    )
    monkeypatch.undo()  # the json module itself was patched; the client needs it back
    assert response.status_code == 400
    assert response.json()["error"] == "the body nests arrays and objects too deep"


def test_an_envelope_without_data_is_processed_and_rejected_as_not_json(
    push: PushApp, stack: Stack
) -> None:
    document = {"message": {"messageId": "5", "attributes": {"only": "attributes"}}}
    response = push.post(document)
    assert response.status_code == 204
    [result] = stack.results(1)
    assert result["status"] == "rejected"
    assert result["error"]["code"] == "invalid_json"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_that_is_not_declared_json_is_answered_415(
    push: PushApp, content_type: str | None
) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = push.client.post("/pubsub/push", content=b"{}", headers=headers)
    assert response.status_code == 415
    assert push.requests_processed() == 0


def test_json_with_a_charset_is_accepted(push: PushApp) -> None:
    response = push.client.post(
        "/pubsub/push",
        content=b'{"message": {"messageId": "1", "data": "e30="}}',
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 204


def test_a_body_larger_than_pubsub_can_push_is_answered_413(push: PushApp) -> None:
    response = push.client.post(
        "/pubsub/push",
        content=b" " * (MAX_BODY_BYTES + 1),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert push.requests_processed() == 0


def test_an_oversize_body_without_a_length_is_cut_off_with_413(push: PushApp) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(MAX_BODY_BYTES // (1024 * 1024) + 1):
            yield b" " * (1024 * 1024)

    response = push.client.post(
        "/pubsub/push", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413


def test_an_oversize_declared_length_is_refused_before_the_body_is_read(push: PushApp) -> None:
    response = push.client.post(
        "/pubsub/push",
        content=b"{}",
        headers={"Content-Type": "application/json", "Content-Length": str(MAX_BODY_BYTES + 1)},
    )
    assert response.status_code == 413


def test_a_push_while_shutting_down_is_answered_503_and_not_processed(
    push: PushApp, moto: Any
) -> None:
    push.runtime.handler.stopping.set()
    response = push.post(envelope(request()))
    assert response.status_code == 503
    assert push.requests_processed() == 0
    assert moto.sent_messages() == []


def test_only_post_is_allowed_on_the_push_path(push: PushApp) -> None:
    assert push.client.get("/pubsub/push").status_code == 405


# -- health --------------------------------------------------------------------------


def test_healthz_answers_200(push: PushApp) -> None:
    response = push.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_answers_200_once_built_and_503_when_stopping(push: PushApp) -> None:
    assert push.client.get("/readyz").status_code == 200
    push.runtime.handler.stopping.set()
    response = push.client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "not ready"}


def stall_ses_send(fault_proxy: Any, seconds: float) -> threading.Event:
    """Make SES sends take ``seconds``; the event is set when one arrives."""
    reached = threading.Event()

    def stall(proxied: Any) -> None:
        if proxied.is_ses_send:
            reached.set()
            time.sleep(seconds)

    fault_proxy.add_rule(stall)
    return reached


def test_a_slow_send_does_not_block_other_requests(
    served: tuple[str, Any], fault_proxy: Any
) -> None:
    base_url, runtime = served
    reached = stall_ses_send(fault_proxy, 3.0)
    answers: list[int] = []

    def slow_push() -> None:
        with httpx.Client(base_url=base_url, timeout=30) as client:
            answers.append(client.post("/pubsub/push", json=envelope(request())).status_code)

    pushing = threading.Thread(target=slow_push)
    pushing.start()
    try:
        assert reached.wait(10), "the push never reached SES"
        started = time.monotonic()
        health = httpx.get(f"{base_url}/healthz", timeout=5)
        elapsed = time.monotonic() - started
        in_flight = runtime.metrics.registry.get_sample_value("email_worker_in_flight")
    finally:
        pushing.join(timeout=30)
    assert health.status_code == 200
    assert elapsed < 1.0
    assert in_flight == 1
    assert answers == [204]


# -- the subscription check ----------------------------------------------------------


def test_a_push_from_another_subscription_is_refused_with_403_and_not_processed(
    stack: Stack, moto: Any
) -> None:
    with push_app_on(stack, EMAIL_WORKER_PUSH_SUBSCRIPTION="email-requests-push") as app:
        other = "projects/test-project/subscriptions/someone-elses"
        response = app.post(envelope(request(), subscription=other))
        assert response.status_code == 403
        assert app.requests_processed() == 0
    assert moto.sent_messages() == []


def test_a_push_without_a_subscription_is_refused_when_one_is_configured(stack: Stack) -> None:
    document = envelope(request())
    del document["subscription"]
    with push_app_on(stack, EMAIL_WORKER_PUSH_SUBSCRIPTION="email-requests-push") as app:
        assert app.post(document).status_code == 403
        assert app.requests_processed() == 0


def test_a_push_from_the_configured_subscription_is_processed(stack: Stack, moto: Any) -> None:
    full = "projects/test-project/subscriptions/email-requests-push"
    for n, configured in enumerate(("email-requests-push", full)):
        with push_app_on(stack, EMAIL_WORKER_PUSH_SUBSCRIPTION=configured) as app:
            # Two messages: one message pushed twice is sent once (the request ledger).
            pushed = envelope(request(), message_id=f"100{n}", subscription=full)
            assert app.post(pushed).status_code == 204
    assert len(moto.sent_messages()) == 2
