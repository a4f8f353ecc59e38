"""Each service reads its own results, on its own subscription on the results topic.

``email-worker setup`` makes ``email-results-SERVICE`` for every allowed service, filtered on
the ``service_id`` attribute exactly as terraform's ``google_pubsub_subscription.results``
filters it, and ``EmailClient.pull_results`` reads it.

The Pub/Sub emulator stores a subscription's filter but does not apply it: every subscription
on the results topic gets every result. So the end-to-end test shows what the client hands a
service (its own results, never another's), and the filter itself is compared with
terraform's; in Google Cloud the filter keeps the other services' results out of the
subscription altogether, and IAM (tests/project/test_terraform.py) keeps the services off each
other's subscriptions.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.project.test_terraform import TF
from tests.support.pubsub_emulator import PubSubEmulator, unique_name
from tests.support.worker_stack import ROLE, Stack, make_stack, request
from worker.app.cli import main
from worker.client import EmailClient, ReceivedResult
from worker.config.names import (
    RESULTS_SUBSCRIPTION_TEMPLATE,
    colliding_name,
    results_filter,
    results_subscription_for,
)
from worker.config.settings import Settings, SettingsError
from worker.formats.result import EmailResult


def run_setup(emulator: PubSubEmulator, env: dict[str, str]) -> Any:
    full_env = {"PUBSUB_EMULATOR_HOST": emulator.host, "GOOGLE_CLOUD_PROJECT": emulator.project_id}
    return CliRunner().invoke(main, ["setup"], env={**full_env, **env})


def get_subscription(emulator: PubSubEmulator, name: str) -> Any:
    path = f"projects/{emulator.project_id}/subscriptions/{name}"
    return emulator.subscriber.get_subscription(request={"subscription": path})


def services() -> tuple[str, str]:
    """Two service ids no other test uses: results subscription names are not configurable."""
    return unique_name("alpha"), unique_name("beta")


@pytest.fixture
def names() -> dict[str, str]:
    suffix = unique_name("r")
    return {
        "EMAIL_WORKER_RESULTS_TOPIC": f"results-{suffix}",
        "EMAIL_WORKER_DEAD_LETTER_TOPIC": f"dead-letter-{suffix}",
        "EMAIL_WORKER_DEAD_LETTER_SUBSCRIPTION": f"ops-{suffix}",
        "EMAIL_WORKER_SERVICE_TOPIC": f"in-{suffix}-{{service}}",
        "EMAIL_WORKER_SERVICE_SUBSCRIPTION": f"in-{suffix}-{{service}}-worker",
        "EMAIL_WORKER_REPLAY_TOPIC": f"replays-{suffix}",
        "EMAIL_WORKER_REPLAY_SUBSCRIPTION": f"replays-{suffix}-worker",
        "EMAIL_WORKER_REQUESTS_TOPIC": f"requests-{suffix}",
        "EMAIL_WORKER_SUBSCRIPTION": f"worker-{suffix}",
    }


# -- the names and the filter, against terraform ------------------------------------------


def test_the_results_subscription_name_is_terraforms_default() -> None:
    type_ = TF.variables["pubsub_names"]["type"]
    assert f'results_subscription = optional(string, "{RESULTS_SUBSCRIPTION_TEMPLATE}")' in type_
    assert results_subscription_for("billing") == "email-results-billing"


def test_the_filter_is_the_one_terraform_sets_on_each_services_results_subscription() -> None:
    terraform = TF.resource("google_pubsub_subscription", "results")["filter"]
    terraform = terraform.replace('\\"', '"').replace("${each.key}", "billing")
    assert results_filter("billing") == terraform == 'attributes.service_id = "billing"'
    # The attribute the filter reads is the one every result carries.
    result = EmailResult.sent(
        request_id="r-1", service_id="billing", message_ids=[], pubsub_message_id="p-1"
    )
    assert result.pubsub_attributes()["service_id"] == "billing"


def test_a_service_whose_results_subscription_would_be_the_workers_own_is_a_settings_problem() -> (
    None
):
    env = {"EMAIL_WORKER_DEAD_LETTER_TOPIC": "email-results-dlq"}
    with pytest.raises(SettingsError, match="results subscription email-results-dlq is the"):
        Settings.from_env({**env, "EMAIL_WORKER_ALLOWED_SERVICES": "dlq"})
    message = colliding_name(Settings.from_env(env), "dlq")
    assert message is not None
    assert "EMAIL_WORKER_DEAD_LETTER_TOPIC" in message


# -- setup --------------------------------------------------------------------------------


def test_setup_creates_each_services_results_subscription_filtered_on_its_id(
    pubsub_env: PubSubEmulator, names: dict[str, str]
) -> None:
    alpha, beta = services()
    result = run_setup(pubsub_env, {**names, "EMAIL_WORKER_ALLOWED_SERVICES": f"{alpha},{beta}"})
    assert result.exit_code == 0, result.output
    results_topic = f"projects/{pubsub_env.project_id}/topics/{names['EMAIL_WORKER_RESULTS_TOPIC']}"
    for service in (alpha, beta):
        name = f"email-results-{service}"
        assert f"created  subscription  projects/{pubsub_env.project_id}/subscriptions/{name}" in (
            result.stdout
        )
        subscription = get_subscription(pubsub_env, name)
        assert subscription.topic == results_topic
        assert subscription.filter == f'attributes.service_id = "{service}"'
        assert not subscription.dead_letter_policy.dead_letter_topic


def test_with_shared_tenancy_setup_creates_the_results_subscriptions_too(
    pubsub_env: PubSubEmulator, names: dict[str, str]
) -> None:
    alpha, _ = services()
    env = {**names, "EMAIL_WORKER_TENANCY": "shared", "EMAIL_WORKER_ALLOWED_SERVICES": alpha}
    assert run_setup(pubsub_env, env).exit_code == 0
    subscription = get_subscription(pubsub_env, f"email-results-{alpha}")
    assert subscription.filter == f'attributes.service_id = "{alpha}"'


def test_an_existing_results_subscription_with_another_filter_is_reported_not_changed(
    pubsub_env: PubSubEmulator, names: dict[str, str]
) -> None:
    alpha, beta = services()
    topic = pubsub_env.create_topic(names["EMAIL_WORKER_RESULTS_TOPIC"])
    path = f"projects/{pubsub_env.project_id}/subscriptions/email-results-{alpha}"
    pubsub_env.subscriber.create_subscription(
        request={"name": path, "topic": topic, "filter": f'attributes.service_id = "{beta}"'}
    )
    result = run_setup(pubsub_env, {**names, "EMAIL_WORKER_ALLOWED_SERVICES": alpha})
    assert result.exit_code == 0, result.output
    assert f"exists   subscription  {path}" in result.stdout
    assert (
        f"its filter is 'attributes.service_id = \"{beta}\"', expected "
        f"'attributes.service_id = \"{alpha}\"'"
    ) in result.stderr
    assert "delete the subscription and run setup again" in result.stderr
    assert get_subscription(pubsub_env, f"email-results-{alpha}").filter == (
        f'attributes.service_id = "{beta}"'
    )


# -- the client ---------------------------------------------------------------------------


def test_pull_results_without_a_service_is_a_clear_error() -> None:
    client = EmailClient("my-project")  # the Pub/Sub clients are made on first use only
    with pytest.raises(ValueError, match="pull_results needs a service_id"):
        client.pull_results()


def test_the_client_names_the_results_subscription_like_terraform() -> None:
    client = EmailClient("my-project", default_service_id="billing")
    assert client.results_subscription_for("billing") == (
        "projects/my-project/subscriptions/email-results-billing"
    )
    renamed = EmailClient("my-project", results_subscription="results-of-{service}")
    assert renamed.results_subscription_for("shop") == (
        "projects/my-project/subscriptions/results-of-shop"
    )
    elsewhere = EmailClient(
        "my-project", results_subscription="projects/p/subscriptions/r-{service}"
    )
    assert elsewhere.results_subscription_for("shop") == "projects/p/subscriptions/r-shop"


def test_an_acknowledged_result_is_not_delivered_again_and_no_result_is_passed_over(
    pubsub_env: PubSubEmulator, names: dict[str, str]
) -> None:
    alpha, _ = services()
    assert run_setup(pubsub_env, {**names, "EMAIL_WORKER_ALLOWED_SERVICES": alpha}).exit_code == 0
    topic = f"projects/{pubsub_env.project_id}/topics/{names['EMAIL_WORKER_RESULTS_TOPIC']}"
    pubsub_env.publish(topic, b"not a result", service_id=alpha)
    result = EmailResult.sent(
        request_id="r-1", service_id=alpha, message_ids=["m-1"], pubsub_message_id="p-1"
    )
    pubsub_env.publish(topic, result.to_json_bytes(), **result.pubsub_attributes())
    with EmailClient(pubsub_env.project_id, results_topic=topic, default_service_id=alpha) as c:
        [received] = collect(c, alpha, 1)
        assert received.result.request_id == "r-1"
        received.ack()
        assert c.pull_results(timeout_s=2) == []


# -- end to end: the worker's results reach their own service only ------------------------


@pytest.fixture
def stack(pubsub_env: Any, fault_proxy: Any, tmp_path: Path) -> Stack:
    return make_stack(pubsub_env, tmp_path, fault_proxy.endpoint)


def collect(client: EmailClient, service: str, count: int) -> list[ReceivedResult]:
    """``count`` of ``service``'s results from its results subscription, acknowledged."""
    deadline = time.monotonic() + 60
    collected: list[ReceivedResult] = []
    while len(collected) < count:
        assert time.monotonic() < deadline, f"only {len(collected)} of {count} results arrived"
        for received in client.pull_results(service, timeout_s=5):
            received.ack()
            collected.append(received)
    return collected


def test_each_services_results_subscription_yields_its_own_results_never_the_others(
    stack: Stack, moto: Any
) -> None:
    alpha, beta = services()
    stack.env.update(
        EMAIL_WORKER_TENANCY="per-service", EMAIL_WORKER_ALLOWED_SERVICES=f"{alpha},{beta}"
    )
    stack.env.update(
        EMAIL_WORKER_SERVICE_TOPIC=f"{alpha}-in-{{service}}",
        EMAIL_WORKER_SERVICE_SUBSCRIPTION=f"{alpha}-in-{{service}}-worker",
        EMAIL_WORKER_REPLAY_TOPIC=f"{alpha}-replays",
        EMAIL_WORKER_REPLAY_SUBSCRIPTION=f"{alpha}-replays-worker",
    )
    setup = CliRunner().invoke(
        main, ["setup"], env={**stack.env, "PUBSUB_EMULATOR_HOST": stack.emulator.host}
    )
    assert setup.exit_code == 0, setup.output
    for service in (alpha, beta):
        stack.write_service(
            service,
            service_role_arn=ROLE,
            default_from_address="billing@example.com",
            allowed_from_domains=["example.com"],
        )
    client = EmailClient(
        stack.emulator.project_id,
        service_topic=stack.env["EMAIL_WORKER_SERVICE_TOPIC"],
        results_topic=stack.results_topic,
        timeout_s=10,
    )
    with stack.running(), client:
        for number in range(3):
            for service in (alpha, beta):
                client.publish(request(service_id=service, request_id=f"{service}-{number}"))
        # A refusal too: beta names alpha on beta's own topic, under alpha's request id.
        beta_topic = client.topic_for(beta)
        forged = request(service_id=alpha, request_id=f"{alpha}-0")
        stack.emulator.publish(beta_topic, json.dumps(forged).encode())
        alphas = collect(client, alpha, 3)
        betas = collect(client, beta, 4)
        assert client.pull_results(alpha, timeout_s=3) == []
        assert client.pull_results(beta, timeout_s=3) == []
    assert {(r.result.service_id, r.result.request_id, r.result.status) for r in alphas} == {
        (alpha, f"{alpha}-{n}", "sent") for n in range(3)
    }
    assert {(r.result.service_id, r.result.status) for r in betas} == {
        (beta, "sent"),
        (beta, "rejected"),
    }
    assert {r.result.request_id for r in betas} == {f"{beta}-{n}" for n in range(3)} | {
        f"{alpha}-0"
    }
    for service in (alpha, beta):
        subscription = get_subscription(stack.emulator, f"email-results-{service}")
        assert subscription.topic == stack.results_topic
        assert subscription.filter == results_filter(service)
