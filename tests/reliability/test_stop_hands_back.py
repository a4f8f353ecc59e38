"""SIGTERM under load leaves no ledger claim behind but those of SES calls under way.

200 requests queued; SES answers each send in 1 s, so at the signal the worker has sends in
flight, deliveries waiting for a thread, and messages held. In pull mode the requests come
through two services' topics (per-service tenancy: a stream each, sharing the worker's 8
threads); in push mode the emulator pushes them, two at a time, to ``email-worker serve``
with one thread. A stopping worker
must finish the sends in flight and hand everything else back, claims released, without
starting another SES call: the fault proxy treats a send reaching it after the signal as the
bug it is (stalls it past the shutdown timeout and never forwards it), and notes the sends in
flight at the signal, the only requests whose claims may stay.

Then a restarted worker must give every request its result within 30 s (a claim left behind
keeps its request ``busy`` for the claim's 90 s), and each request reaches SES once.
"""

from __future__ import annotations

import base64
import json
import re
import signal
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import fault_proxy as faults
from tests.support.ports import LOOPBACK, free_port, wait_for_port
from tests.support.push import create_push_subscription, delete_subscription
from tests.support.tcp_relay import TcpRelay
from tests.support.worker_process import ResultCollector, WorkerProcess
from tests.support.worker_stack import Stack, make_stack, make_tenant_stack, request

PER_SERVICE = 100
SERVICES = ("billing", "shop")
CONCURRENCY = 8
SES_ANSWER_S = 1.0
SHUTDOWN_TIMEOUT_S = 8.0
# A send reaching the proxy this soon after the signal may have passed the worker's last
# check before it: it counts as in flight at the signal.
GRACE_S = 0.5
LATE_STALL_S = 25.0
RESULTS_AFTER_RESTART_S = 30.0
_SUBJECT = re.compile(rb"^Subject: stop (\S+)\r?$", re.MULTILINE)
THROTTLE_EVERY = 5
_THROTTLED = faults.ses_error("TooManyRequestsException", 429)
WORKER_ENV = {
    "EMAIL_WORKER_CONCURRENCY": str(CONCURRENCY),
    "EMAIL_WORKER_SHUTDOWN_TIMEOUT_S": str(SHUTDOWN_TIMEOUT_S),
}


@pytest.fixture
def tenant_stack(pubsub_env: Any, fault_proxy: Any, tmp_path: Path) -> Stack:
    return make_tenant_stack(pubsub_env, tmp_path, fault_proxy.endpoint)


@pytest.fixture
def stack(pubsub_env: Any, fault_proxy: Any, tmp_path: Path) -> Stack:
    return make_stack(pubsub_env, tmp_path, fault_proxy.endpoint)


def request_id_of_send(body: bytes) -> str:
    raw = base64.b64decode(json.loads(body)["Content"]["Raw"]["Data"])
    match = _SUBJECT.search(raw)
    assert match is not None
    return match.group(1).decode()


class SlowSes:
    """A proxy rule for SES sends: answered after ``SES_ANSWER_S`` while ``slow``, every
    ``THROTTLE_EVERY``-th with a throttling error (so some deliveries are in a retry backoff
    at the signal). A send that arrives more than ``GRACE_S`` after :meth:`signalled`, for a
    request that had none in flight then, is recorded as late, stalled and hung up on (SES
    never gets it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.slow = True
        self._signal_at: float | None = None
        self._sends = 0
        self._in_flight: Counter[str] = Counter()
        self.in_flight_at_signal: set[str] = set()
        self.late: list[str] = []

    def signalled(self) -> None:
        with self._lock:
            self._signal_at = time.monotonic()
            self.in_flight_at_signal = set(self._in_flight)

    def __call__(self, proxied: faults.ProxiedRequest) -> faults.FakeResponse | None:
        if not proxied.is_ses_send or not self.slow:
            return None
        request_id = request_id_of_send(proxied.body)
        with self._lock:
            since_signal = None if self._signal_at is None else time.monotonic() - self._signal_at
            # botocore's own quick retries (of 5xx answers) belong to their call: only a
            # request that had no send in flight at the signal can start one late. A throttled
            # answer is not retried within the call (the worker retries it, if not stopping).
            late = (
                since_signal is not None
                and since_signal > GRACE_S
                and request_id not in self.in_flight_at_signal
            )
            if late:
                self.late.append(request_id)
            else:
                self._sends += 1
                throttled = self._signal_at is None and self._sends % THROTTLE_EVERY == 0
                self._in_flight[request_id] += 1
                if since_signal is not None:
                    self.in_flight_at_signal.add(request_id)
        if late:
            time.sleep(LATE_STALL_S)
            return faults.hang_up()
        time.sleep(SES_ANSWER_S)
        with self._lock:
            self._in_flight[request_id] -= 1
            if not self._in_flight[request_id]:
                del self._in_flight[request_id]
        return _THROTTLED(proxied) if throttled else None  # None: forwarded to moto


def claims_left(ledger_path: Path) -> set[str]:
    """Requests whose claim someone still holds, without a stored result."""
    with sqlite3.connect(ledger_path) as db:
        rows = db.execute(
            "SELECT request_id FROM requests WHERE state = 'claimed' AND owner IS NOT NULL"
        ).fetchall()
    return {row[0] for row in rows}


@dataclass
class Stopped:
    """What one SIGTERM under load left: the exit, the claims, the handed-back deliveries."""

    exit_code: int
    exit_s: float
    claims_left: set[str]
    handed_back: list[dict[str, Any]]


def stop_under_load(
    ses: SlowSes,
    collector: ResultCollector,
    worker: WorkerProcess,
    ledger_path: Path,
    *,
    results_before: int,
) -> Stopped:
    """Wait until the worker is busy, SIGTERM it, and see what it left."""
    collector.wait_for_count(results_before, timeout_s=120)
    ses.signalled()
    worker.process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    exit_code = worker.process.wait(timeout=SHUTDOWN_TIMEOUT_S + 20)
    exit_s = time.monotonic() - signalled
    handed_back = [
        r
        for r in worker.log_records()
        if r.get("message") == "request processed" and r.get("error_code") == "worker_stopped"
    ]
    return Stopped(exit_code, exit_s, claims_left(ledger_path), handed_back)


def assert_stopped_cleanly(stopped: Stopped, ses: SlowSes, log: str) -> None:
    assert stopped.exit_code == 0, log[-3000:]
    assert ses.late == [], "a stopping worker started SES calls after the signal"
    assert stopped.claims_left <= ses.in_flight_at_signal, (
        f"claims left behind: {sorted(stopped.claims_left)}"
    )
    assert stopped.handed_back, "no delivery was handed back: the load did not reach the stop"
    assert all(r["acked"] is False for r in stopped.handed_back)
    assert stopped.exit_s < SHUTDOWN_TIMEOUT_S + 3.0


def assert_each_sent_once(results: list[dict[str, Any]], moto: Any, request_ids: list[str]) -> None:
    assert {r["status"] for r in results} == {"sent"}
    sent = Counter(request_id_of_raw(m.raw_data) for m in moto.sent_messages())
    assert set(sent) == set(request_ids)
    assert max(sent.values()) == 1


def report(mode: str, stopped: Stopped, ses: SlowSes, total: int, results_s: float) -> None:
    print(
        f"\nstop ({mode}): SIGTERM with {len(ses.in_flight_at_signal)} SES sends in flight; "
        f"exit 0 after {stopped.exit_s:.1f}s; {len(stopped.handed_back)} deliveries handed "
        f"back (worker_stopped); claims left: {len(stopped.claims_left)}; all {total} requests "
        f"had their results {results_s:.1f}s after the restart, each sent once"
    )


def test_sigterm_under_pull_load_leaves_no_claim_and_a_restart_finishes_every_request_in_30s(
    tenant_stack: Stack, moto: Any, fault_proxy: Any, tmp_path: Path
) -> None:
    stack = tenant_stack
    ses = SlowSes()
    fault_proxy.add_rule(ses)
    request_ids = [f"stop-{service}-{n}" for service in SERVICES for n in range(PER_SERVICE)]
    for request_id in request_ids:
        service = request_id.split("-")[1]
        document = request(request_id=request_id, service_id=service, subject=f"stop {request_id}")
        stack.publish_as(service, document)
    relay = TcpRelay(stack.emulator.port, end_streams=True)
    env = {**stack.env, **WORKER_ENV, "PUBSUB_EMULATOR_HOST": relay.host}
    with relay, ResultCollector(stack.emulator, stack.results_subscription) as collector:
        worker = WorkerProcess(env, tmp_path / "worker-1.log")
        stopped = stop_under_load(
            ses, collector, worker, tmp_path / "ledger.db", results_before=2 * CONCURRENCY
        )
        assert_stopped_cleanly(stopped, ses, worker.log())

        ses.slow = False
        restarted_at = time.monotonic()
        restarted = WorkerProcess(env, tmp_path / "worker-2.log")
        collector.wait_for_requests(set(request_ids), timeout_s=RESULTS_AFTER_RESTART_S)
        results_s = time.monotonic() - restarted_at
        assert restarted.terminate() == 0, restarted.log()[-3000:]
        results = collector.snapshot()
    assert_each_sent_once(results, moto, request_ids)
    report("pull", stopped, ses, len(request_ids), results_s)


def test_sigterm_under_push_load_leaves_no_claim_and_a_restart_finishes_every_request_in_30s(
    stack: Stack, moto: Any, fault_proxy: Any, tmp_path: Path
) -> None:
    ses = SlowSes()
    fault_proxy.add_rule(ses)
    port = free_port()
    env = {
        **stack.env,
        **WORKER_ENV,
        "PORT": str(port),
        "EMAIL_WORKER_HTTP_HOST": LOOPBACK,
        "EMAIL_WORKER_PUSH_AUTH": "off",
        # The emulator pushes two at a time: with one thread, one push waits for it.
        "EMAIL_WORKER_CONCURRENCY": "1",
    }
    request_ids = [f"stop-push-{n}" for n in range(2 * PER_SERVICE)]
    with ResultCollector(stack.emulator, stack.results_subscription) as collector:
        server = WorkerProcess(env, tmp_path / "serve-1.log", command="serve")
        wait_for_port(LOOPBACK, port, timeout_s=60)
        subscription = create_push_subscription(stack, f"http://{LOOPBACK}:{port}/pubsub/push")
        try:
            for request_id in request_ids:
                stack.publish(request(request_id=request_id, subject=f"stop {request_id}"))
            stopped = stop_under_load(
                ses, collector, server, tmp_path / "ledger.db", results_before=6
            )
            assert_stopped_cleanly(stopped, ses, server.log())

            ses.slow = False
            restarted_at = time.monotonic()
            restarted = WorkerProcess(
                {**env, **WORKER_ENV}, tmp_path / "serve-2.log", command="serve"
            )
            collector.wait_for_requests(set(request_ids), timeout_s=RESULTS_AFTER_RESTART_S)
            results_s = time.monotonic() - restarted_at
            assert restarted.terminate() == 0, restarted.log()[-3000:]
        finally:
            delete_subscription(stack, subscription)
        results = collector.snapshot()
    assert_each_sent_once(results, moto, request_ids)
    report("push", stopped, ses, len(request_ids), results_s)


def request_id_of_raw(raw: str | None) -> str:
    match = _SUBJECT.search((raw or "").encode())
    assert match is not None
    return match.group(1).decode()
