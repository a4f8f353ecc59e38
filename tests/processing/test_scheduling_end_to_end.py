"""Scheduled requests and cancels with per-service tenancy, end to end: the pull worker on the
Pub/Sub emulator, moto, and the stack's SQLite ledger. A cancel is taken only from the
scheduling service's own topic."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support.worker_stack import Stack, make_tenant_stack, request
from worker.ledger import LedgerKey, SqliteLedger
from worker.ledger.schedule_stores import schedules_of
from worker.ledger.schedules import ScheduleState


@pytest.fixture
def stack(pubsub_env: Any, fault_proxy: Any, tmp_path: Path) -> Stack:
    return make_tenant_stack(pubsub_env, tmp_path, fault_proxy.endpoint)


def in_an_hour() -> str:
    return datetime.fromtimestamp(time.time() + 3600, UTC).isoformat()


def state_of(stack: Stack, request_id: str) -> ScheduleState | None:
    path = stack.env["EMAIL_WORKER_LEDGER"].removeprefix("sqlite:///")
    with SqliteLedger(path, claim_lease_s=90) as ledger:
        kept = schedules_of(ledger).get(LedgerKey("billing", request_id))
    return None if kept is None else kept.state


def test_a_cancel_from_another_services_topic_is_refused_and_its_own_cancels(
    stack: Stack,
) -> None:
    with stack.running():
        stack.publish_as("billing", request(request_id="trial-1", send_at=in_an_hour()))
        [scheduled] = stack.results(1)
        stack.publish_as("shop", {"version": 1, "cancel": "trial-1", "service_id": "billing"})
        stack.publish_as("shop", {"version": 1, "cancel": "trial-1"})
        refusals = stack.results(2)
        assert state_of(stack, "trial-1") is ScheduleState.SCHEDULED
        stack.publish_as("billing", {"version": 1, "cancel": "trial-1"})
        [cancelled] = stack.results(1)

    assert (scheduled["service_id"], scheduled["status"]) == ("billing", "scheduled")
    assert sorted((r["service_id"], r["error"]["code"]) for r in refusals) == [
        ("shop", "publisher_not_allowed"),
        ("shop", "schedule_not_found"),
    ]
    assert (cancelled["service_id"], cancelled["status"]) == ("billing", "cancelled")
    assert state_of(stack, "trial-1") is ScheduleState.CANCELLED
