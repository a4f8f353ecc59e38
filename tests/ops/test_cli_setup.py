"""``email-worker setup`` against the Pub/Sub emulator: what it creates, and that it is
idempotent. Every test uses its own resource names."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from click.testing import CliRunner

from tests.support.ports import free_port
from tests.support.pubsub_emulator import PubSubEmulator, unique_name
from worker.app.cli import main
from worker.config.settings import MIN_ACK_DEADLINE_S, Settings, SettingsError


@pytest.fixture
def names() -> dict[str, str]:
    suffix = unique_name("s")
    return {
        "EMAIL_WORKER_REQUESTS_TOPIC": f"requests-{suffix}",
        "EMAIL_WORKER_RESULTS_TOPIC": f"results-{suffix}",
        "EMAIL_WORKER_DEAD_LETTER_TOPIC": f"dead-letter-{suffix}",
        "EMAIL_WORKER_SUBSCRIPTION": f"worker-{suffix}",
        "EMAIL_WORKER_DEAD_LETTER_SUBSCRIPTION": f"ops-{suffix}",
        "EMAIL_WORKER_TENANCY": "shared",
    }


def run(emulator: PubSubEmulator, env: dict[str, str], *args: str) -> Any:
    full_env = {
        "PUBSUB_EMULATOR_HOST": emulator.host,
        "GOOGLE_CLOUD_PROJECT": emulator.project_id,
        **env,
    }
    return CliRunner().invoke(main, ["setup", *args], env=full_env)


def subscription(emulator: PubSubEmulator, name: str) -> Any:
    path = emulator.subscriber.subscription_path(emulator.project_id, name)
    return emulator.subscriber.get_subscription(request={"subscription": path})


def topic_path(emulator: PubSubEmulator, name: str) -> str:
    return f"projects/{emulator.project_id}/topics/{name}"


def test_setup_creates_the_three_topics_and_both_subscriptions(
    pubsub_env: PubSubEmulator, names: dict[str, str]
) -> None:
    result = run(pubsub_env, names)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 5
    assert all(line.startswith("created") for line in lines)
    for name in (
        names["EMAIL_WORKER_REQUESTS_TOPIC"],
        names["EMAIL_WORKER_RESULTS_TOPIC"],
        names["EMAIL_WORKER_DEAD_LETTER_TOPIC"],
    ):
        pubsub_env.publisher.get_topic(request={"topic": topic_path(pubsub_env, name)})
    ops = subscription(pubsub_env, names["EMAIL_WORKER_DEAD_LETTER_SUBSCRIPTION"])
    assert ops.topic == topic_path(pubsub_env, names["EMAIL_WORKER_DEAD_LETTER_TOPIC"])


def test_the_worker_subscription_has_dead_letter_retry_and_ack_deadline_policies(
    pubsub_env: PubSubEmulator, names: dict[str, str]
) -> None:
    assert run(pubsub_env, names).exit_code == 0
    worker = subscription(pubsub_env, names["EMAIL_WORKER_SUBSCRIPTION"])
    assert worker.topic == topic_path(pubsub_env, names["EMAIL_WORKER_REQUESTS_TOPIC"])
    assert worker.dead_letter_policy.dead_letter_topic == topic_path(
        pubsub_env, names["EMAIL_WORKER_DEAD_LETTER_TOPIC"]
    )
    assert worker.dead_letter_policy.max_delivery_attempts == 12
    assert worker.retry_policy.minimum_backoff == dt.timedelta(seconds=10)
    assert worker.retry_policy.maximum_backoff == dt.timedelta(seconds=600)
    assert worker.ack_deadline_seconds == 60


def test_max_delivery_attempts_comes_from_the_setting(
    pubsub_env: PubSubEmulator, names: dict[str, str]
) -> None:
    result = run(pubsub_env, {**names, "EMAIL_WORKER_MAX_DELIVERY_ATTEMPTS": "7"})
    assert result.exit_code == 0, result.output
    worker = subscription(pubsub_env, names["EMAIL_WORKER_SUBSCRIPTION"])
    assert worker.dead_letter_policy.max_delivery_attempts == 7


def test_options_override_the_policies(pubsub_env: PubSubEmulator, names: dict[str, str]) -> None:
    result = run(
        pubsub_env,
        names,
        "--max-delivery-attempts=9",
        "--ack-deadline=30",
        "--min-backoff=1",
        "--max-backoff=20",
    )
    assert result.exit_code == 0, result.output
    worker = subscription(pubsub_env, names["EMAIL_WORKER_SUBSCRIPTION"])
    assert worker.dead_letter_policy.max_delivery_attempts == 9
    assert worker.ack_deadline_seconds == 30
    assert worker.retry_policy.minimum_backoff == dt.timedelta(seconds=1)
    assert worker.retry_policy.maximum_backoff == dt.timedelta(seconds=20)


def test_running_setup_twice_finds_everything_and_succeeds(
    pubsub_env: PubSubEmulator, names: dict[str, str]
) -> None:
    assert run(pubsub_env, names).exit_code == 0
    again = run(pubsub_env, names)
    assert again.exit_code == 0, again.output
    lines = again.stdout.splitlines()
    assert len(lines) == 5
    assert all(line.startswith("exists") for line in lines)
    assert "warning" not in again.stderr


def test_an_existing_subscription_without_a_dead_letter_policy_is_reported_not_changed(
    pubsub_env: PubSubEmulator, names: dict[str, str]
) -> None:
    requests = pubsub_env.create_topic(names["EMAIL_WORKER_REQUESTS_TOPIC"])
    pubsub_env.create_subscription(requests, names["EMAIL_WORKER_SUBSCRIPTION"])
    result = run(pubsub_env, names)
    assert result.exit_code == 0, result.output
    assert "has no dead-letter policy" in result.stderr
    worker = subscription(pubsub_env, names["EMAIL_WORKER_SUBSCRIPTION"])
    assert not worker.dead_letter_policy.dead_letter_topic


def test_a_minimum_backoff_above_the_maximum_is_a_usage_error(
    pubsub_env: PubSubEmulator, names: dict[str, str]
) -> None:
    result = run(pubsub_env, names, "--min-backoff=60", "--max-backoff=10")
    assert result.exit_code == 2
    assert "--min-backoff" in result.stderr


def test_without_a_project_setup_exits_2_without_a_traceback(
    pubsub_env: PubSubEmulator, names: dict[str, str]
) -> None:
    result = run(pubsub_env, {**names, "GOOGLE_CLOUD_PROJECT": ""})
    assert result.exit_code == 2
    assert "GOOGLE_CLOUD_PROJECT" in result.stderr
    assert "Traceback" not in result.output


def test_unreachable_pubsub_exits_1_quickly_without_a_traceback(names: dict[str, str]) -> None:
    closed = f"127.0.0.1:{free_port()}"
    env = {
        **names,
        "PUBSUB_EMULATOR_HOST": closed,
        "GOOGLE_CLOUD_PROJECT": "test-project",
        "EMAIL_WORKER_PUBLISH_TIMEOUT_S": "2",
    }
    result = CliRunner().invoke(main, ["setup"], env=env)
    assert result.exit_code == 1
    assert f"cannot reach the Pub/Sub emulator at {closed}" in result.stderr
    assert "Traceback" not in result.output


def test_per_service_setup_creates_a_topic_and_subscription_per_service_and_for_replays(
    pubsub_env: PubSubEmulator, names: dict[str, str]
) -> None:
    suffix = unique_name("t")
    env = {
        **names,
        "EMAIL_WORKER_TENANCY": "per-service",
        # Service ids of its own: the results subscriptions' names are not configurable.
        "EMAIL_WORKER_ALLOWED_SERVICES": f"billing-{suffix},shop-{suffix}",
        "EMAIL_WORKER_SERVICE_TOPIC": f"in-{suffix}-{{service}}",
        "EMAIL_WORKER_SERVICE_SUBSCRIPTION": f"in-{suffix}-{{service}}-worker",
        "EMAIL_WORKER_REPLAY_TOPIC": f"replays-{suffix}",
        "EMAIL_WORKER_REPLAY_SUBSCRIPTION": f"replays-{suffix}-worker",
    }
    result = run(pubsub_env, env)
    assert result.exit_code == 0, result.output
    for service in (f"billing-{suffix}", f"shop-{suffix}"):
        worker = subscription(pubsub_env, f"in-{suffix}-{service}-worker")
        assert worker.topic == topic_path(pubsub_env, f"in-{suffix}-{service}")
        assert worker.dead_letter_policy.dead_letter_topic == topic_path(
            pubsub_env, names["EMAIL_WORKER_DEAD_LETTER_TOPIC"]
        )
    replays = subscription(pubsub_env, f"replays-{suffix}-worker")
    assert replays.topic == topic_path(pubsub_env, f"replays-{suffix}")
    # The shared topic belongs to shared tenancy only.
    assert names["EMAIL_WORKER_REQUESTS_TOPIC"] not in result.stdout


def test_an_ack_deadline_the_worker_would_refuse_is_a_usage_error(
    pubsub_env: PubSubEmulator, names: dict[str, str]
) -> None:
    too_short = MIN_ACK_DEADLINE_S - 1
    result = run(pubsub_env, names, f"--ack-deadline={too_short}")
    assert result.exit_code == 2
    assert f"{too_short} is not in the range {MIN_ACK_DEADLINE_S}<=x<=600" in result.stderr
    assert "Traceback" not in result.output
    # The worker itself refuses the same value: setup's range is the worker's.
    with pytest.raises(SettingsError, match="EMAIL_WORKER_ACK_DEADLINE_S"):
        Settings.from_env({"EMAIL_WORKER_ACK_DEADLINE_S": str(too_short)})


def test_the_shortest_ack_deadline_the_worker_accepts_is_accepted_by_setup(
    pubsub_env: PubSubEmulator, names: dict[str, str]
) -> None:
    Settings.from_env({"EMAIL_WORKER_ACK_DEADLINE_S": str(MIN_ACK_DEADLINE_S)})
    result = run(pubsub_env, names, f"--ack-deadline={MIN_ACK_DEADLINE_S}")
    assert result.exit_code == 0, result.output
    worker = subscription(pubsub_env, names["EMAIL_WORKER_SUBSCRIPTION"])
    assert worker.ack_deadline_seconds == MIN_ACK_DEADLINE_S
