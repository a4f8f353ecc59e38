"""``email-worker check``, and the same checks refusing to start ``pull``, ``serve`` and
``events``: against the Pub/Sub emulator, with file:// service configurations and SQLite
ledgers. Every test has its own resource names."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped]
import pytest
from click.testing import CliRunner, Result

from tests.support.ports import free_port
from tests.support.pubsub_emulator import PubSubEmulator, unique_name
from tests.support.worker_process import EMAIL_WORKER
from tests.support.worker_stack import Stack, make_stack, make_tenant_stack, short
from worker.app.cli import main
from worker.app.pubsub_checks import needed_subscriptions
from worker.config.settings import Settings
from worker.processing.tenancy import subscription_sources

NO_AWS = "http://127.0.0.1:9"  # nothing here talks to AWS


@pytest.fixture
def stack(pubsub_env: PubSubEmulator, tmp_path: Path) -> Stack:
    """Per-service tenancy: billing and shop, each with its topic and subscription."""
    return make_tenant_stack(pubsub_env, tmp_path, NO_AWS)


def env_of(stack: Stack, **overrides: str) -> dict[str, str]:
    return {**stack.env, "PUBSUB_EMULATOR_HOST": stack.emulator.host, **overrides}


def check(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, ["check", *args], env=env)


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``email-worker ARGS`` as a process, as an operator runs it."""
    return subprocess.run(
        [EMAIL_WORKER, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def subscription_path(stack: Stack, name: str) -> str:
    return f"projects/{stack.emulator.project_id}/subscriptions/{name}"


def delete_subscription(stack: Stack, name: str) -> str:
    path = subscription_path(stack, name)
    stack.emulator.subscriber.delete_subscription(request={"subscription": path})
    return path


# -- check: everything in place ------------------------------------------------------------


def test_check_on_a_set_up_emulator_passes_every_check_and_exits_0(stack: Stack) -> None:
    result = check(env_of(stack))
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    settings = stack.settings()
    checks = result.stdout.split("Checks (pull", 1)[1]
    for service in ("billing", "shop"):
        subscription = subscription_path(stack, settings.topics.service_subscription_for(service))
        assert f"ok       service {service}'s subscription {subscription} exists" in checks
        assert f"ok       service {service}'s configuration file://" in checks
    assert "ok       the settings are valid" in checks
    assert f"ok       the Pub/Sub emulator at {stack.emulator.host} answers" in checks
    assert f"ok       the results topic {stack.results_topic} exists" in checks
    replays = subscription_path(stack, settings.topics.replay_subscription)
    assert f"ok       the replay subscription {replays} exists" in checks
    assert f"ok       the ledger {settings.ledger.url} opens and answers a read" in checks
    assert "failed" not in checks


def test_check_prints_each_setting_marked_as_from_the_environment_or_the_default(
    stack: Stack,
) -> None:
    result = check(env_of(stack))
    listing = result.stdout.split("Checks", 1)[0].splitlines()
    [tenancy] = [line for line in listing if "EMAIL_WORKER_TENANCY " in line]
    assert tenancy.split() == ["EMAIL_WORKER_TENANCY", "per-service", "[environment]"]
    [concurrency] = [line for line in listing if "EMAIL_WORKER_CONCURRENCY " in line]
    assert concurrency.split() == ["EMAIL_WORKER_CONCURRENCY", "32", "[default]"]
    [rate] = [line for line in listing if "EMAIL_WORKER_SEND_RATE_PER_S " in line]
    assert rate.split() == ["EMAIL_WORKER_SEND_RATE_PER_S", "(unset)", "[default]"]


def test_check_masks_a_password_in_a_url_setting(stack: Stack) -> None:
    queue = "https://reader:hunter2@sqs.eu-west-2.amazonaws.com/123456789012/q"
    result = check(env_of(stack, EMAIL_WORKER_SES_EVENTS_QUEUE_URL=queue))
    assert "hunter2" not in result.output
    assert "https://***@sqs.eu-west-2.amazonaws.com/123456789012/q" in result.stdout


# -- check: what fails -----------------------------------------------------------------------


def test_a_missing_subscription_fails_the_check_with_one_line_and_exit_1(stack: Stack) -> None:
    path = delete_subscription(stack, stack.settings().topics.service_subscription_for("shop"))
    result = check(env_of(stack))
    assert result.exit_code == 1, result.output
    assert result.stderr == f"email-worker: service shop's subscription {path} does not exist\n"
    assert f"failed   service shop's subscription {path} exists" in result.stdout


def test_a_subscription_attached_to_another_topic_fails_the_check(stack: Stack) -> None:
    settings = stack.settings()
    name = settings.topics.service_subscription_for("shop")
    path = delete_subscription(stack, name)
    # shop's subscription now reads billing's topic: billing's requests would pass as shop's.
    stack.emulator.create_subscription(stack.service_topics["billing"], name)
    result = check(env_of(stack))
    assert result.exit_code == 1, result.output
    shop_topic = stack.service_topics["shop"]
    assert result.stderr == (
        f"email-worker: service shop's subscription {path} is attached to "
        f"{stack.service_topics['billing']}, not to {shop_topic}\n"
    )


def test_a_missing_results_topic_fails_the_check(stack: Stack) -> None:
    result = check(env_of(stack, EMAIL_WORKER_RESULTS_TOPIC="no-such-results"))
    assert result.exit_code == 1, result.output
    topic = f"projects/{stack.emulator.project_id}/topics/no-such-results"
    assert result.stderr == f"email-worker: the results topic {topic} does not exist\n"


def test_unreachable_pubsub_fails_the_check_in_one_line_within_10_seconds(stack: Stack) -> None:
    closed = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = run(env_of(stack, PUBSUB_EMULATOR_HOST=closed), "check")
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stderr
    assert elapsed <= 10
    [line] = result.stderr.splitlines()
    assert line.startswith(f"email-worker: cannot reach the Pub/Sub emulator at {closed}: ")
    assert "skipped  the results topic" in result.stdout
    assert "Traceback" not in result.stderr


def test_missing_google_credentials_are_one_line_saying_how_to_provide_them(
    stack: Stack,
) -> None:
    nobody = f"127.0.0.1:{free_port()}"  # no metadata server either
    env = {k: v for k, v in os.environ.items() if k != "PUBSUB_EMULATOR_HOST"}
    env.update(stack.env, GCE_METADATA_HOST=nobody, GCE_METADATA_IP=nobody)
    started = time.monotonic()
    result = subprocess.run(
        [EMAIL_WORKER, "check"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert time.monotonic() - started <= 10
    assert result.returncode == 1, result.stderr
    assert result.stderr == (
        "email-worker: no Google credentials: run `gcloud auth application-default login`, set "
        "GOOGLE_APPLICATION_CREDENTIALS to a service account key file, or run on Google Cloud "
        "as a service account (PUBSUB_EMULATOR_HOST selects the Pub/Sub emulator, which needs "
        "none)\n"
    )


def test_a_ledger_that_does_not_open_fails_the_check(stack: Stack, tmp_path: Path) -> None:
    ledger = tmp_path / "no-such-directory" / "ledger.db"
    result = check(env_of(stack, EMAIL_WORKER_LEDGER=f"sqlite:///{ledger}"))
    assert result.exit_code == 1, result.output
    assert result.stderr == (
        f"email-worker: cannot use the ledger: SQLite ledger {ledger} could not be opened: "
        "unable to open database file\n"
    )


def test_a_firestore_ledger_is_checked_with_a_read(stack: Stack, firestore_env: Any) -> None:
    result = check(env_of(stack, EMAIL_WORKER_LEDGER="firestore"))
    assert result.exit_code == 0, result.output
    assert "ok       the ledger firestore opens and answers a read" in result.stdout


def test_a_firestore_ledger_that_does_not_answer_fails_the_check_in_time(stack: Stack) -> None:
    closed = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = run(
        env_of(stack, EMAIL_WORKER_LEDGER="firestore", FIRESTORE_EMULATOR_HOST=closed), "check"
    )
    assert time.monotonic() - started <= 10
    assert result.returncode == 1, result.stderr
    assert result.stderr == "email-worker: cannot use the ledger firestore: no answer within 5 s\n"


def test_a_missing_configuration_document_fails_the_check(stack: Stack) -> None:
    document = stack.config_dir / "production" / "shop.json"
    document.unlink()
    result = check(env_of(stack))
    assert result.exit_code == 1, result.output
    assert result.stderr == (
        f"email-worker: no configuration for service 'shop': file://{document} does not exist\n"
    )


def test_an_invalid_configuration_document_fails_the_check(stack: Stack) -> None:
    document = stack.config_dir / "production" / "shop.json"
    document.write_text('{"service_role_arn": ')
    result = check(env_of(stack))
    assert result.exit_code == 1, result.output
    assert result.stderr == (
        f"email-worker: configuration for service 'shop' at file://{document} is invalid: "
        "not valid JSON\n"
    )


def test_a_role_that_is_no_iam_role_arn_fails_the_check(stack: Stack) -> None:
    stack.write_service("shop", service_role_arn="arn:aws:s3:::a-bucket")
    result = check(env_of(stack))
    assert result.exit_code == 1, result.output
    assert "service_role_arn is missing or not an ARN of an IAM role" in result.stderr


def test_a_from_domain_that_is_no_domain_fails_the_check(stack: Stack) -> None:
    role = "arn:aws:iam::123456789012:role/shop"
    stack.write_service("shop", service_role_arn=role, allowed_from_domains=["shop example"])
    result = check(env_of(stack))
    assert result.exit_code == 1, result.output
    assert "allowed_from_domains: 'shop example' is not a domain name" in result.stderr


def test_a_typo_in_a_setting_name_is_an_invalid_setting_naming_the_closest(stack: Stack) -> None:
    # An empty value counts as unset.
    env = env_of(stack, EMAIL_WORKER_ALLOWED_SERVICE="billing", EMAIL_WORKER_ALLOWED_SERVICES="")
    result = check(env)
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        "email-worker: invalid settings:\n"
        "  EMAIL_WORKER_ALLOWED_SERVICE is not a setting; did you mean "
        "EMAIL_WORKER_ALLOWED_SERVICES?\n"
        "  EMAIL_WORKER_ALLOWED_SERVICES must list at least one service\n"
    )


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (
            "file:///etc/email-worker/{service}.json",
            "EMAIL_WORKER_SERVICE_CONFIG_URL may hold only the placeholders {environment} and "
            "{service_id}",
        ),
        (
            "s3://config/{service_id}.json",
            "EMAIL_WORKER_SERVICE_CONFIG_URL must be a file:// or gs:// URL (s3:// is not "
            "supported)",
        ),
    ],
)
def test_a_configuration_url_that_cannot_load_is_an_invalid_setting(
    stack: Stack, url: str, problem: str
) -> None:
    result = check(env_of(stack, EMAIL_WORKER_SERVICE_CONFIG_URL=url))
    assert result.exit_code == 2, result.output
    assert result.stderr == f"email-worker: invalid settings:\n  {problem}\n"


# -- check: which command ------------------------------------------------------------------


def test_check_events_checks_the_events_topic_and_not_the_services(stack: Stack) -> None:
    env = env_of(
        stack,
        EMAIL_WORKER_SES_EVENTS_QUEUE_URL="https://sqs.eu-west-2.amazonaws.com/123456789012/q",
        EMAIL_WORKER_SES_EVENTS_ROLE_ARN="arn:aws:iam::123456789012:role/events",
        EMAIL_WORKER_EVENTS_TOPIC="no-such-events",
    )
    result = check(env, "events")
    assert result.exit_code == 1, result.output
    topic = f"projects/{stack.emulator.project_id}/topics/no-such-events"
    assert result.stderr == f"email-worker: the events topic {topic} does not exist\n"
    assert "configuration" not in result.stdout.split("Checks", 1)[1]


def test_check_without_a_command_checks_serve_in_a_push_deployment(stack: Stack) -> None:
    env = env_of(stack, EMAIL_WORKER_PUSH_AUTH="off", EMAIL_WORKER_PUSH_ACK_DEADLINE_S="60")
    result = check(env)
    assert result.exit_code == 2, result.output
    assert result.stdout.startswith("Settings (serve):")
    # serve's own setting problem: the push ack deadline cannot hold one delivery.
    assert result.stderr.startswith(
        "email-worker: invalid settings:\n  EMAIL_WORKER_PUSH_ACK_DEADLINE_S=60 is too short"
    )


def test_check_help_lists_the_exit_codes() -> None:
    result = CliRunner().invoke(main, ["check", "--help"])
    assert result.exit_code == 0
    assert "Exit codes:" in result.stdout
    for code in ("0  every check passed", "1  a check failed", "2  invalid settings"):
        assert code in result.stdout


# -- pull, serve and events refuse to start ------------------------------------------------


def test_pull_refuses_to_start_on_a_missing_subscription_in_one_line(stack: Stack) -> None:
    path = delete_subscription(stack, stack.settings().topics.service_subscription_for("billing"))
    result = run(env_of(stack), "pull")
    assert result.returncode == 1
    assert result.stderr == f"email-worker: service billing's subscription {path} does not exist\n"


def test_pull_refuses_to_start_on_a_typo_in_a_setting_name(stack: Stack) -> None:
    result = run(env_of(stack, EMAIL_WORKER_CONCURENCY="8"), "pull")
    assert result.returncode == 2
    assert result.stderr == (
        "email-worker: invalid settings:\n"
        "  EMAIL_WORKER_CONCURENCY is not a setting; did you mean EMAIL_WORKER_CONCURRENCY?\n"
    )


def test_pull_refuses_to_start_within_10_seconds_when_pubsub_is_unreachable(
    stack: Stack,
) -> None:
    closed = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = run(env_of(stack, PUBSUB_EMULATOR_HOST=closed), "pull")
    assert time.monotonic() - started <= 10
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith(f"email-worker: cannot reach the Pub/Sub emulator at {closed}: ")
    assert "RetryError" not in result.stdout + result.stderr


def test_pull_refuses_to_start_without_a_service_configuration(stack: Stack) -> None:
    document = stack.config_dir / "production" / "billing.json"
    document.unlink()
    result = run(env_of(stack), "pull")
    assert result.returncode == 1
    assert result.stderr == (
        f"email-worker: no configuration for service 'billing': file://{document} does not exist\n"
    )


def test_a_refusal_off_a_terminal_is_also_one_json_log_record(stack: Stack) -> None:
    path = delete_subscription(stack, stack.settings().topics.service_subscription_for("billing"))
    result = run(env_of(stack), "pull")
    [record] = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert record["severity"] == "ERROR"
    assert record["message"] == "cannot start"
    assert record["problems"] == [f"service billing's subscription {path} does not exist"]


def test_a_refusal_on_a_terminal_is_only_the_line(stack: Stack) -> None:
    path = delete_subscription(stack, stack.settings().topics.service_subscription_for("billing"))
    controller, terminal = pty.openpty()
    try:
        completed = subprocess.run(
            [EMAIL_WORKER, "pull"],
            env={**os.environ, **env_of(stack)},
            stdout=subprocess.PIPE,
            stderr=terminal,
            timeout=60,
            check=False,
        )
        os.close(terminal)
        shown = _read_all(controller)
    finally:
        os.close(controller)
    assert completed.returncode == 1
    assert shown == f"email-worker: service billing's subscription {path} does not exist\r\n"
    assert b"cannot start" not in completed.stdout


def _read_all(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the terminal's other end is closed: everything has been read
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode()


def test_serve_refuses_to_start_when_the_dead_letter_topic_is_missing(
    pubsub_env: PubSubEmulator, tmp_path: Path
) -> None:
    shared = make_stack(pubsub_env, tmp_path, NO_AWS)
    missing = unique_name("gone")
    result = run(
        env_of(shared, EMAIL_WORKER_PUSH_AUTH="off", EMAIL_WORKER_DEAD_LETTER_TOPIC=missing),
        "serve",
    )
    assert result.returncode == 1
    topic = f"projects/{pubsub_env.project_id}/topics/{missing}"
    assert result.stderr == f"email-worker: the dead-letter topic {topic} does not exist\n"


def test_events_refuses_to_start_when_its_topic_is_missing(stack: Stack) -> None:
    env = env_of(
        stack,
        EMAIL_WORKER_SES_EVENTS_QUEUE_URL="https://sqs.eu-west-2.amazonaws.com/123456789012/q",
        EMAIL_WORKER_SES_EVENTS_ROLE_ARN="arn:aws:iam::123456789012:role/events",
        EMAIL_WORKER_EVENTS_TOPIC=short(unique_name("events")),
    )
    result = run(env, "events")
    assert result.returncode == 1
    topic = f"projects/{stack.emulator.project_id}/topics/{env['EMAIL_WORKER_EVENTS_TOPIC']}"
    assert result.stderr == f"email-worker: the events topic {topic} does not exist\n"


# -- a Pub/Sub that answers but lets the worker see nothing ---------------------------------


@pytest.fixture
def pubsub_denying_every_lookup() -> Iterator[str]:
    """A stand-in Pub/Sub that answers every GetTopic and GetSubscription with
    PERMISSION_DENIED, as Google does for the worker's account (it may only publish and
    pull); the emulator checks no permissions. Its ``host:port``."""

    def deny(_request: bytes, context: grpc.ServicerContext) -> bytes:
        context.abort(grpc.StatusCode.PERMISSION_DENIED, "User not authorized")
        return b""  # not reached: abort raises

    def handlers(service: str, method: str) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            f"google.pubsub.v1.{service}", {method: grpc.unary_unary_rpc_method_handler(deny)}
        )

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers(
        (handlers("Publisher", "GetTopic"), handlers("Subscriber", "GetSubscription"))
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


def test_topics_and_subscriptions_the_worker_may_not_see_are_skipped_not_failed(
    stack: Stack, pubsub_denying_every_lookup: str
) -> None:
    result = check(env_of(stack, PUBSUB_EMULATOR_HOST=pubsub_denying_every_lookup))
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    checks = result.stdout.split("Checks (pull", 1)[1]
    assert f"ok       the Pub/Sub emulator at {pubsub_denying_every_lookup} answers" in checks
    skipped = [line for line in checks.splitlines() if line.startswith("  skipped")]
    assert len(skipped) == 5  # two topics, two services' subscriptions, the replay one
    topics = [line for line in skipped if "topic projects/" in line and "attached" not in line]
    assert len(topics) == 2
    assert all(
        line.endswith(": permission denied (seeing it takes pubsub.topics.get)") for line in topics
    )
    subscriptions = [line for line in skipped if line not in topics]
    assert all(
        line.endswith(": permission denied (seeing it takes pubsub.subscriptions.get)")
        for line in subscriptions
    )


@pytest.mark.parametrize("tenancy", ["per-service", "shared"])
def test_the_subscriptions_checked_are_the_ones_the_worker_reads(tenancy: str) -> None:
    settings = Settings.from_env(
        {
            "GOOGLE_CLOUD_PROJECT": "p",
            "EMAIL_WORKER_TENANCY": tenancy,
            "EMAIL_WORKER_ALLOWED_SERVICES": "billing,shop",
        }
    )
    checked = [path for _, path, _ in needed_subscriptions(settings, "p")]
    assert checked == list(subscription_sources(settings))
