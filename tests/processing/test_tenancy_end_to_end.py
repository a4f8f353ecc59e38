"""Per-service tenancy end to end: two services, each with its own topic, on the Pub/Sub
emulator and moto, with the pull worker, the push endpoint and the operators' replay.

Service ``shop`` can publish only to its own topic (in production, IAM enforces that; here
the test publishes where a service could). Whatever it publishes, nothing is sent as
``billing``; both services' own requests are sent, and an operator's replay sends only what a
service published, once.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.support.cli_runner import await_listed, cli_env, invoke
from tests.support.push import push_app_on
from tests.support.worker_stack import Stack, make_stack, make_tenant_stack, request
from worker.app.runtime import build_runtime
from worker.client import EmailClient, RequestRejected


@pytest.fixture
def stack(pubsub_env: Any, fault_proxy: Any, tmp_path: Path) -> Stack:
    return make_tenant_stack(pubsub_env, tmp_path, fault_proxy.endpoint)


def senders(moto: Any) -> list[str]:
    return [message.source for message in moto.sent_messages()]


def shop_request(**fields: Any) -> dict[str, Any]:
    return request(service_id="shop", **{"from": "Shop <shop@example.com>", **fields})


def test_each_services_own_requests_are_sent_as_that_service(stack: Stack, moto: Any) -> None:
    with stack.running():
        stack.publish_as("billing", request(request_id="b-1"))
        stack.publish_as("shop", shop_request(request_id="s-1"))
        results = stack.results(2)
    assert {(r["service_id"], r["status"]) for r in results} == {
        ("billing", "sent"),
        ("shop", "sent"),
    }
    assert sorted(senders(moto)) == ["billing@example.com", "shop@example.com"]


def test_a_service_that_publishes_a_request_as_another_is_refused_and_nothing_is_sent(
    stack: Stack, moto: Any
) -> None:
    with stack.running():
        # Shop's request names billing and billing's From: what a shared topic would send.
        stack.publish_as("shop", request(request_id="impostor-1"))
        [result] = stack.results(1)
        [dead] = stack.dead_letters(1)
    assert (result["status"], result["error"]["code"]) == ("rejected", "publisher_not_allowed")
    assert result["service_id"] == "shop"
    assert dead.attributes["email_worker_error_code"] == "publisher_not_allowed"
    assert moto.sent_messages() == []


def test_a_request_forged_on_the_replay_topic_is_refused_and_not_sent(
    stack: Stack, moto: Any
) -> None:
    assert stack.replay_topic is not None
    forged = json.dumps(request(request_id="never-published")).encode()
    with stack.running():
        stack.emulator.publish(stack.replay_topic, forged, email_worker_replay_count="1")
        [dead] = stack.dead_letters(1)
    assert dead.attributes["email_worker_error_code"] == "publisher_not_allowed"
    assert moto.sent_messages() == []


def test_a_forged_replay_puts_no_result_into_the_named_services_results(stack: Stack) -> None:
    # The refusal is the operators' (dead letter, log): billing never asked for anything.
    assert stack.replay_topic is not None
    forged = json.dumps(request(request_id="order-1842")).encode()
    with stack.running():
        stack.emulator.publish(stack.replay_topic, forged, email_worker_service_id="billing")
        [dead] = stack.dead_letters(1)
        assert stack.nothing_more(stack.results_subscription)
    assert dead.attributes["email_worker_service_id"] == "billing"


def test_a_dead_letter_replayed_by_an_operator_is_sent_once(stack: Stack, moto: Any) -> None:
    env = cli_env(stack)
    unverified = request(request_id="unverified-1", **{"from": "billing@unverified.example"})
    with stack.running():
        stack.publish_as("billing", unverified)
        [failed] = stack.results(1)
    assert failed["error"]["code"] == "identity_not_verified"
    [entry] = await_listed(env, 1)
    moto.verify_email_identity("unverified.example")
    with stack.running():
        replay = invoke(env, "dlq", "replay", "--all", "--yes")
        assert replay.exit_code == 0, replay.output
        assert "replays" in replay.stdout  # to the replay topic, not a service's
        [sent] = stack.results(1)
        # The same dead letter replayed again (an operator's export, say) sends nothing more.
        assert stack.replay_topic is not None
        stack.emulator.publish(
            stack.replay_topic,
            json.dumps(unverified).encode(),
            email_worker_service_id="billing",
            email_worker_request_id="unverified-1",
        )
        [again] = stack.results(1)
    assert (sent["status"], again["status"]) == ("sent", "sent")
    assert again["message_ids"] == sent["message_ids"]
    assert len(moto.sent_messages()) == 1
    assert entry["request_id"] == "unverified-1"


def envelope(data: dict[str, Any], subscription: str, message_id: str = "p-1") -> dict[str, Any]:
    encoded = base64.b64encode(json.dumps(data).encode()).decode()
    return {
        "message": {"data": encoded, "messageId": message_id},
        "subscription": subscription,
        "deliveryAttempt": 1,
    }


def subscription_path(stack: Stack, name: str) -> str:
    return f"projects/{stack.emulator.project_id}/subscriptions/{name}"


def test_a_push_is_attributed_to_the_service_whose_subscription_pushed_it(
    stack: Stack, moto: Any
) -> None:
    settings = stack.settings()
    shop = subscription_path(stack, settings.topics.service_subscription_for("shop"))
    billing = subscription_path(stack, settings.topics.service_subscription_for("billing"))
    with push_app_on(stack) as push:
        impostor = push.client.post("/pubsub/push", json=envelope(request(), shop, "p-1"))
        genuine = push.client.post("/pubsub/push", json=envelope(request(), billing, "p-2"))
        results = {r["pubsub_message_id"]: r for r in stack.results(2)}
    assert (impostor.status_code, genuine.status_code) == (204, 204)
    assert results["p-1"]["error"]["code"] == "publisher_not_allowed"
    assert results["p-2"]["status"] == "sent"
    assert senders(moto) == ["billing@example.com"]


def test_a_push_from_a_subscription_the_worker_does_not_read_is_refused(stack: Stack) -> None:
    with push_app_on(stack) as push:
        response = push.client.post(
            "/pubsub/push", json=envelope(request(), subscription_path(stack, "elsewhere"))
        )
    assert response.status_code == 403


def test_the_client_publishes_each_request_to_its_services_own_topic(stack: Stack) -> None:
    client = EmailClient(
        stack.emulator.project_id,
        service_topic=stack.env["EMAIL_WORKER_SERVICE_TOPIC"],
        results_topic=stack.results_topic,
        timeout_s=10,
    )
    with stack.running(), client:
        result = client.publish_and_wait(shop_request(request_id="client-1"), timeout_s=30)
    assert (result.status, result.service_id) == ("sent", "shop")


def test_the_client_refuses_a_request_with_no_service_to_route_it_by() -> None:
    client = EmailClient("p", publisher=object(), subscriber=object())
    with pytest.raises(RequestRejected, match="no service_id"):
        client.publish(request(service_id=None))


def test_send_publishes_to_the_named_services_own_topic(stack: Stack, moto: Any) -> None:
    with stack.running():
        result = invoke(
            cli_env(stack),
            "send",
            "--service",
            "shop",
            "--from",
            "shop@example.com",
            "--to",
            "me@example.org",
            "--subject",
            "Hi",
            "--text",
            "Hello",
            "--wait",
        )
    assert result.exit_code == 0, result.output
    assert senders(moto) == ["shop@example.com"]


def test_a_worker_that_trusts_the_request_body_says_so_at_start(
    pubsub_env: Any, tmp_path: Path
) -> None:
    shared = make_stack(pubsub_env, tmp_path, "")
    with capture_logs() as logs:
        build_runtime(shared.settings()).close()
    [warning] = [e for e in logs if "shared tenancy" in e["event"]]
    assert warning["log_level"] == "warning"
    assert "any principal that may publish" in warning["event"]


def test_a_per_service_worker_names_the_services_it_reads_for_at_start(stack: Stack) -> None:
    with capture_logs() as logs:
        build_runtime(stack.settings()).close()
    [started] = [e for e in logs if e["event"].startswith("per-service tenancy")]
    assert started["services"] == ["billing", "shop"]
    assert not [e for e in logs if "shared tenancy" in e["event"]]
