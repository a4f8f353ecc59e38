"""The SES outage in push mode: ``email-worker serve`` answers 503 while it holds, the
subscription's backoff outlasts the outage, and every request is sent once.

``email-worker serve`` runs as a process with per-service tenancy (services ``billing`` and
``shop``), pushed to by :class:`~tests.support.push_driver.PushDriver`, a stand-in for Pub/Sub
push delivery over the emulator's subscriptions (the emulator's own push stops for minutes
after a few 503s: see its docstring). 100 requests per service are queued, then the fault
proxy answers every SES send with ``503 ServiceUnavailable`` for ``OUTAGE_S``.

The subscription is production's retry policy scaled down: ``ATTEMPTS`` delivery attempts
with backoffs from ``MIN_BACKOFF_S`` to ``MAX_BACKOFF_S`` (1 + 2 + 4 + 8 + 16 x 7 = 127 s of
waits between the first delivery and the last), against a ``EMAIL_WORKER_OUTAGE_ALLOWANCE_S``
of a minute, a 65 s ledger claim and no Send-event wait (125 s): the worker is given the same
figures, and its start-up check (worker/config/budget.py) accepts them, as it does
terraform's 12 attempts of 10-600 s against 30 minutes.

What it proves: the breaker trips, ``serve`` answers pushes 503 without calling SES while it
holds (fewer SES calls during the minute than there are requests), the attempts those answers
use stay within the subscription's, and once SES answers again every request is sent exactly
once: no dead letter, no ``failed`` result, and /metrics show the hold.

In push mode it is the subscription's budget, not the breaker, that keeps the requests: a held
push is answered at once but uses its attempt all the same, and Pub/Sub's backoff, not the
worker, spaces the attempts. Measured with the breaker off (EMAIL_WORKER_OUTAGE_MIN_CALLS=0,
not a test here, for the time it takes): the same 200 requests were all sent once and none
dead-lettered, at most 8 of the 12 attempts used, but 2,555 SES calls were made during the
minute against about 115 with the breaker. So the control here is the budget's instead: the
same outage on a subscription whose attempts do not outlast it (5 attempts, 1-2 s backoffs)
dead-letters every request, each with a ``failed`` result.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.test_ses_outage import metric, queue_requests, sends_by_request, wait_until
from tests.support import fault_proxy as faults
from tests.support.ports import LOOPBACK, free_port, wait_for_port
from tests.support.push_driver import PushDriver
from tests.support.worker_process import ResultCollector, WorkerProcess
from tests.support.worker_stack import Stack, make_tenant_stack

SERVICES = ("billing", "shop")
PER_SERVICE = 100
OUTAGE_S = 60.0
ATTEMPTS = 12
MIN_BACKOFF_S = 1
MAX_BACKOFF_S = 16
ACK_DEADLINE_S = 30  # the subscription's: how long the stand-in waits for an answer
SHOP_ROLE = "arn:aws:iam::123456789012:role/email-sender-shop"
_OUTAGE = faults.ses_error("ServiceUnavailable", 503, "Service unavailable.")


def scaled_stack(emulator: Any, tmp_path: Path, endpoint: str, attempts: int) -> Stack:
    stack = make_tenant_stack(
        emulator, tmp_path, endpoint, max_delivery_attempts=attempts, ack_deadline_s=ACK_DEADLINE_S
    )
    stack.write_service(
        "shop",
        service_role_arn=SHOP_ROLE,
        default_from_address="shop@example.com",
        allowed_from_domains=["example.com"],
    )
    return stack


@pytest.fixture
def stack(pubsub_env: Any, fault_proxy: Any, tmp_path: Path) -> Stack:
    return scaled_stack(pubsub_env, tmp_path, fault_proxy.endpoint, ATTEMPTS)


def start_serve(stack: Stack, tmp_path: Path, **overrides: str) -> tuple[WorkerProcess, str]:
    """``email-worker serve`` on a free port; the process and its push endpoint. An override
    of ``""`` leaves that setting out."""
    port = free_port()
    env = {
        **stack.env,
        "PORT": str(port),
        "EMAIL_WORKER_HTTP_HOST": LOOPBACK,
        "EMAIL_WORKER_PUSH_AUTH": "off",
        "EMAIL_WORKER_CONCURRENCY": "32",
        # As in the pull test: a delivery gives up after two sends.
        "EMAIL_WORKER_SEND_MAX_ATTEMPTS": "2",
        "EMAIL_WORKER_SEND_DEADLINE_S": "5",
        "EMAIL_WORKER_LEDGER_CLAIM_S": "65",
        "EMAIL_WORKER_OUTAGE_ALLOWANCE_S": str(int(OUTAGE_S)),
        "EMAIL_WORKER_MAX_DELIVERY_ATTEMPTS": str(ATTEMPTS),
        "EMAIL_WORKER_RETRY_MIN_BACKOFF_S": str(MIN_BACKOFF_S),
        "EMAIL_WORKER_RETRY_MAX_BACKOFF_S": str(MAX_BACKOFF_S),
        "EMAIL_WORKER_OUTAGE_MIN_CALLS": "6",
        "EMAIL_WORKER_OUTAGE_PROBE_INTERVAL_S": "2",
        **overrides,
    }
    env = {name: value for name, value in env.items() if value != ""}
    worker = WorkerProcess(env, tmp_path / "serve.log", command="serve")
    wait_for_port(LOOPBACK, port, timeout_s=60)
    return worker, f"http://{LOOPBACK}:{port}"


def pushing(stack: Stack, endpoint: str, *, min_backoff_s: int, max_backoff_s: int) -> PushDriver:
    """The stand-in pushing both services' subscriptions to ``endpoint``."""
    settings = stack.settings()
    subscriber = stack.emulator.subscriber
    subscriptions = [
        subscriber.subscription_path(
            stack.emulator.project_id, settings.topics.service_subscription_for(service)
        )
        for service in SERVICES
    ]
    return PushDriver(
        stack.emulator,
        subscriptions,
        f"{endpoint}/pubsub/push",
        min_backoff_s=min_backoff_s,
        max_backoff_s=max_backoff_s,
        ack_deadline_s=ACK_DEADLINE_S,
    )


def test_a_minute_of_ses_failing_every_send_in_push_mode_sends_each_request_once(
    stack: Stack, moto: Any, fault_proxy: Any, tmp_path: Path
) -> None:
    run = f"pushout{uuid.uuid4().hex[:6]}"
    fault_proxy.add_rule(_OUTAGE)
    services = queue_requests(stack, run)
    with ResultCollector(stack.emulator, stack.results_subscription) as collector:
        worker, endpoint = start_serve(stack, tmp_path)
        metrics = f"{endpoint}/metrics"
        with pushing(
            stack, endpoint, min_backoff_s=MIN_BACKOFF_S, max_backoff_s=MAX_BACKOFF_S
        ) as driver:
            outage_started = time.monotonic()
            wait_until(lambda: metric(metrics, "email_worker_outage_holding") == 1, 60, "holding")
            tripped_after_s = time.monotonic() - outage_started
            time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - outage_started)))
            assert worker.running, worker.log()[-3000:]
            assert collector.snapshot() == []  # nothing could be sent, and nothing failed
            sends_tried = fault_proxy.count("ses_send")
            attempts_in_outage = max(driver.attempts.values())
            fault_proxy.clear()  # SES is back
            recovered = time.monotonic()
            collector.wait_for_requests(set(services), timeout_s=120)
            drained_s = time.monotonic() - recovered
            time.sleep(3.0)  # late duplicates, if any
        statuses = dict(driver.statuses)
        most_attempts = max(driver.attempts.values())
        held = metric(metrics, "email_worker_outage_held_total")
        trips = metric(metrics, "email_worker_outage_trips_total")
        holding_after = metric(metrics, "email_worker_outage_holding")
        assert worker.terminate() == 0, worker.log()[-3000:]
        results = collector.snapshot()

    assert Counter(r["request_id"] for r in results) == Counter(set(services))
    assert {r["status"] for r in results} == {"sent"}
    sends = sends_by_request(moto, run)
    assert set(sends) == set(services)
    assert set(sends.values()) == {1}, "a request was sent twice"
    assert stack.nothing_more(stack.queue.dead_letter_subscription)
    assert most_attempts < ATTEMPTS
    assert statuses.get(503, 0) > 0
    assert sends_tried < len(services)  # without the breaker every push calls SES
    assert trips >= 1
    assert held > 0
    assert holding_after == 0
    print(
        f"\nSES outage, push: {len(services)} requests of 2 services, SES failing every send "
        f"for {OUTAGE_S:.0f}s; held after {tripped_after_s:.1f}s, {sends_tried} SES sends "
        f"tried during the outage, {attempts_in_outage} of {ATTEMPTS} attempts used by its end "
        f"({most_attempts} at most in all); all sent {drained_s:.1f}s after SES was back; "
        f"push answers {statuses}; trips {trips:.0f}, held {held:.0f}; dead letters 0, "
        "failed results 0, sent twice 0"
    )


def test_push_attempts_that_do_not_outlast_the_outage_dead_letter_every_request_as_failed(
    pubsub_env: Any, moto: Any, fault_proxy: Any, tmp_path: Path
) -> None:
    short = 5
    stack = scaled_stack(pubsub_env, tmp_path, fault_proxy.endpoint, short)
    run = f"pushshort{uuid.uuid4().hex[:6]}"
    fault_proxy.add_rule(_OUTAGE)
    services = queue_requests(stack, run)
    with ResultCollector(stack.emulator, stack.results_subscription) as collector:
        # The start-up check would refuse this subscription's settings: they are not given.
        worker, endpoint = start_serve(
            stack,
            tmp_path,
            EMAIL_WORKER_MAX_DELIVERY_ATTEMPTS=str(short),
            EMAIL_WORKER_RETRY_MIN_BACKOFF_S="",
            EMAIL_WORKER_RETRY_MAX_BACKOFF_S="",
        )
        with pushing(stack, endpoint, min_backoff_s=1, max_backoff_s=2):
            collector.wait_for_requests(set(services), timeout_s=OUTAGE_S)
            # The emulator moves a message to the dead-letter topic when it would deliver it
            # again, so the stand-in keeps pulling meanwhile.
            dead_letters = stack.dead_letters(len(services), timeout_s=30)
        trips = metric(f"{endpoint}/metrics", "email_worker_outage_trips_total")
        assert worker.terminate() == 0, worker.log()[-3000:]
        results = collector.snapshot()

    assert Counter(r["request_id"] for r in results) == Counter(set(services))
    assert {r["status"] for r in results} == {"failed"}
    assert len(dead_letters) == len(services)
    assert stack.nothing_more(stack.queue.dead_letter_subscription)
    assert sends_by_request(moto, run) == Counter()
    assert trips >= 1
