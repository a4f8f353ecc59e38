"""`email-worker pull` as a process: SIGTERM under load stops it cleanly and loses nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.support import fault_proxy as faults
from tests.support.worker_stack import Stack, make_stack, request

EMAIL_WORKER = str(Path(__file__).resolve().parents[1] / ".venv" / "bin" / "email-worker")


@pytest.fixture
def stack(pubsub_env: Any, fault_proxy: Any, tmp_path: Path) -> Stack:
    return make_stack(pubsub_env, tmp_path, fault_proxy.endpoint)


def start_worker(stack: Stack, log_path: Path, **extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, **stack.env, **extra}
    with log_path.open("ab") as log:
        return subprocess.Popen([EMAIL_WORKER, "pull"], env=env, stdout=log, stderr=log)


def test_sigterm_under_load_exits_zero_in_time_and_every_request_gets_one_result(
    stack: Stack, moto: Any, fault_proxy: Any, tmp_path: Path
) -> None:
    # Slow SES down so that many sends are in flight when the signal arrives.
    fault_proxy.add_rule(faults.delay(0.4, lambda r: r.is_ses_send))
    total = 60
    for n in range(total):
        stack.publish(request(request_id=f"load-{n}"))
    log_path = tmp_path / "worker.log"
    worker = start_worker(stack, log_path, EMAIL_WORKER_SHUTDOWN_TIMEOUT_S="8")
    first = stack.results(5, timeout_s=60)
    worker.send_signal(signal.SIGTERM)
    started = time.monotonic()
    assert worker.wait(timeout=20) == 0, log_path.read_text()
    assert time.monotonic() - started < 15  # the 8 s shutdown timeout, plus start-up slack
    assert "stopping" in log_path.read_text()

    # The emulator notices a closed stream late, and messages it routes to it meanwhile stay
    # stuck for minutes (real Pub/Sub redelivers them on the ack deadline). Starting the next
    # worker a moment later, as a new instance would be, keeps this test about our shutdown.
    time.sleep(3)
    restarted = start_worker(stack, log_path)
    try:
        rest: list[dict[str, Any]] = []
        expected = {f"load-{n}" for n in range(total)}
        deadline = time.monotonic() + 120
        while {r["request_id"] for r in first + rest} != expected:
            assert time.monotonic() < deadline, (
                "some requests never got a result:\n" + (log_path.read_text()[-5000:])
            )
            arrived = stack.emulator.pull(stack.results_subscription, max_messages=100, timeout_s=5)
            rest += [json.loads(m.message.data) for m in arrived]
        # Anything still arriving now is a duplicate; collect it to count it.
        late = stack.emulator.pull(stack.results_subscription, max_messages=100, timeout_s=3)
        rest += [json.loads(m.message.data) for m in late]
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(timeout=20)
    counts = Counter(r["request_id"] for r in first + rest)
    assert set(counts) == {f"load-{n}" for n in range(total)}
    # A graceful stop finishes what is in flight, so duplicates should not occur; on a starved
    # machine a request still running at the timeout may be sent again after the restart, and
    # at most the worker's concurrency (32) of them can be.
    duplicates = sum(c - 1 for c in counts.values())
    print(f"duplicate results after SIGTERM and restart: {duplicates}")
    assert duplicates <= 32
    assert len(moto.sent_messages()) == total + duplicates


def test_invalid_settings_exit_with_code_2_and_one_clear_message(tmp_path: Path) -> None:
    env = {**os.environ, "EMAIL_WORKER_CONCURRENCY": "many", "EMAIL_WORKER_ALLOWED_SERVICES": "x"}
    completed = subprocess.run([EMAIL_WORKER, "pull"], env=env, capture_output=True, timeout=60)
    assert completed.returncode == 2
    assert b"EMAIL_WORKER_CONCURRENCY='many': not a whole number" in completed.stderr
    assert b"Traceback" not in completed.stderr


def test_pull_without_allowed_services_refuses_to_start(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "EMAIL_WORKER_ALLOWED_SERVICES"}
    completed = subprocess.run([EMAIL_WORKER, "pull"], env=env, capture_output=True, timeout=60)
    assert completed.returncode == 2
    assert b"EMAIL_WORKER_ALLOWED_SERVICES" in completed.stderr


def test_pull_from_a_missing_subscription_exits_1_without_a_traceback(
    stack: Stack, tmp_path: Path
) -> None:
    log_path = tmp_path / "worker.log"
    worker = start_worker(stack, log_path, EMAIL_WORKER_SUBSCRIPTION="does-not-exist")
    assert worker.wait(timeout=60) == 1
    assert "Traceback" not in log_path.read_text()
