"""`email-worker serve` (and `pull` with PORT) as processes: start-up checks, health, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from tests.support import fault_proxy as faults
from tests.support.ports import LOOPBACK, free_port, wait_for_port
from tests.support.push import create_push_subscription, delete_subscription, envelope
from tests.support.worker_stack import Stack, make_stack, request
from worker.ledger import LedgerKey, SqliteLedger

EMAIL_WORKER = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "email-worker")


@pytest.fixture
def stack(pubsub_env: Any, fault_proxy: Any, tmp_path: Path) -> Stack:
    return make_stack(pubsub_env, tmp_path, fault_proxy.endpoint)


class Process:
    def __init__(self, popen: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        self.popen = popen
        self.port = port
        self.log_path = log_path

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def log_records(self) -> list[dict[str, Any]]:
        records = []
        for line in self.log_path.read_text().splitlines():
            if line.startswith("{"):
                records.append(json.loads(line))
        return records

    def stop(self, timeout_s: float = 30) -> int:
        self.popen.send_signal(signal.SIGTERM)
        return self.popen.wait(timeout=timeout_s)


@contextmanager
def running(command: str, stack: Stack, tmp_path: Path, **extra: str) -> Iterator[Process]:
    port = free_port()
    env = {
        **os.environ,
        **stack.env,
        "PORT": str(port),
        "EMAIL_WORKER_HTTP_HOST": LOOPBACK,
        **extra,
    }
    log_path = tmp_path / f"{command}.log"
    with log_path.open("ab") as log:
        popen = subprocess.Popen([EMAIL_WORKER, command], env=env, stdout=log, stderr=log)
    process = Process(popen, port, log_path)
    try:
        wait_for_port(LOOPBACK, port, timeout_s=60)
        yield process
    finally:
        if popen.poll() is None:
            popen.kill()
            popen.wait(timeout=10)


def test_serve_without_push_auth_settings_refuses_to_start(stack: Stack) -> None:
    env = {**os.environ, **stack.env}
    completed = subprocess.run([EMAIL_WORKER, "serve"], env=env, capture_output=True, timeout=60)
    assert completed.returncode == 2
    stderr = completed.stderr.decode()
    assert "EMAIL_WORKER_PUSH_AUDIENCE and EMAIL_WORKER_PUSH_SERVICE_ACCOUNT must be set" in stderr
    assert "EMAIL_WORKER_PUSH_AUTH=off" in stderr
    assert "Traceback" not in stderr


def test_serve_with_only_an_audience_names_the_missing_service_account(stack: Stack) -> None:
    env = {**os.environ, **stack.env, "EMAIL_WORKER_PUSH_AUDIENCE": "https://w.example"}
    completed = subprocess.run([EMAIL_WORKER, "serve"], env=env, capture_output=True, timeout=60)
    assert completed.returncode == 2
    assert b"EMAIL_WORKER_PUSH_SERVICE_ACCOUNT must be set" in completed.stderr


def test_serve_with_auth_off_warns_and_answers_health_checks(stack: Stack, tmp_path: Path) -> None:
    with running("serve", stack, tmp_path, EMAIL_WORKER_PUSH_AUTH="off") as server:
        health = httpx.get(f"{server.url}/healthz", timeout=5)
        ready = httpx.get(f"{server.url}/readyz", timeout=5)
        metrics = httpx.get(f"{server.url}/metrics", timeout=5)
        assert server.stop() == 0
    assert (health.status_code, ready.status_code, metrics.status_code) == (200, 200, 200)
    warnings = [r for r in server.log_records() if r["severity"] == "WARNING"]
    assert any("push authentication is OFF" in r["message"] for r in warnings)


def test_serve_behind_an_emulator_push_subscription_sends_what_is_published(
    stack: Stack, tmp_path: Path, moto: Any
) -> None:
    with running("serve", stack, tmp_path, EMAIL_WORKER_PUSH_AUTH="off") as server:
        subscription = create_push_subscription(stack, f"{server.url}/pubsub/push")
        try:
            stack.publish(request(request_id="from-the-emulator"))
            [result] = stack.results(1)
        finally:
            delete_subscription(stack, subscription)
        metrics = httpx.get(f"{server.url}/metrics", timeout=5).text
        assert server.stop() == 0
    assert result["status"] == "sent"
    assert result["request_id"] == "from-the-emulator"
    assert len(moto.sent_messages()) == 1
    assert 'email_worker_requests_total{error_code="none",outcome="sent"} 1.0' in metrics
    assert 'email_worker_push_responses_total{code="204"} 1.0' in metrics


def test_serve_with_auth_on_refuses_an_unsigned_push(
    stack: Stack, tmp_path: Path, metadata_server: Any, moto: Any
) -> None:
    auth = {
        "EMAIL_WORKER_PUSH_AUDIENCE": "https://w.example/pubsub/push",
        "EMAIL_WORKER_PUSH_SERVICE_ACCOUNT": "pusher@test-project.iam.gserviceaccount.com",
        "EMAIL_WORKER_PUSH_CERTS_URL": metadata_server.certs_url,
    }
    with running("serve", stack, tmp_path, **auth) as server:
        response = httpx.post(f"{server.url}/pubsub/push", json=envelope(request()), timeout=10)
        assert server.stop() == 0
    assert response.status_code == 401
    assert moto.sent_messages() == []
    assert not any("OFF" in r["message"] for r in server.log_records())


class SesStall:
    """Holds SES sends at the proxy for up to ``seconds``: ``reached`` is set when one arrives.

    ``then`` (a fake answer) replaces forwarding: a send abandoned by a stopped server must
    not reach moto later, in another test. ``release()`` ends the stall early.
    """

    def __init__(self, fault_proxy: Any, seconds: float, then: Any = None) -> None:
        self.reached = threading.Event()
        self._released = threading.Event()
        self._seconds = seconds
        self._then = then
        fault_proxy.add_rule(self._rule)

    def _rule(self, proxied: Any) -> Any:
        if not proxied.is_ses_send:
            return None
        self.reached.set()
        self._released.wait(self._seconds)
        return self._then

    def release(self) -> None:
        self._released.set()


def push_in_background(url: str, answers: list[Any]) -> threading.Thread:
    def push() -> None:
        try:
            answers.append(httpx.post(url, json=envelope(request()), timeout=30).status_code)
        except httpx.HTTPError as error:
            answers.append(type(error).__name__)

    thread = threading.Thread(target=push)
    thread.start()
    return thread


def test_sigterm_lets_an_in_flight_push_finish_and_exits_0(
    stack: Stack, tmp_path: Path, fault_proxy: Any, moto: Any
) -> None:
    stall = SesStall(fault_proxy, 2.0)
    answers: list[Any] = []
    with running(
        "serve", stack, tmp_path, EMAIL_WORKER_PUSH_AUTH="off", EMAIL_WORKER_SHUTDOWN_TIMEOUT_S="8"
    ) as server:
        pushing = push_in_background(f"{server.url}/pubsub/push", answers)
        assert stall.reached.wait(30), "the push never reached SES"
        server.popen.send_signal(signal.SIGTERM)
        pushing.join(timeout=30)
        assert server.popen.wait(timeout=15) == 0
    assert answers == [204]
    assert len(moto.sent_messages()) == 1
    [result] = stack.results(1)  # published before the process exited
    assert result["status"] == "sent"


def test_a_push_outlasting_the_shutdown_timeout_is_abandoned_unanswered(
    stack: Stack, tmp_path: Path, fault_proxy: Any
) -> None:
    stall = SesStall(fault_proxy, 15.0, then=faults.hang_up())
    answers: list[Any] = []
    with running(
        "serve", stack, tmp_path, EMAIL_WORKER_PUSH_AUTH="off", EMAIL_WORKER_SHUTDOWN_TIMEOUT_S="1"
    ) as server:
        pushing = push_in_background(f"{server.url}/pubsub/push", answers)
        assert stall.reached.wait(30), "the push never reached SES"
        server.popen.send_signal(signal.SIGTERM)
        started = time.monotonic()
        try:
            code = server.popen.wait(timeout=15)
            elapsed = time.monotonic() - started
        finally:
            stall.release()
        pushing.join(timeout=30)
    assert code == 0
    assert elapsed < 5
    assert len(answers) == 1
    assert answers[0] != 204  # no ack: Pub/Sub delivers it again
    assert any("abandoned" in r["message"] for r in server.log_records())
    # Its SES call may have gone through: only its claim stays, for the takeover to settle.
    with SqliteLedger(tmp_path / "ledger.db", claim_lease_s=90) as ledger:
        record = ledger.get(LedgerKey("billing", "1001"))
    assert record is not None
    assert record.owner is not None


def test_pull_serves_health_readiness_and_metrics_on_port(stack: Stack, tmp_path: Path) -> None:
    with running("pull", stack, tmp_path) as worker:
        stack.publish(request(request_id="pulled"))
        [result] = stack.results(1)
        health = httpx.get(f"{worker.url}/healthz", timeout=5)
        ready = httpx.get(f"{worker.url}/readyz", timeout=5)
        metrics = httpx.get(f"{worker.url}/metrics", timeout=5).text
        pushed = httpx.post(f"{worker.url}/pubsub/push", json={}, timeout=5)
        assert worker.stop() == 0
    assert result["status"] == "sent"
    assert health.status_code == 200
    assert ready.status_code == 200
    assert 'email_worker_requests_total{error_code="none",outcome="sent"} 1.0' in metrics
    assert pushed.status_code == 404  # pull mode has no push endpoint


def test_a_push_stuck_before_its_ses_call_at_the_shutdown_timeout_gives_its_claim_back(
    stack: Stack, tmp_path: Path, moto: Any
) -> None:
    config = tmp_path / "production" / "billing.json"
    key = LedgerKey("billing", "1001")
    answers: list[Any] = []
    with (
        SqliteLedger(tmp_path / "ledger.db", claim_lease_s=90) as ledger,
        running(
            "serve",
            stack,
            tmp_path,
            EMAIL_WORKER_PUSH_AUTH="off",
            EMAIL_WORKER_SHUTDOWN_TIMEOUT_S="1",
            # The quota pacer would load the service's session at start, before the FIFO.
            EMAIL_WORKER_QUOTA_PACING="off",
        ) as server,
    ):
        # Once the server has started (its checks read the configuration): reading the
        # service's configuration now blocks (a FIFO with no writer), as a hung fetch would,
        # so the push has claimed its request and is stuck before its SES call.
        config.unlink()
        os.mkfifo(config)
        pushing = push_in_background(f"{server.url}/pubsub/push", answers)
        deadline = time.monotonic() + 30
        while ledger.get(key) is None:
            assert time.monotonic() < deadline, "the push never claimed its request"
            time.sleep(0.05)
        server.popen.send_signal(signal.SIGTERM)
        code = server.popen.wait(timeout=15)
        pushing.join(timeout=30)
        record = ledger.get(key)
    assert code == 0
    assert answers[0] != 204
    [abandoned] = [r for r in server.log_records() if "abandoned" in r["message"]]
    assert abandoned["claims_released"] == 1
    assert record is not None
    assert record.owner is None  # Pub/Sub's next delivery claims it at once
    assert moto.sent_messages() == []
