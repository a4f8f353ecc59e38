"""`email-worker pull` as a process: SIGTERM under load stops it cleanly and loses nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.support import fault_proxy as faults
from tests.support.console import stack_ledger
from tests.support.tcp_relay import TcpRelay
from tests.support.worker_process import ResultCollector
from tests.support.worker_stack import Stack, make_stack, request
from worker.ledger.send_counts import hour_of
from worker.ledger.service_count_stores import service_counts_of

EMAIL_WORKER = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "email-worker")


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
    expected = {f"load-{n}" for n in range(total)}
    log_path = tmp_path / "worker.log"
    # The emulator cannot end a stream its client cancels, and goes on routing messages to
    # it for minutes; the relay ends it, as Google's front end does (see tcp_relay).
    with (
        TcpRelay(stack.emulator.port, end_streams=True) as relay,
        ResultCollector(stack.emulator, stack.results_subscription) as collector,
    ):
        via_relay = {"PUBSUB_EMULATOR_HOST": relay.host}
        worker = start_worker(stack, log_path, EMAIL_WORKER_SHUTDOWN_TIMEOUT_S="8", **via_relay)
        collector.wait_for_count(5, timeout_s=60)
        worker.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert worker.wait(timeout=20) == 0, log_path.read_text()
        assert time.monotonic() - started < 15  # the 8 s shutdown timeout, plus start-up slack
        assert "stopping" in log_path.read_text()

        restarted = start_worker(stack, log_path, **via_relay)
        try:
            collector.wait_for_requests(expected, timeout_s=120)
            time.sleep(3)  # anything arriving now is a duplicate; let it arrive to count it
        finally:
            restarted.send_signal(signal.SIGTERM)
            restarted.wait(timeout=20)
        results = collector.snapshot()
    counts = Counter(r["request_id"] for r in results)
    assert set(counts) == expected
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


def test_pull_reports_every_invalid_or_missing_setting_in_one_message() -> None:
    unset = ("EMAIL_WORKER_ALLOWED_SERVICES", "GOOGLE_CLOUD_PROJECT")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env["EMAIL_WORKER_CONCURRENCY"] = "many"
    completed = subprocess.run([EMAIL_WORKER, "pull"], env=env, capture_output=True, timeout=60)
    assert completed.returncode == 2
    stderr = completed.stderr.decode()
    assert stderr.count("invalid settings") == 1
    assert "EMAIL_WORKER_CONCURRENCY='many': not a whole number" in stderr
    assert "GOOGLE_CLOUD_PROJECT must name the Google Cloud project" in stderr
    assert "EMAIL_WORKER_ALLOWED_SERVICES must list at least one service" in stderr
    assert "Traceback" not in stderr


def test_pull_from_a_missing_subscription_exits_1_without_a_traceback(
    stack: Stack, tmp_path: Path
) -> None:
    log_path = tmp_path / "worker.log"
    worker = start_worker(stack, log_path, EMAIL_WORKER_SUBSCRIPTION="does-not-exist")
    assert worker.wait(timeout=60) == 1
    assert "Traceback" not in log_path.read_text()


def test_a_sigterm_flushes_the_outcome_counts_to_the_ledger(
    stack: Stack, moto: Any, tmp_path: Path
) -> None:
    stack.publish(request(request_id="counted-1", to=["a@example.org", "b@example.org"]))
    stack.publish(request(request_id="counted-2", to=[]))
    log_path = tmp_path / "worker.log"
    with (
        TcpRelay(stack.emulator.port, end_streams=True) as relay,
        ResultCollector(stack.emulator, stack.results_subscription) as collector,
    ):
        worker = start_worker(stack, log_path, PUBSUB_EMULATOR_HOST=relay.host)
        collector.wait_for_count(2, timeout_s=60)
        worker.send_signal(signal.SIGTERM)  # most likely before the counter's first flush
        assert worker.wait(timeout=20) == 0, log_path.read_text()
    now = hour_of(time.time())
    with stack_ledger(stack) as ledger:
        hours = service_counts_of(ledger).read("billing", range(now - 1, now + 1))
    assert list(hours.values()) == [{"sent": 1, "recipients": 2, "rejected": 1}]
