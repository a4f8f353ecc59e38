"""Scheduled sending with real ``email-worker pull`` processes, the Pub/Sub emulator, moto and
one SQLite ledger file shared by every process.

The horizons are short so that the tests stay short: a ``send_at`` more than
``EMAIL_WORKER_SCHEDULE_MIN_AHEAD_S`` (here 5 s, a minute in production) ahead is kept, and
each worker looks for due requests every second. The workers reach the emulator through
``TcpRelay(end_streams=True)``, which ends a killed worker's streams as the real service does.
"""

from __future__ import annotations

import re
import time
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support.tcp_relay import TcpRelay
from tests.support.worker_process import ResultCollector, WorkerProcess
from tests.support.worker_stack import Stack, make_stack, request

DUE_IN_S = 20.0
SCHEDULE_ENV = {
    "EMAIL_WORKER_SCHEDULE_MIN_AHEAD_S": "5",
    "EMAIL_WORKER_SCHEDULE_POLL_S": "1",
    "EMAIL_WORKER_SCHEDULE_LEASE_S": "5",
}
_SUBJECT = re.compile(r"^Subject: (sched-\S+)\r?$", re.MULTILINE)


@pytest.fixture
def stack(pubsub_env: Any, aws_env: Any, tmp_path: Path) -> Stack:
    return make_stack(pubsub_env, tmp_path, aws_env.endpoint)


def started(*workers: WorkerProcess, timeout_s: float = 90.0) -> None:
    """Until each worker pulls (starting takes a while on a busy machine)."""
    deadline = time.monotonic() + timeout_s
    for worker in workers:
        while not any(r.get("message") == "pulling" for r in worker.log_records()):
            assert worker.running, worker.log()[-3000:]
            assert time.monotonic() < deadline, "a worker did not start pulling"
            time.sleep(0.2)


def rfc3339(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat()


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def sends(moto: Any, run: str) -> Counter[str]:
    """How often each request of this run (named by its subject) reached SES."""
    counted: Counter[str] = Counter()
    for message in moto.sent_messages():
        raw = message.raw_data
        text = raw if isinstance(raw, str) else (raw or b"").decode(errors="replace")
        match = _SUBJECT.search(text or "") or _SUBJECT.search(f"Subject: {message.subject}")
        if match and match.group(1).startswith(f"sched-{run}-"):
            counted[match.group(1).removeprefix("sched-")] += 1
    return counted


def statuses(collector: ResultCollector) -> dict[str, list[str]]:
    found: dict[str, list[str]] = defaultdict(list)
    for result in collector.snapshot():
        found[result["request_id"]].append(result["status"])
    return found


def wait_for_statuses(
    collector: ResultCollector, request_ids: list[str], status: str, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        seen = statuses(collector)
        missing = [r for r in request_ids if status not in seen.get(r, [])]
        if not missing:
            return
        assert time.monotonic() < deadline, f"no {status} result for {missing[:5]}"
        time.sleep(0.2)


def scheduled_request(run: str, n: int, send_at: float) -> dict[str, Any]:
    request_id = f"{run}-{n}"
    return request(request_id=request_id, subject=f"sched-{request_id}", send_at=rfc3339(send_at))


def test_requests_scheduled_ahead_are_sent_once_on_time_by_three_workers_one_killed(
    stack: Stack, moto: Any, tmp_path: Path, clean_metadata: Any
) -> None:
    run = uuid.uuid4().hex[:8]
    relay = TcpRelay(stack.emulator.port, end_streams=True)
    env = {**stack.env, **SCHEDULE_ENV, "PUBSUB_EMULATOR_HOST": relay.host}
    with relay, ResultCollector(stack.emulator, stack.results_subscription) as collector:
        workers = [WorkerProcess(env, tmp_path / f"worker-{n}.log") for n in range(3)]
        started(*workers)
        send_at = time.time() + DUE_IN_S
        documents = [scheduled_request(run, n, send_at) for n in range(30)]
        ids = [d["request_id"] for d in documents]
        kept, cancelled = ids[:25], ids[25:]
        for document in documents:
            stack.publish(document)
        wait_for_statuses(collector, ids, "scheduled", timeout_s=15)
        for request_id in cancelled:
            stack.publish({"version": 1, "cancel": request_id, "service_id": "billing"})
        wait_for_statuses(collector, cancelled, "cancelled", timeout_s=15)
        assert time.time() < send_at - 2, "the set-up took too long for the test to mean much"
        workers[0].kill()  # between scheduling and the due time: its share is the others'
        wait_for_statuses(collector, kept, "sent", timeout_s=DUE_IN_S + 60)
        time.sleep(3)  # time for a duplicate to show up
        for worker in workers[1:]:
            assert worker.terminate() == 0, worker.log()[-3000:]
        results = collector.snapshot()

    sent = sends(moto, run)
    assert dict(sent) == dict.fromkeys(kept, 1)
    final = {r["request_id"]: r for r in results if r["status"] == "sent"}
    lateness = [epoch(final[r]["completed_at"].replace("Z", "+00:00")) - send_at for r in kept]
    assert min(lateness) >= 0
    assert max(lateness) < 60
    seen = statuses(collector)
    assert all(set(seen[r]) == {"scheduled", "cancelled"} for r in cancelled)
    print(f"\nscheduled: 25 sent once, latest {max(lateness):.1f}s after send_at; 5 cancelled")


def test_a_worker_restarted_across_the_due_time_sends_what_fell_due_while_it_was_down(
    stack: Stack, moto: Any, tmp_path: Path, clean_metadata: Any
) -> None:
    run = uuid.uuid4().hex[:8]
    relay = TcpRelay(stack.emulator.port, end_streams=True)
    env = {**stack.env, **SCHEDULE_ENV, "PUBSUB_EMULATOR_HOST": relay.host}
    with relay, ResultCollector(stack.emulator, stack.results_subscription) as collector:
        first = WorkerProcess(env, tmp_path / "worker-1.log")
        started(first)
        send_at = time.time() + 12
        documents = [scheduled_request(run, n, send_at) for n in range(10)]
        ids = [d["request_id"] for d in documents]
        for document in documents:
            stack.publish(document)
        wait_for_statuses(collector, ids, "scheduled", timeout_s=15)
        first.kill()
        time.sleep(max(0.0, send_at - time.time()) + 3)
        assert sends(moto, run) == Counter()
        second = WorkerProcess(env, tmp_path / "worker-2.log")
        wait_for_statuses(collector, ids, "sent", timeout_s=120)
        assert second.terminate() == 0, second.log()[-3000:]

    assert dict(sends(moto, run)) == dict.fromkeys(ids, 1)


def test_a_request_too_far_ahead_or_invalid_is_rejected_at_once(
    stack: Stack, tmp_path: Path, clean_metadata: Any
) -> None:
    in_an_hour = time.time() + 3600
    too_far = request(request_id="too-far", send_at=rfc3339(time.time() + 31 * 86400))
    bad_sender = request(
        request_id="bad-sender", send_at=rfc3339(in_an_hour), **{"from": "x@elsewhere.example"}
    )
    relay = TcpRelay(stack.emulator.port, end_streams=True)
    env = {**stack.env, **SCHEDULE_ENV, "PUBSUB_EMULATOR_HOST": relay.host}
    with relay, ResultCollector(stack.emulator, stack.results_subscription) as collector:
        worker = WorkerProcess(env, tmp_path / "worker.log")
        started(worker)
        stack.publish(too_far)
        stack.publish(bad_sender)
        collector.wait_for_requests({"too-far", "bad-sender"}, timeout_s=20)
        assert worker.terminate() == 0, worker.log()[-3000:]
        results = {r["request_id"]: r for r in collector.snapshot()}

    assert (results["too-far"]["status"], results["too-far"]["error"]["code"]) == (
        "rejected",
        "send_at_too_far",
    )
    assert results["bad-sender"]["error"]["code"] == "sender_not_allowed"
