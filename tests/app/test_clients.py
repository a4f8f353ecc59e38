"""The clients a long-running command opens from its settings (worker/app/clients.py), against
the Pub/Sub emulator and a SQLite ledger."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.support.worker_stack import Stack, make_stack
from worker.app.clients import open_clients
from worker.app.runtime import build_runtime
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
