"""A minute of SES answering 503 to every send: the worker holds, and nothing is dead-lettered.

``email-worker pull`` runs as a process with per-service tenancy (services ``billing`` and
``shop``, each with its own topic and subscription, 5 delivery attempts each, and no backoff
worth the name in the emulator). Requests for both services are queued, then the fault proxy
answers every SES send with ``503 ServiceUnavailable`` for ``OUTAGE_S``: the issue's 10 minutes
and 2,000 requests scaled down to a minute and 200, with deliveries that give up after two
send attempts, so that the minute is enough for the worker's 32 threads to spend every
request's 5 attempts without the breaker (tried: with EMAIL_WORKER_OUTAGE_MIN_CALLS=0 all 200
were dead-lettered as ``failed``, each after 5 deliveries). Each service's requests also stay
within one stream's ``EMAIL_WORKER_MAX_MESSAGES``: the emulator, unlike Pub/Sub, streams a
backlog into the client past its flow control, where messages that are not leased expire and
use delivery attempts of their own.

What it proves: the outage breaker trips on failures of both services, the worker holds its
messages (leased, not nacked) and probes, and resumes by itself once SES answers; every
request is then sent exactly once, none is dead-lettered, no ``failed`` result is published,
and the worker's /metrics show it held. And the control: with one service's role denied by
STS, that service's requests fail (``access_denied``, dead-lettered) as they always did, while
the other service's are sent meanwhile, and the breaker never trips.
"""

from __future__ import annotations

import re
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.support import fault_proxy as faults
from tests.support.ports import free_port
from tests.support.worker_process import ResultCollector, WorkerProcess
from tests.support.worker_stack import Stack, make_tenant_stack, request

PER_SERVICE = 100  # requests queued for each of the two services
OUTAGE_S = 60.0
SERVICES = ("billing", "shop")
SHOP_ROLE = "arn:aws:iam::123456789012:role/email-sender-shop"
_SUBJECT = re.compile(rb"^Subject: ses-outage (\S+)\r?$", re.MULTILINE)


@pytest.fixture
def stack(pubsub_env: Any, fault_proxy: Any, tmp_path: Path) -> Stack:
    stack = make_tenant_stack(pubsub_env, tmp_path, fault_proxy.endpoint)
    stack.write_service(
        "shop",
        service_role_arn=SHOP_ROLE,
        default_from_address="shop@example.com",
        allowed_from_domains=["example.com"],
    )
    return stack


def queue_requests(stack: Stack, run: str) -> dict[str, str]:
    """Publish PER_SERVICE requests for each service, interleaved; request id -> service."""
    services: dict[str, str] = {}
    for n in range(PER_SERVICE):
        for service in SERVICES:
            request_id = f"{run}-{service}-{n}"
            stack.publish_as(
                service,
                request(
                    service_id=service,
                    request_id=request_id,
                    subject=f"ses-outage {request_id}",
                    **{"from": f"{service}@example.com"},
                ),
            )
            services[request_id] = service
    return services


def start_worker(stack: Stack, tmp_path: Path) -> tuple[WorkerProcess, str]:
    port = free_port()
    env = {
        **stack.env,
        "PORT": str(port),
        "EMAIL_WORKER_HTTP_HOST": "127.0.0.1",
        "EMAIL_WORKER_CONCURRENCY": "32",
        "EMAIL_WORKER_MAX_MESSAGES": str(PER_SERVICE + 100),
        # A delivery gives up after two attempts, so that without the breaker the outage
        # would spend every message's 5 delivery attempts within the minute (the emulator
        # redelivers a nacked message at once): a scaled-down 10-minute outage.
        "EMAIL_WORKER_SEND_MAX_ATTEMPTS": "2",
        "EMAIL_WORKER_OUTAGE_MIN_CALLS": "6",
        "EMAIL_WORKER_OUTAGE_PROBE_INTERVAL_S": "2",
    }
    return WorkerProcess(env, tmp_path / "worker.log"), f"http://127.0.0.1:{port}/metrics"


def metric(url: str, name: str) -> float:
    """The sum of the samples named ``name`` on the worker's /metrics (0 when unreachable)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # loopback test server
            text = response.read().decode()
    except OSError:
        return 0.0
    total = 0.0
    for line in text.splitlines():
        sample, _, value = line.rpartition(" ")
        if sample == name or sample.startswith(name + "{"):
            total += float(value)
    return total


def wait_until(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} after {timeout_s:.0f}s")
        time.sleep(0.5)


def sends_by_request(moto: Any, run: str) -> Counter[str]:
    """How often SES (moto) accepted each request of this run."""
    sends: Counter[str] = Counter()
    for sent in moto.sent_messages():
        match = _SUBJECT.search((sent.raw_data or "").encode())
        if match is not None and match.group(1).decode().startswith(run):
            sends[match.group(1).decode()] += 1
    return sends


def test_a_minute_of_ses_failing_every_send_dead_letters_nothing_and_sends_each_request_once(
    stack: Stack, moto: Any, fault_proxy: Any, tmp_path: Path
) -> None:
    run = f"outage{uuid.uuid4().hex[:6]}"
    fault_proxy.add_rule(faults.ses_error("ServiceUnavailable", 503, "Service unavailable."))
    services = queue_requests(stack, run)
    with ResultCollector(stack.emulator, stack.results_subscription) as collector:
        worker, metrics = start_worker(stack, tmp_path)
        outage_started = time.monotonic()
        wait_until(lambda: metric(metrics, "email_worker_outage_holding") == 1, 60, "holding")
        tripped_after_s = time.monotonic() - outage_started
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - outage_started)))
        assert worker.running, worker.log()[-3000:]
        assert collector.snapshot() == []  # nothing could be sent, and nothing failed
        sends_tried = fault_proxy.count("ses_send")
        fault_proxy.clear()  # SES is back
        recovered = time.monotonic()
        collector.wait_for_requests(set(services), timeout_s=120)
        drained_s = time.monotonic() - recovered
        time.sleep(3.0)  # late duplicates, if any
        held = metric(metrics, "email_worker_outage_held_total")
        trips = metric(metrics, "email_worker_outage_trips_total")
        holding_after = metric(metrics, "email_worker_outage_holding")
        settled = {
            action: metric(metrics, f'email_worker_deliveries_settled_total{{action="{action}"}}')
            for action in ("ack", "nack", "hold")
        }
        assert worker.terminate() == 0, worker.log()[-3000:]
        results = collector.snapshot()

    assert Counter(r["request_id"] for r in results) == Counter(set(services))
    assert {r["status"] for r in results} == {"sent"}
    assert {r["service_id"] for r in results} == set(SERVICES)
    sends = sends_by_request(moto, run)
    assert set(sends) == set(services)
    assert set(sends.values()) == {1}, "a request was sent twice"
    assert stack.nothing_more(stack.queue.dead_letter_subscription)
    assert trips >= 1
    assert held > 0
    assert holding_after == 0
    records = worker.log_records()
    assert any("holding new work" in r.get("message", "") for r in records)
    assert any("taking work again" in r.get("message", "") for r in records)
    print(
        f"\nSES outage: {len(services)} requests of 2 services queued, SES failing every send "
        f"for {OUTAGE_S:.0f}s; the breaker held after {tripped_after_s:.1f}s, "
        f"{sends_tried} SES sends tried during the outage, all sent {drained_s:.1f}s after "
        f"SES was back; trips {trips:.0f}, deliveries held {held:.0f}, settled {settled}; "
        "dead letters 0, failed results 0, sent twice 0"
    )


def test_one_service_denied_by_sts_fails_as_before_while_the_other_sends_and_nothing_holds(
    stack: Stack, moto: Any, fault_proxy: Any, tmp_path: Path
) -> None:
    run = f"denied{uuid.uuid4().hex[:6]}"
    denied = faults.sts_error("AccessDenied", 403, "Not authorized to assume this role.")
    fault_proxy.add_rule(lambda r: denied(r) if r.form.get("RoleArn") == SHOP_ROLE else None)
    services = queue_requests(stack, run)
    with ResultCollector(stack.emulator, stack.results_subscription) as collector:
        worker, metrics = start_worker(stack, tmp_path)
        collector.wait_for_requests(set(services), timeout_s=120)
        trips = metric(metrics, "email_worker_outage_trips_total")
        held = metric(metrics, "email_worker_outage_held_total")
        assert worker.terminate() == 0, worker.log()[-3000:]
        results = collector.snapshot()

    by_service = {
        service: [r for r in results if services[r["request_id"]] == service]
        for service in SERVICES
    }
    assert {r["status"] for r in by_service["billing"]} == {"sent"}
    assert {(r["status"], r["error"]["code"]) for r in by_service["shop"]} == {
        ("failed", "access_denied")
    }
    assert len(stack.dead_letters(PER_SERVICE, timeout_s=60)) == PER_SERVICE
    assert set(sends_by_request(moto, run)) == {
        request_id for request_id, service in services.items() if service == "billing"
    }
    # The denial stayed in force throughout, so billing's requests were sent during it; and
    # shop's stream often has the worker's threads to itself first (its failures come fast), so
    # the breaker also saw a stretch of nothing but shop's refusals without tripping.
    assert trips == 0
    assert held == 0
