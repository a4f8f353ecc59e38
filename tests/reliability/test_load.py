"""A backlog drained by ``email-worker pull`` on a loaded machine: every request sent once.

Two thousand valid requests are published before the worker starts, while a busy loop takes
one of the machine's cores, and SES answers each send slowly (as a throttled account, or the
worker's own send rate limit, makes a backlog drain slowly). Draining takes about a minute, so
most of the backlog waits in the worker or in the stream for far longer than one lease.
Each request must produce exactly one SES send and exactly one result: no lease may run out
while a message waits or is processed, or Pub/Sub delivers it again and it is sent again.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.support.cpu_hog import CpuHog
from tests.support.fault_proxy import delay
from tests.support.worker_process import ResultCollector, WorkerProcess
from tests.support.worker_stack import Stack, make_stack, request

BACKLOG = 2000
# With the worker's 32 threads, about 40 sends a second: the backlog drains in about 50 s.
SES_LATENCY_S = 0.8
# Redeliveries of expired leases arrive after the lease ran out: results are watched this
# long after the last new one.
QUIET_S = 20.0


@pytest.fixture
def stack(pubsub_env: Any, fault_proxy: Any, tmp_path: Path) -> Stack:
    return make_stack(pubsub_env, tmp_path, fault_proxy.endpoint)


def wait_until_quiet(collector: ResultCollector, quiet_s: float, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    seen, since = len(collector.snapshot()), time.monotonic()
    while time.monotonic() - since < quiet_s:
        assert time.monotonic() < deadline, "results kept arriving"
        time.sleep(0.5)
        now = len(collector.snapshot())
        if now != seen:
            seen, since = now, time.monotonic()


def test_a_backlog_drained_beside_a_cpu_hog_sends_each_request_once(
    stack: Stack, moto: Any, fault_proxy: Any, tmp_path: Path
) -> None:
    fault_proxy.add_rule(delay(SES_LATENCY_S, lambda r: r.is_ses_send))
    ids = [f"load-{n}" for n in range(BACKLOG)]
    futures = [
        stack.emulator.publisher.publish(
            stack.queue.topic, json.dumps(request(request_id=i)).encode()
        )
        for i in ids
    ]
    for future in futures:
        future.result(timeout=120)
    with CpuHog(), ResultCollector(stack.emulator, stack.results_subscription) as collector:
        worker = WorkerProcess(stack.env, tmp_path / "worker.log")
        try:
            collector.wait_for_requests(set(ids), timeout_s=600)
            wait_until_quiet(collector, QUIET_S, timeout_s=300)
        finally:
            assert worker.terminate() == 0, worker.log()[-3000:]
    counts = Counter(r["request_id"] for r in collector.snapshot())
    duplicates = {i: n for i, n in counts.items() if n > 1}
    print(
        f"\nload: {BACKLOG} requests, {sum(counts.values())} results, "
        f"{fault_proxy.count('ses_send')} SES sends, {len(duplicates)} duplicated"
    )
    assert duplicates == {}
    assert fault_proxy.count("ses_send") == BACKLOG
    assert len(moto.sent_messages()) == BACKLOG
