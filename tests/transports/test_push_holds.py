"""Push mode at a service's ``max_per_day``, or with its SES tenant paused: the held pushes
are deferred into the ledger and acked, using one delivery attempt each and reaching no dead
letter, and each is sent once when the daily window reopens, or the tenant sends again.

The push app is served by uvicorn in this process (as ``email-worker serve`` serves it) with
its schedule dispatcher, on a SQLite ledger and moto. Pushes come from
:class:`~tests.support.push_driver.PushDriver`, the stand-in for Pub/Sub push over an emulator
subscription with a dead-letter policy of ``ATTEMPTS`` attempts: it reports each message's
delivery attempt and leaves the dead-lettering to the emulator (the emulator's own push sends
no attempt number). The service's sends are counted on a clock the test moves.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.test_ses_outage import sends_by_request, wait_until
from tests.support import fault_proxy as faults
from tests.support.clock import ManualClock
from tests.support.ports import LOOPBACK, free_port
from tests.support.push_driver import PushDriver
from tests.support.worker_stack import ROLE, Stack, make_stack, request
from worker.app.http_server import BackgroundServer
from worker.app.runtime import Runtime, build_runtime
from worker.ledger.send_counts import HOUR_S
from worker.processing.daily_cap import DailyCounts
from worker.processing.tenant_pauses import TenantPauses
from worker.transports.push import push_app

ATTEMPTS = 5
CAP = 3
# The daily window moves on two seconds after the clock's start: a deferred request is due
# again every two seconds, until the test moves the clock on by a day.
START = 1_800_000_000.0 - 1_800_000_000.0 % HOUR_S + HOUR_S - 2
DAY_S = 24 * HOUR_S
# Longer than a nacked message's 5 attempts last at 1-2 s backoffs (1 + 2 + 2 + 2 s).
HOLD_S = 10.0


@pytest.fixture
def stack(pubsub_env: Any, fault_proxy: Any, tmp_path: Path) -> Stack:
    made = make_stack(pubsub_env, tmp_path, fault_proxy.endpoint, max_delivery_attempts=ATTEMPTS)
    made.write_service(
        "billing",
        service_role_arn=ROLE,
        default_from_address="billing@example.com",
        allowed_from_domains=["example.com"],
        max_per_day=CAP,
        over_daily_cap="wait",
    )
    return made


@contextmanager
def serving(stack: Stack) -> Iterator[tuple[str, Runtime, ManualClock]]:
    """The push app and its schedule dispatcher: (push URL, runtime, the counts' clock)."""
    settings = stack.settings(
        EMAIL_WORKER_PUSH_AUTH="off",
        EMAIL_WORKER_SCHEDULE_POLL_S="0.5",
        EMAIL_WORKER_MAX_DELIVERY_ATTEMPTS=str(ATTEMPTS),
    )
    runtime = build_runtime(settings, subscription_readable=False)
    runtime.handler.deps.sleep = stack.sleeps.append
    clock = ManualClock(START)
    assert runtime.ledger is not None
    runtime.handler.deps.daily_counts = DailyCounts(runtime.ledger, clock=clock)
    # A paused tenant is asked again every second, not every minute.
    runtime.handler.deps.tenant_pauses = TenantPauses(probe_interval_s=1.0)
    runtime.start_schedule_dispatch()
    server = BackgroundServer(
        push_app(runtime.handler, None, settings=runtime.settings),
        host=LOOPBACK,
        port=free_port(),
        shutdown_timeout_s=5,
    ).start()
    try:
        yield f"http://{LOOPBACK}:{server.port}/pubsub/push", runtime, clock
    finally:
        server.stop()
        runtime.handler.stopping.set()
        runtime.close()


@pytest.fixture
def served(stack: Stack) -> Iterator[tuple[str, Runtime, ManualClock]]:
    """Served with the service capped at ``CAP`` a day."""
    with serving(stack) as served:
        yield served


@pytest.fixture
def served_tenant(stack: Stack) -> Iterator[str]:
    """Served with the service sending through its SES tenant ``billing-tenant``: the URL."""
    stack.write_service(
        "billing",
        service_role_arn=ROLE,
        default_from_address="billing@example.com",
        allowed_from_domains=["example.com"],
        ses_tenant="billing-tenant",
    )
    with serving(stack) as (endpoint, _runtime, _clock):
        yield endpoint


def pushing(stack: Stack, endpoint: str) -> PushDriver:
    """Pushes of the stack's subscription: 1-2 s backoffs after a nack."""
    return PushDriver(
        stack.emulator,
        [stack.queue.subscription],
        endpoint,
        min_backoff_s=1,
        max_backoff_s=2,
        ack_deadline_s=10,
    )


def publish(stack: Stack, run: str, count: int) -> list[str]:
    ids = [f"{run}-{n}" for n in range(count)]
    for request_id in ids:
        stack.publish(request(request_id=request_id, subject=f"ses-outage {request_id}"))
    return ids


def test_pushes_held_at_a_services_daily_cap_burn_no_attempts_and_go_once_when_it_reopens(
    stack: Stack, served: tuple[str, Runtime, ManualClock], moto: Any
) -> None:
    endpoint, _runtime, clock = served
    run = f"pushcap{uuid.uuid4().hex[:6]}"
    ids = publish(stack, run, 5)
    with pushing(stack, endpoint) as driver:
        first = stack.results(CAP)
        time.sleep(HOLD_S)  # the other two are held all this time
        held_statuses, held_attempts = dict(driver.statuses), dict(driver.attempts)
        assert stack.nothing_more(stack.results_subscription, wait_s=1)
        clock.now += DAY_S + HOUR_S  # the first sends leave the 25 hourly counters
        rest = stack.results(len(ids) - CAP, timeout_s=30)
        wait_until(lambda: sum(driver.statuses.values()) == len(ids), 10, "all answered")
        time.sleep(2.0)  # late duplicates, if any

    assert held_statuses == {204: len(ids)}  # every push acked at once, the held ones too
    assert set(held_attempts.values()) == {1}
    assert sorted(r["request_id"] for r in first + rest) == sorted(ids)
    assert {r["status"] for r in first + rest} == {"sent"}
    assert stack.nothing_more(stack.results_subscription)
    assert stack.nothing_more(stack.queue.dead_letter_subscription)
    assert sends_by_request(moto, run) == Counter(dict.fromkeys(ids, 1))


def test_pushes_held_while_ses_pauses_the_services_tenant_burn_no_attempts_and_go_once_after(
    stack: Stack, served_tenant: str, moto: Any, fault_proxy: Any
) -> None:
    endpoint = served_tenant
    paused = faults.ses_error("SendingPausedException", 400, "Sending is paused for this tenant.")
    fault_proxy.add_rule(faults.for_tenant("billing-tenant", paused))
    run = f"pushpaused{uuid.uuid4().hex[:6]}"
    ids = publish(stack, run, 3)
    with pushing(stack, endpoint) as driver:
        wait_until(lambda: sum(driver.statuses.values()) == len(ids), 30, "all pushed")
        time.sleep(HOLD_S)  # deferred, and probed again every second
        held_statuses, held_attempts = dict(driver.statuses), dict(driver.attempts)
        assert stack.nothing_more(stack.results_subscription, wait_s=1)
        fault_proxy.clear()  # the tenant sends again
        results = stack.results(len(ids), timeout_s=30)
        time.sleep(2.0)  # late duplicates, if any

    assert held_statuses == {204: len(ids)}
    assert set(held_attempts.values()) == {1}
    assert sorted(r["request_id"] for r in results) == sorted(ids)
    assert {r["status"] for r in results} == {"sent"}
    assert stack.nothing_more(stack.results_subscription)
    assert stack.nothing_more(stack.queue.dead_letter_subscription)
    assert sends_by_request(moto, run) == Counter(dict.fromkeys(ids, 1))
