"""Fair shares and daily caps end to end: the pull worker on the Pub/Sub emulator and moto.

One service's backlog must not delay another's requests, and a service over its max_per_day
waits in Pub/Sub (leased, no delivery attempt used) until its window reopens.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.support.clock import ManualClock
from tests.support.worker_stack import Stack, make_stack, make_tenant_stack, request
from worker.ledger import MemoryLedger
from worker.ledger.send_counts import HOUR_S
from worker.processing.daily_cap import DailyCounts

ROLE = "arn:aws:iam::123456789012:role/email-sender"


@pytest.fixture
def tenants(pubsub_env: Any, fault_proxy: Any, tmp_path: Path) -> Stack:
    return make_tenant_stack(pubsub_env, tmp_path, fault_proxy.endpoint)


@pytest.fixture
def stack(pubsub_env: Any, fault_proxy: Any, tmp_path: Path) -> Stack:
    return make_stack(pubsub_env, tmp_path, fault_proxy.endpoint)


def shop_request(request_id: str) -> dict[str, Any]:
    return request(request_id=request_id, service_id="shop", **{"from": "Shop <shop@example.com>"})


def result_times(stack: Stack, wanted: set[str], timeout_s: float) -> dict[str, float]:
    """When each of the ``wanted`` request ids' results arrived (others are drained)."""
    arrived: dict[str, float] = {}
    deadline = time.monotonic() + timeout_s
    while not wanted <= arrived.keys() and time.monotonic() < deadline:
        for message in stack.emulator.pull(
            stack.results_subscription, max_messages=100, timeout_s=1
        ):
            result = json.loads(message.message.data)
            if result["request_id"] in wanted:
                assert result["status"] == "sent", result
                arrived[result["request_id"]] = time.monotonic()
    return arrived


def test_a_services_backlog_does_not_delay_another_services_requests(
    tenants: Stack, moto: Any
) -> None:
    # billing has 400 requests waiting: at 10 recipients/s, 40 s of work, more than the
    # worker's 32 threads. Shop's requests, one every half second, must not queue behind
    # them: neither in the limiter nor for a thread.
    tenants.write_service("billing", service_role_arn=ROLE, allowed_from_domains=["example.com"])
    with tenants.running(EMAIL_WORKER_SEND_RATE_PER_S="10"):
        publisher = tenants.emulator.publisher
        futures = [
            publisher.publish(
                tenants.service_topics["billing"],
                json.dumps(request(request_id=f"bulk-{n}")).encode(),
            )
            for n in range(400)
        ]
        for future in futures:
            future.result(timeout=30)
        time.sleep(4)  # billing's backlog fills the worker
        wanted = {f"shop-{n}" for n in range(6)}
        with ThreadPoolExecutor(1) as collector:
            arriving = collector.submit(result_times, tenants, wanted, 30)
            published: dict[str, float] = {}
            for n in range(6):
                published[f"shop-{n}"] = time.monotonic()
                tenants.publish_as("shop", shop_request(f"shop-{n}"))
                time.sleep(0.5)
            arrived = arriving.result()
    assert arrived.keys() == published.keys()
    delays = sorted(arrived[key] - published[key] for key in published)
    # Each arrives within a second or so (the emulator's and moto's own latency included);
    # behind billing's 32 waiting threads at 10/s it would take over 3 s.
    assert delays[-1] < 2.0, delays


def test_over_max_per_day_a_request_waits_in_pubsub_and_is_sent_once_the_window_reopens(
    stack: Stack, moto: Any
) -> None:
    stack.write_service(
        "billing",
        service_role_arn=ROLE,
        default_from_address="billing@example.com",
        allowed_from_domains=["example.com"],
        max_per_day=2,
    )
    # A second before the hour ends: a held request looks again every second.
    clock = ManualClock(1_800_000_000.0 - 1_800_000_000.0 % HOUR_S + HOUR_S - 1)
    with stack.running() as runtime:
        ledger = runtime.ledger or MemoryLedger(claim_lease_s=60)
        runtime.handler.deps.daily_counts = DailyCounts(ledger, clock=clock)
        for n in range(3):
            stack.publish(request(request_id=f"r{n}"))
        first_two = stack.results(2)
        assert stack.nothing_more(stack.results_subscription, wait_s=4)
        assert stack.nothing_more(stack.queue.dead_letter_subscription, wait_s=1)
        clock.now += 24 * HOUR_S + 1  # the hour of the two sends leaves the window
        [third] = stack.results(1, timeout_s=30)
    assert {r["request_id"] for r in first_two} | {third["request_id"]} == {"r0", "r1", "r2"}
    assert [r["status"] for r in (*first_two, third)] == ["sent"] * 3
    assert third["attempt"] == 1  # held while leased: no delivery attempt used
    assert len(moto.sent_messages()) == 3
