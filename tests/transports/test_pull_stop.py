"""The pull worker at its shutdown timeout: deliveries still stuck before their SES call are
handed back with their ledger claims released, and never send afterwards.

A stop normally lets every delivery hand itself back at once
(tests/processing/test_pipeline_stop.py); one blocked in a call that a stop cannot cut short
(here the service's session, as when STS hangs) is abandoned when the timeout runs out, and
the process exits without it.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.processing.test_pipeline import CONFIG, sent
from tests.support.pubsub_emulator import subscriber_client
from tests.support.tcp_relay import TcpRelay
from tests.support.worker_stack import Stack, make_stack, request
from worker.app.runtime import build_runtime
from worker.ledger import LedgerKey
from worker.sending.session_cache import SessionCache
from worker.sending.testing import RecordingSession
from worker.transports.pull import PullWorker


@pytest.fixture
def stack(pubsub_env: Any, fault_proxy: Any, tmp_path: Path) -> Stack:
    return make_stack(pubsub_env, tmp_path, fault_proxy.endpoint)


def test_at_the_shutdown_timeout_a_delivery_stuck_before_its_ses_call_gives_its_claim_back(
    stack: Stack,
) -> None:
    runtime = build_runtime(stack.settings(EMAIL_WORKER_SHUTDOWN_TIMEOUT_S="1"))
    session = RecordingSession(sent, service_config=CONFIG)
    stuck, let_go = threading.Event(), threading.Event()

    def hanging_sts(_: str) -> RecordingSession:
        stuck.set()
        let_go.wait(30)
        return session

    runtime.handler.deps.sessions = SessionCache(hanging_sts, ttl_s=60)
    ledger = runtime.handler.deps.ledger
    assert ledger is not None
    try:
        with TcpRelay(stack.emulator.port, end_streams=True) as relay:
            subscriber = subscriber_client(relay.host)
            worker = PullWorker(runtime.settings, runtime.handler, subscriber)
            thread = threading.Thread(target=worker.run, daemon=True)
            thread.start()
            stack.publish(request(request_id="stuck-1"))
            assert stuck.wait(60), "the delivery never reached its session"
            record = ledger.get(LedgerKey("billing", "stuck-1"))
            assert record is not None
            assert record.owner is not None  # claimed, and stuck before its SES call
            worker.stop()
            thread.join(10)
            assert not thread.is_alive(), "the worker did not stop at its shutdown timeout"
            subscriber.close()
        assert worker.abandoned == 1
        record = ledger.get(LedgerKey("billing", "stuck-1"))
        assert record is not None
        assert record.owner is None  # released: the next delivery sends at once
        assert record.result is None
        assert len(runtime.handler.deps.claims) == 0
        # The abandoned delivery goes on once its session comes, but must not send.
        let_go.set()
        handed_back = {"outcome": "retry", "error_code": "worker_stopped"}
        registry = runtime.metrics.registry
        deadline = time.monotonic() + 10
        while not registry.get_sample_value("email_worker_requests_total", handed_back):
            assert time.monotonic() < deadline, "the abandoned delivery never finished"
            time.sleep(0.02)
        assert session.calls == 0
    finally:
        let_go.set()
        runtime.close()
