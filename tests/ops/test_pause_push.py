"""Stopping and resuming sending with the push endpoint (``email-worker serve``), on the
Pub/Sub emulator and moto.

Refusing pushes would not do: Pub/Sub counts each refused push as a delivery attempt and
dead-letters after the last. ``pause`` turns the paused service's push subscription into a
pull one, so its requests wait, and ``resume`` puts the push configuration back.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.ops.test_pause import POLL, requests_of, sends_by_subject
from tests.support.cli_runner import cli_env, invoke
from tests.support.ports import LOOPBACK, free_port
from tests.support.push import envelope, push_app_on
from tests.support.worker_stack import Stack, make_tenant_stack
from worker.app.http_server import BackgroundServer
from worker.app.runtime import Runtime, build_runtime
from worker.ledger import Pause, SqliteLedger
from worker.transports.push import push_app

ELSEWHERE = "http://127.0.0.1:9/pubsub/push"  # a push endpoint for tests that publish nothing


@pytest.fixture
def stack(pubsub_env: Any, fault_proxy: Any, tmp_path: Path) -> Stack:
    return make_tenant_stack(pubsub_env, tmp_path, fault_proxy.endpoint)


def path_of(stack: Stack, service: str) -> str:
    name = stack.settings().topics.service_subscription_for(service)
    return f"projects/{stack.emulator.project_id}/subscriptions/{name}"


def push_endpoint(stack: Stack, subscription: str) -> str:
    found = stack.emulator.subscriber.get_subscription(request={"subscription": subscription})
    return str(found.push_config.push_endpoint)


def set_push_endpoint(stack: Stack, subscription: str, endpoint: str) -> None:
    """What terraform's push_config block does (an empty endpoint: a pull subscription)."""
    config = {"push_endpoint": endpoint} if endpoint else {}
    stack.emulator.subscriber.modify_push_config(
        request={"subscription": subscription, "push_config": config}
    )


def create_ledger(stack: Stack) -> None:
    """The SQLite ledger file the worker would have created (the commands need it)."""
    SqliteLedger(
        stack.env["EMAIL_WORKER_LEDGER"].removeprefix("sqlite:///"), claim_lease_s=90
    ).close()


@contextmanager
def serving(stack: Stack) -> Iterator[tuple[str, Runtime]]:
    """The push endpoint on a loopback port, as the emulator reaches it, with the worker's
    service subscriptions pushing to it; yields its URL and runtime."""
    settings = stack.settings(EMAIL_WORKER_PUSH_AUTH="off", **POLL)
    runtime = build_runtime(settings, subscription_readable=False)
    runtime.handler.deps.sleep = stack.sleeps.append
    app = push_app(runtime.handler, None, settings=settings)
    server = BackgroundServer(app, host=LOOPBACK, port=free_port(), shutdown_timeout_s=2).start()
    pushing = [path_of(stack, s) for s in ("billing", "shop")]
    url = f"http://{LOOPBACK}:{server.port}/pubsub/push"
    try:
        for subscription in pushing:
            set_push_endpoint(stack, subscription, url)
        yield url, runtime
    finally:
        for subscription in pushing:  # the emulator would go on pushing to a closed port
            set_push_endpoint(stack, subscription, "")
        server.stop()
        runtime.close()


def test_a_paused_push_service_waits_in_pubsub_and_is_sent_once_after_resume(
    stack: Stack, moto: Any
) -> None:
    env = cli_env(stack, **POLL)
    billing = path_of(stack, "billing")
    with serving(stack) as (url, runtime):
        paused = invoke(env, "pause", "billing")
        assert paused.exit_code == 0, paused.output
        assert push_endpoint(stack, billing) == ""
        for held in requests_of("billing", 3):
            stack.publish_as("billing", held)
        for other in requests_of("shop", 2):
            stack.publish_as("shop", other)
        during = stack.results(2)
        assert stack.nothing_more(stack.results_subscription, 4)
        assert stack.nothing_more(stack.queue.dead_letter_subscription, 0.5)

        resumed = invoke(env, "resume", "billing")
        assert resumed.exit_code == 0, resumed.output
        assert push_endpoint(stack, billing) == url
        after = stack.results(3)
        assert stack.nothing_more(stack.queue.dead_letter_subscription, 1)
        answers = {
            code: runtime.metrics.registry.get_sample_value(
                "email_worker_push_responses_total", {"code": code}
            )
            for code in ("204", "503")
        }
    assert {(r["service_id"], r["status"]) for r in during} == {("shop", "sent")}
    assert sorted(r["request_id"] for r in after) == ["billing-0", "billing-1", "billing-2"]
    assert {r["status"] for r in after} == {"sent"}
    # Each request pushed once and accepted: the pause cost no delivery attempt.
    assert answers == {"204": 5.0, "503": None}
    assert sends_by_subject(moto) == Counter(
        {"billing-0": 1, "billing-1": 1, "billing-2": 1, "shop-0": 1, "shop-1": 1}
    )
    assert f"push subscriptions now pull: {billing}" in paused.stdout
    assert f"push subscriptions push again: {billing}" in resumed.stdout


def test_a_push_that_arrives_while_its_service_is_paused_is_answered_503_and_not_processed(
    stack: Stack, moto: Any
) -> None:
    held = envelope(requests_of("billing", 1)[0], subscription=path_of(stack, "billing"))
    with push_app_on(stack, **POLL) as push:
        assert push.runtime.ledger is not None
        push.runtime.ledger.add_pause(Pause("billing", dt.datetime.now(dt.UTC), "test"))
        refused = push.post(held)
        assert push.requests_processed() == 0
        push.runtime.ledger.remove_pause("billing")
        deadline = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
        while (accepted := push.post(held)).status_code == 503:
            assert dt.datetime.now(dt.UTC) < deadline
    assert refused.status_code == 503
    assert "paused" in refused.json()["error"]
    assert accepted.status_code == 204
    assert sends_by_subject(moto) == Counter({"billing-0": 1})


def test_pausing_again_switches_a_push_config_terraform_put_back_to_pull_and_keeps_the_first(
    stack: Stack,
) -> None:
    create_ledger(stack)
    env = cli_env(stack, **POLL)
    billing = path_of(stack, "billing")
    set_push_endpoint(stack, billing, ELSEWHERE)
    try:
        assert invoke(env, "pause", "billing").exit_code == 0
        set_push_endpoint(stack, billing, ELSEWHERE)  # a terraform apply during the pause
        again = invoke(env, "pause", "billing")
        assert push_endpoint(stack, billing) == ""
        assert invoke(env, "resume", "billing").exit_code == 0
        assert push_endpoint(stack, billing) == ELSEWHERE
    finally:
        set_push_endpoint(stack, billing, "")
    assert again.exit_code == 0, again.output


def test_a_service_paused_on_its_own_and_under_all_pushes_again_only_when_both_end(
    stack: Stack,
) -> None:
    create_ledger(stack)
    env = cli_env(stack, **POLL)
    billing, shop = path_of(stack, "billing"), path_of(stack, "shop")
    for subscription in (billing, shop):
        set_push_endpoint(stack, subscription, ELSEWHERE)
    try:
        assert invoke(env, "pause", "billing").exit_code == 0
        assert invoke(env, "pause", "--all").exit_code == 0
        assert (push_endpoint(stack, billing), push_endpoint(stack, shop)) == ("", "")
        ended = invoke(env, "resume", "billing")
        assert push_endpoint(stack, billing) == ""  # --all still holds it
        assert invoke(env, "pause", "billing").exit_code == 0
        assert invoke(env, "resume", "--all").exit_code == 0
        assert (push_endpoint(stack, billing), push_endpoint(stack, shop)) == ("", ELSEWHERE)
        assert invoke(env, "resume", "billing").exit_code == 0
        assert push_endpoint(stack, billing) == ELSEWHERE
    finally:
        for subscription in (billing, shop):
            set_push_endpoint(stack, subscription, "")
    assert f"{billing} stays pull while every service is paused" in ended.stdout


def test_a_resume_that_cannot_put_a_push_config_back_leaves_the_service_paused(
    stack: Stack,
) -> None:
    create_ledger(stack)
    env = cli_env(stack, **POLL)
    billing = path_of(stack, "billing")
    set_push_endpoint(stack, billing, ELSEWHERE)
    assert invoke(env, "pause", "billing").exit_code == 0
    stack.emulator.subscriber.delete_subscription(request={"subscription": billing})

    resumed = invoke(env, "resume", "billing")

    assert resumed.exit_code == 1
    assert "while resuming billing" in resumed.stderr
    assert "Traceback" not in resumed.output
    [still] = json.loads(invoke(env, "paused", "--json").stdout)
    assert (still["scope"], still["push_subscriptions_switched_to_pull"]) == ("billing", [billing])
