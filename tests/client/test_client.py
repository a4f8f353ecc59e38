"""worker.client: building and checking requests locally, publishing them, and awaiting their
results through a temporary subscription (emulator, and the worker with moto)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.pubsub_emulator import PubSubEmulator
from tests.support.worker_stack import Stack, make_stack, request
from worker.client import (
    MAX_REQUEST_BYTES,
    AttachmentSpec,
    EmailClient,
    EmailRequestSpec,
    RequestRejected,
    ResultTimeout,
    prepare_request,
)
from worker.formats.result import EmailResult

# -- local: specs and checks --------------------------------------------------------------


def test_a_spec_becomes_a_v1_document_without_empty_fields() -> None:
    spec = EmailRequestSpec(
        to=["a@example.org"], subject="Hi", text="Hello", sender="b@example.com"
    )
    assert spec.to_document() == {
        "version": 1,
        "from": "b@example.com",
        "to": ["a@example.org"],
        "subject": "Hi",
        "text": "Hello",
    }


def test_attachments_are_base64_encoded_in_the_document() -> None:
    spec = EmailRequestSpec(
        to=["a@example.org"],
        subject="Hi",
        text="x",
        attachments=[AttachmentSpec("a.txt", b"hello", "text/plain")],
    )
    assert spec.to_document()["attachments"] == [
        {"filename": "a.txt", "content_type": "text/plain", "content_base64": "aGVsbG8="}
    ]


def test_an_attachment_from_a_path_gets_its_type_from_the_name(tmp_path: Path) -> None:
    (tmp_path / "invoice.pdf").write_bytes(b"%PDF")
    (tmp_path / "logs.tar.gz").write_bytes(b"\x1f\x8b")
    pdf = AttachmentSpec.from_path(tmp_path / "invoice.pdf")
    archive = AttachmentSpec.from_path(tmp_path / "logs.tar.gz")
    assert (pdf.filename, pdf.content_type, pdf.content) == (
        "invoice.pdf",
        "application/pdf",
        b"%PDF",
    )
    assert archive.content_type == "application/octet-stream"


def test_a_request_without_an_id_gets_a_uuid() -> None:
    request_id, data = prepare_request(request())
    assert uuid.UUID(request_id)
    assert json.loads(data)["request_id"] == request_id


def test_a_given_request_id_is_kept() -> None:
    request_id, data = prepare_request(request(request_id="inv-1"))
    assert request_id == "inv-1"
    assert json.loads(data)["request_id"] == "inv-1"


def test_the_default_service_fills_in_a_missing_service_id() -> None:
    _, data = prepare_request(request(service_id=None), default_service_id="billing")
    assert json.loads(data)["service_id"] == "billing"


def test_without_any_service_the_request_is_left_to_the_workers_default() -> None:
    _, data = prepare_request(request(service_id=None))
    assert "service_id" not in json.loads(data)


@pytest.mark.parametrize(
    ("document", "code"),
    [
        (request(to=["not an address"]), "invalid_address"),
        (request(subject="Hi\r\nBcc: x@example.org"), "header_injection"),
        (request(text=None), "invalid_request"),
        (request(version=2), "unsupported_version"),
    ],
    ids=["address", "injection", "no-body", "version"],
)
def test_a_request_the_worker_would_reject_is_rejected_locally(
    document: dict[str, Any], code: str
) -> None:
    with pytest.raises(RequestRejected) as caught:
        prepare_request(document)
    assert caught.value.code == code


def test_a_request_over_pubsubs_size_limit_is_rejected_locally() -> None:
    with pytest.raises(RequestRejected) as caught:
        prepare_request(request(text="x" * (MAX_REQUEST_BYTES + 1)))
    assert caught.value.code == "message_too_large"


class RecordingPublisher:
    def __init__(self) -> None:
        self.published: list[Any] = []

    def publish(self, *args: Any, **kwargs: Any) -> Any:
        self.published.append((args, kwargs))
        raise AssertionError("must not publish")


def test_a_rejected_request_is_not_published() -> None:
    publisher = RecordingPublisher()
    client = EmailClient("p", publisher=publisher, subscriber=object())
    with pytest.raises(RequestRejected):
        client.publish(request(to=["nope"]))
    assert publisher.published == []


# -- on the emulator ----------------------------------------------------------------------


@pytest.fixture
def stack(pubsub_env: Any, fault_proxy: Any, tmp_path: Path) -> Stack:
    return make_stack(pubsub_env, tmp_path, fault_proxy.endpoint)


def client_for(stack: Stack) -> EmailClient:
    return EmailClient(
        stack.emulator.project_id,
        requests_topic=stack.queue.topic,
        results_topic=stack.results_topic,
        timeout_s=10,
    )


def subscriptions_of(emulator: PubSubEmulator, topic: str) -> list[str]:
    response = emulator.publisher.list_topic_subscriptions(request={"topic": topic})
    return list(response)


def test_publish_puts_the_request_on_the_requests_topic(stack: Stack) -> None:
    spec = EmailRequestSpec(to=["a@example.org"], subject="Hi", text="Hello", service_id="billing")
    with client_for(stack) as client:
        request_id = client.publish(spec)
    [received] = stack.emulator.pull(stack.queue.subscription)
    assert json.loads(received.message.data) == {**spec.to_document(), "request_id": request_id}


def test_publish_and_wait_returns_the_sent_result(stack: Stack, moto: Any) -> None:
    spec = EmailRequestSpec(to=["a@example.org"], subject="Hi", text="Hello", service_id="billing")
    with stack.running(), client_for(stack) as client:
        result = client.publish_and_wait(spec, timeout_s=60)
    [sent] = moto.sent_messages()
    assert isinstance(result, EmailResult)
    assert result.status == "sent"
    assert list(result.message_ids) == [sent.message_id]


def test_publish_and_wait_returns_a_failed_result_too(stack: Stack) -> None:
    document = request(**{"from": "billing@unverified.example"})
    with stack.running(), client_for(stack) as client:
        result = client.publish_and_wait(document, timeout_s=60)
    assert result.status == "failed"
    assert result.error is not None
    assert result.error.code == "identity_not_verified"


def test_without_a_worker_waiting_times_out_and_deletes_its_subscription(stack: Stack) -> None:
    before = subscriptions_of(stack.emulator, stack.results_topic)
    with client_for(stack) as client, pytest.raises(ResultTimeout) as caught:
        client.publish_and_wait(request(request_id="lonely-1"), timeout_s=2)
    assert caught.value.request_id == "lonely-1"
    assert subscriptions_of(stack.emulator, stack.results_topic) == before


def test_the_temporary_subscription_filters_on_the_request_id_and_is_deleted_afterwards(
    stack: Stack,
) -> None:
    before = subscriptions_of(stack.emulator, stack.results_topic)
    with client_for(stack) as client, client.expect_result("inv-7") as pending:
        found = stack.emulator.subscriber.get_subscription(
            request={"subscription": pending.subscription}
        )
        assert found.filter == 'attributes.request_id = "inv-7"'
        assert pending.subscription in subscriptions_of(stack.emulator, stack.results_topic)
    assert subscriptions_of(stack.emulator, stack.results_topic) == before


def test_the_temporary_subscription_is_deleted_after_an_interruption(stack: Stack) -> None:
    before = subscriptions_of(stack.emulator, stack.results_topic)
    client = client_for(stack)
    with pytest.raises(KeyboardInterrupt), client.expect_result("inv-8"):
        raise KeyboardInterrupt
    client.close()
    assert subscriptions_of(stack.emulator, stack.results_topic) == before


def publish_result(stack: Stack, request_id: str, status: str = "sent") -> None:
    if status == "sent":
        result = EmailResult.sent(
            request_id=request_id, service_id="billing", message_ids=["m-1"], pubsub_message_id="1"
        )
    else:
        result = EmailResult.for_error(
            "throttled", "slow", request_id=request_id, service_id="billing", pubsub_message_id="1"
        )
    stack.emulator.publish(
        stack.results_topic, result.to_json_bytes(), **result.pubsub_attributes()
    )


def test_results_for_other_requests_are_passed_over(stack: Stack) -> None:
    # The emulator does not apply subscription filters, so this is checked by the client too.
    with client_for(stack) as client, client.expect_result("mine") as pending:
        publish_result(stack, "someone-else", status="failed")
        publish_result(stack, "mine")
        result = pending.wait(30)
    assert result.request_id == "mine"
    assert result.status == "sent"


def test_a_request_id_with_quotes_is_awaited_without_a_filter(stack: Stack) -> None:
    with client_for(stack) as client, client.expect_result('say "hi"') as pending:
        found = stack.emulator.subscriber.get_subscription(
            request={"subscription": pending.subscription}
        )
        assert found.filter == ""
        publish_result(stack, 'say "hi"')
        assert pending.wait(30).request_id == 'say "hi"'
