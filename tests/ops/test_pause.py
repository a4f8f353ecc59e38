"""Stopping and resuming sending (``email-worker pause`` / ``resume`` / ``paused``) with the
pull worker, end to end on the Pub/Sub emulator and moto (docs/operations.md, "Stopping and
resuming sending").

What a pause must give: the paused service's requests are neither sent nor failed nor
dead-lettered while it lasts, other services' requests go on, and after the resume every
request is sent exactly once, on its first delivery attempt.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.support import fault_proxy as faults
from tests.support.cli_runner import cli_env, invoke
from tests.support.worker_stack import Stack, make_stack, make_tenant_stack, request
from worker.app.runtime import Runtime

Logs = list[MutableMapping[str, Any]]
POLL = {"EMAIL_WORKER_PAUSE_POLL_S": "0.2"}
# Long enough for a worker that nacked the paused requests to exhaust 5 delivery attempts.
PAUSE_WINDOW_S = 4.0


@pytest.fixture
def stack(pubsub_env: Any, fault_proxy: Any, tmp_path: Path) -> Stack:
    return make_tenant_stack(pubsub_env, tmp_path, fault_proxy.endpoint)


def requests_of(service: str, count: int) -> list[dict[str, Any]]:
    sender = {"from": f"{service} <{service}@example.com>"}
    return [
        request(service_id=service, request_id=f"{service}-{n}", subject=f"{service}-{n}", **sender)
        for n in range(count)
    ]


def sends_by_subject(moto: Any) -> Counter[str]:
    """SES sends per request (each test request has its own subject)."""
    counts: Counter[str] = Counter()
    for message in moto.sent_messages():
        for line in message.raw_data.splitlines():
            if line.startswith("Subject: "):
                counts[line.removeprefix("Subject: ")] += 1
    return counts


def wait_for_event(logs: Logs, event: str, count: int = 1, **fields: Any) -> None:
    deadline = time.monotonic() + 20
    while sum(1 for e in list(logs) if e["event"] == event and fields.items() <= e.items()) < count:
        assert time.monotonic() < deadline, f"no {event!r} {fields} logged"
        time.sleep(0.05)


def paused_gauge(runtime: Runtime) -> float | None:
    return runtime.metrics.registry.get_sample_value("email_worker_paused_services")


def subscription(stack: Stack, name: str) -> str:
    return f"projects/{stack.emulator.project_id}/subscriptions/{name}"


@pytest.fixture
def logs() -> Iterator[Logs]:
    with capture_logs() as captured:
        yield captured


def test_a_paused_service_waits_in_pubsub_while_others_are_sent_and_is_sent_once_on_resume(
    stack: Stack, moto: Any, logs: Logs
) -> None:
    env = cli_env(stack)
    billing_subscription = subscription(
        stack, stack.settings().topics.service_subscription_for("billing")
    )
    with stack.running(**POLL) as runtime:
        paused = invoke(env, "pause", "billing", "--reason", "bounce rate review")
        assert paused.exit_code == 0, paused.output
        wait_for_event(logs, "paused: not pulling", subscription=billing_subscription)
        assert paused_gauge(runtime) == 1
        for held in requests_of("billing", 5):
            stack.publish_as("billing", held)
        for other in requests_of("shop", 3):
            stack.publish_as("shop", other)
        during = stack.results(3)
        assert stack.nothing_more(stack.results_subscription, PAUSE_WINDOW_S)
        assert stack.nothing_more(stack.queue.dead_letter_subscription, 0.5)
        sent_during = sends_by_subject(moto)

        resumed = invoke(env, "resume", "billing")
        assert resumed.exit_code == 0, resumed.output
        after = stack.results(5)
        assert stack.nothing_more(stack.queue.dead_letter_subscription, 1)
        assert paused_gauge(runtime) == 0
    assert {(r["service_id"], r["status"]) for r in during} == {("shop", "sent")}
    assert sent_during == Counter({"shop-0": 1, "shop-1": 1, "shop-2": 1})
    assert sorted(r["request_id"] for r in after) == [f"billing-{n}" for n in range(5)]
    assert {(r["status"], r["attempt"]) for r in after} == {("sent", 1)}
    assert sends_by_subject(moto) == Counter(
        {f"{s}-{n}": 1 for s, count in (("billing", 5), ("shop", 3)) for n in range(count)}
    )
    assert "paused billing" in paused.stdout
    assert "resumed billing" in resumed.stdout


def test_pause_all_holds_every_service_until_resume_all_and_then_each_is_sent_once(
    stack: Stack, moto: Any, logs: Logs
) -> None:
    env = cli_env(stack)
    with stack.running(**POLL) as runtime:
        paused = invoke(env, "pause", "--all", "--reason", "SES account review")
        assert paused.exit_code == 0, paused.output
        # Both services' subscriptions and the replay subscription.
        wait_for_event(logs, "paused: not pulling", count=3)
        assert paused_gauge(runtime) == 2
        for held in [*requests_of("billing", 4), *requests_of("shop", 4)]:
            stack.publish_as(held["service_id"], held)
        assert stack.nothing_more(stack.results_subscription, PAUSE_WINDOW_S)
        assert stack.nothing_more(stack.queue.dead_letter_subscription, 0.5)
        assert moto.sent_messages() == []

        resumed = invoke(env, "resume", "--all")
        assert resumed.exit_code == 0, resumed.output
        after = stack.results(8)
        assert stack.nothing_more(stack.queue.dead_letter_subscription, 1)
    assert {(r["status"], r["attempt"]) for r in after} == {("sent", 1)}
    assert sends_by_subject(moto) == Counter(
        {f"{s}-{n}": 1 for s in ("billing", "shop") for n in range(4)}
    )
    assert "paused every service" in paused.stdout


def test_a_worker_started_during_a_pause_does_not_pull_the_paused_service(
    stack: Stack, moto: Any, logs: Logs
) -> None:
    env = cli_env(stack)
    with stack.running(**POLL):
        pass  # creates the ledger file
    assert invoke(env, "pause", "shop").exit_code == 0
    stack.publish_as("shop", requests_of("shop", 1)[0])
    with stack.running(**POLL):
        wait_for_event(logs, "paused: not pulling", count=1)
        assert stack.nothing_more(stack.results_subscription, 2)
        assert invoke(env, "resume", "shop").exit_code == 0
        [result] = stack.results(1)
    assert (result["request_id"], result["status"], result["attempt"]) == ("shop-0", "sent", 1)


def test_paused_lists_each_pause_with_its_time_author_and_reason(stack: Stack) -> None:
    env = cli_env(stack)
    with stack.running(**POLL):
        pass  # creates the ledger file
    invoke(env, "pause", "billing", "--reason", "bounce rate review", "--by", "alice")
    invoke(env, "pause", "--all", "--by", "bob")

    table = invoke(env, "paused")
    listed = invoke(env, "paused", "--json")

    assert table.exit_code == listed.exit_code == 0
    assert "every service" in table.stdout
    assert "bounce rate review" in table.stdout
    [everything, billing] = json.loads(listed.stdout)
    assert (everything["scope"], everything["all_services"], everything["by"]) == ("*", True, "bob")
    assert (billing["scope"], billing["by"], billing["reason"]) == (
        "billing",
        "alice",
        "bounce rate review",
    )
    assert billing["since"].endswith("Z")


def test_paused_says_when_nothing_is_paused(stack: Stack) -> None:
    with stack.running(**POLL):
        pass
    result = invoke(cli_env(stack), "paused")
    assert (result.exit_code, result.stdout.strip()) == (0, "nothing is paused")


def test_resuming_a_service_that_is_not_paused_says_so_and_succeeds(stack: Stack) -> None:
    with stack.running(**POLL):
        pass
    result = invoke(cli_env(stack), "resume", "shop")
    assert (result.exit_code, result.stdout.strip()) == (0, "shop was not paused")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "name one or more services, or --all"),
        (("billing", "--all"), "name one or more services, or --all"),
        (("Not A Service",), "is not a service id"),
        (("payroll",), "'payroll' is not in EMAIL_WORKER_ALLOWED_SERVICES"),
    ],
)
def test_pause_refuses_what_it_cannot_pause_with_a_usage_error(
    stack: Stack, args: tuple[str, ...], message: str
) -> None:
    result = invoke(cli_env(stack), "pause", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_pause_of_one_service_is_refused_with_shared_tenancy(
    pubsub_env: Any, tmp_path: Path
) -> None:
    shared = make_stack(pubsub_env, tmp_path, "")
    result = invoke(cli_env(shared), "pause", "billing")
    assert result.exit_code == 2
    assert "only --all can pause them" in result.stderr


def test_pause_without_a_ledger_is_a_usage_error(stack: Stack) -> None:
    result = invoke(cli_env(stack, EMAIL_WORKER_LEDGER="none"), "pause", "billing")
    assert result.exit_code == 2
    assert "no request ledger" in result.stderr


def test_pause_all_holds_the_one_subscription_of_shared_tenancy(
    pubsub_env: Any, fault_proxy: Any, tmp_path: Path, moto: Any, logs: Logs
) -> None:
    shared = make_stack(pubsub_env, tmp_path, fault_proxy.endpoint)
    env = cli_env(shared)
    with shared.running(**POLL):
        assert invoke(env, "pause", "--all").exit_code == 0
        wait_for_event(logs, "paused: not pulling")
        for held in requests_of("billing", 2):
            shared.publish(held)
        assert shared.nothing_more(shared.results_subscription, 2)
        assert invoke(env, "resume", "--all").exit_code == 0
        after = shared.results(2)
    assert {(r["status"], r["attempt"]) for r in after} == {("sent", 1)}
    assert sends_by_subject(moto) == Counter({"billing-0": 1, "billing-1": 1})


def test_a_pause_while_a_backlog_is_being_sent_lets_sends_in_progress_finish_and_loses_nothing(
    stack: Stack, moto: Any, fault_proxy: Any, logs: Logs
) -> None:
    fault_proxy.add_rule(faults.delay(0.3, lambda r: r.is_ses_send))
    env = cli_env(stack)
    billing_subscription = subscription(
        stack, stack.settings().topics.service_subscription_for("billing")
    )
    with stack.running(EMAIL_WORKER_CONCURRENCY="2", **POLL):
        for backlog in requests_of("billing", 20):
            stack.publish_as("billing", backlog)
        before = stack.results(2)
        assert invoke(env, "pause", "billing").exit_code == 0
        wait_for_event(logs, "paused: not pulling", subscription=billing_subscription)
        before += drain(stack)
        sent_before = sum(sends_by_subject(moto).values())
        assert stack.nothing_more(stack.results_subscription, 3)
        assert invoke(env, "resume", "billing").exit_code == 0
        after = stack.results(20 - len(before))
        assert stack.nothing_more(stack.queue.dead_letter_subscription, 1)
    assert 2 <= len(before) < 20
    assert sent_before == len(before)
    assert sorted(r["request_id"] for r in before + after) == sorted(
        f"billing-{n}" for n in range(20)
    )
    assert {r["status"] for r in before + after} == {"sent"}
    assert sends_by_subject(moto) == Counter({f"billing-{n}": 1 for n in range(20)})


def drain(stack: Stack) -> list[dict[str, Any]]:
    """The results that are there now."""
    found: list[dict[str, Any]] = []
    while batch := stack.emulator.pull(stack.results_subscription, max_messages=100, timeout_s=1):
        found.extend(json.loads(m.message.data) for m in batch)
    return found
