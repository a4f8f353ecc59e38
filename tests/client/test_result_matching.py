"""A waiting client takes only its own service's result for its request id.

Every service's results share one topic, and request ids are chosen by the services (an order
number): service ``shop`` can publish, on its own topic, a request naming ``billing`` with
billing's request id, and the worker answers it with a refusal for ``shop`` under that request
id. Billing's waiting client (``EmailClient`` and ``email-worker send --wait``) must pass over
that refusal and return billing's own result. The Pub/Sub emulator ignores subscription
filters, so these tests show the client's own check.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli_runner import cli_env, invoke
from tests.support.worker_stack import Stack, make_tenant_stack, request
from worker.client import EmailClient
from worker.formats.result import EmailResult


@pytest.fixture
def stack(pubsub_env: Any, fault_proxy: Any, tmp_path: Path) -> Stack:
    return make_tenant_stack(pubsub_env, tmp_path, fault_proxy.endpoint)


def billing_client(stack: Stack) -> EmailClient:
    return EmailClient(
        stack.emulator.project_id,
        service_topic=stack.env["EMAIL_WORKER_SERVICE_TOPIC"],
        results_topic=stack.results_topic,
        default_service_id="billing",
        timeout_s=10,
    )


def test_a_waiting_client_is_not_handed_another_services_refusal_for_its_request_id(
    stack: Stack,
) -> None:
    with (
        stack.running(),
        billing_client(stack) as client,
        client.expect_result("order-1842") as pending,
    ):
        # Shop names billing and billing's request id, on shop's own topic: refused as shop.
        stack.publish_as("shop", request(request_id="order-1842"))
        [refusal] = stack.results(1)
        client.publish(request(request_id="order-1842"))
        result = pending.wait(60)
    assert (refusal["service_id"], refusal["status"]) == ("shop", "rejected")
    assert (result.service_id, result.status) == ("billing", "sent")


def test_publish_and_wait_returns_its_own_services_result(stack: Stack) -> None:
    with stack.running(), billing_client(stack) as client:
        result = client.publish_and_wait(request(request_id="order-7"), timeout_s=60)
    assert (result.service_id, result.status) == ("billing", "sent")


def test_the_temporary_subscription_filters_on_the_service_and_the_request_id(
    stack: Stack,
) -> None:
    with billing_client(stack) as client, client.expect_result("order-9") as pending:
        found = stack.emulator.subscriber.get_subscription(
            request={"subscription": pending.subscription}
        )
    assert found.filter == 'attributes.request_id = "order-9" AND attributes.service_id = "billing"'


def test_a_service_named_when_awaiting_overrides_the_clients_default(stack: Stack) -> None:
    with billing_client(stack) as client, client.expect_result("o-3", service_id="shop") as pending:
        publish_result(stack, "o-3", "billing", "rejected")
        publish_result(stack, "o-3", "shop", "sent")
        result = pending.wait(30)
    assert (result.service_id, result.status) == ("shop", "sent")


def publish_result(stack: Stack, request_id: str, service_id: str, status: str) -> None:
    if status == "sent":
        result = EmailResult.sent(
            request_id=request_id, service_id=service_id, message_ids=["m-1"], pubsub_message_id="1"
        )
    else:
        result = EmailResult.for_error(
            "publisher_not_allowed",
            "not yours",
            request_id=request_id,
            service_id=service_id,
            pubsub_message_id="1",
        )
    stack.emulator.publish(
        stack.results_topic, result.to_json_bytes(), **result.pubsub_attributes()
    )


def await_waiting_subscription(stack: Stack, timeout_s: float = 30.0) -> None:
    """Until ``send --wait`` has made its temporary subscription on the results topic."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        names = stack.emulator.publisher.list_topic_subscriptions(
            request={"topic": stack.results_topic}
        )
        if any("email-worker-wait-" in name for name in names):
            return
        time.sleep(0.1)
    raise AssertionError("send --wait made no subscription on the results topic")


def test_send_wait_passes_over_another_services_result_for_its_request_id(stack: Stack) -> None:
    # No worker runs: the two results are published by hand, the impostor's first.
    outcome: dict[str, Any] = {}
    hello = ("--to", "me@example.org", "--subject", "Hi", "--text", "Hello")
    command = threading.Thread(
        target=lambda: outcome.update(
            result=invoke(
                cli_env(stack), "send", *hello, "--service", "billing",
                "--request-id", "order-5", "--wait", "--timeout", "30", "--json",
            )
        )
    )  # fmt: skip
    command.start()
    await_waiting_subscription(stack)
    publish_result(stack, "order-5", "shop", "rejected")
    publish_result(stack, "order-5", "billing", "sent")
    command.join(60)
    result = outcome["result"]
    assert result.exit_code == 0, result.output
    assert '"service_id": "billing"' in result.stdout


def test_a_waiting_client_passes_over_a_scheduled_result_to_the_final_one(stack: Stack) -> None:
    with billing_client(stack) as client, client.expect_result("o-5") as pending:
        scheduled = EmailResult(
            request_id="o-5",
            service_id="billing",
            status="scheduled",
            pubsub_message_id="1",
            completed_at=datetime.now(UTC),
            send_at="2027-01-31T09:00:00.000Z",
        )
        stack.emulator.publish(
            stack.results_topic, scheduled.to_json_bytes(), **scheduled.pubsub_attributes()
        )
        publish_result(stack, "o-5", "billing", "sent")
        result = pending.wait(30)
    assert result.status == "sent"
