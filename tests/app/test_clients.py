"""The clients a long-running command opens from its settings (worker/app/clients.py), against
the Pub/Sub emulator and a SQLite ledger."""

from __future__ import annotations

import os
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from tests.support import fault_proxy as faults
from tests.support.worker_stack import Stack, make_stack
from worker.app.clients import open_clients
from worker.app.runtime import build_runtime
from worker.sending.errors import ThrottledError
from worker.sending.ses_session import Session


@pytest.fixture
def stack(pubsub_env: Any, fault_proxy: Any, tmp_path: Path) -> Stack:
    return make_stack(pubsub_env, tmp_path, fault_proxy.endpoint)


def test_the_runtime_leaves_the_environment_alone_and_reads_configurations_from_the_settings(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EMAIL_WORKER_SERVICE_CONFIG_URL", raising=False)
    before = dict(os.environ)
    runtime = build_runtime(stack.settings())
    try:
        assert runtime.clients.sessions is not None
        session = runtime.clients.sessions.get("billing")
    finally:
        runtime.close()
    assert dict(os.environ) == before
    assert isinstance(session, Session)
    assert session.service_config is not None
    assert session.service_config.location == f"file://{tmp_path}/production/billing.json"


def test_the_events_reader_s_clients_have_no_subscriber_and_no_sessions(stack: Stack) -> None:
    clients = open_clients(stack.settings(), subscriber=False, sessions=False)
    try:
        assert clients.subscriber is None
        assert clients.sessions is None
        assert clients.ledger is not None
        assert clients.topic_path("events") == f"projects/{clients.project}/topics/events"
    finally:
        clients.close()


def message_to_alice() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "billing@example.com"
    message["To"] = "alice@example.org"
    message["Subject"] = "throttled"
    message.set_content("body")
    return message


def test_the_worker_s_sessions_leave_a_throttled_send_to_the_pipeline_s_paced_retry(
    stack: Stack, moto: Any, fault_proxy: Any
) -> None:
    # botocore alone would repeat the throttled call within the send (tests/test_session.py):
    # the worker's retry waits for the send rate, tells the quota pacer, and stops on SIGTERM.
    fault_proxy.add_rule(faults.fail_first(1, faults.ses_error("TooManyRequestsException", 429)))
    runtime = build_runtime(stack.settings())
    try:
        assert runtime.clients.sessions is not None
        session = runtime.clients.sessions.get("billing")
        with pytest.raises(ThrottledError):
            session.send_email(message_to_alice())
        assert fault_proxy.count("ses_send") == 1
        assert len(session.send_email(message_to_alice())) == 1
    finally:
        runtime.close()
    assert fault_proxy.count("ses_send") == 2
