"""``email-worker dlq replay`` with per-service tenancy: what the request ledger cannot vouch
for (no record, a record past its retention, other content) is refused before anything is
published, by the rule the worker applies to the replay topic. Pub/Sub emulator, SQLite
ledger; the worker is not running."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli_runner import cli_env, dead_letter, invoke, listed, worker_reason
from tests.support.worker_stack import Stack, make_tenant_stack, request
from worker.ledger import LedgerKey, SqliteLedger, StoredResult, content_hash

_DAY_S = 24 * 3600.0


@pytest.fixture
def stack(pubsub_env: Any, fault_proxy: Any, tmp_path: Path) -> Stack:
    return make_tenant_stack(pubsub_env, tmp_path, fault_proxy.endpoint)


@pytest.fixture
def env(stack: Stack) -> dict[str, str]:
    return cli_env(stack)


def record_failure(stack: Stack, request_id: str, data: bytes, *, age_s: float = 0.0) -> None:
    """What the worker writes for a request of billing that failed, ``age_s`` ago."""
    settings = stack.settings()
    path = stack.config_dir.resolve() / "ledger.db"
    written_at = time.time() - age_s
    with SqliteLedger(
        path,
        claim_lease_s=60,
        retention_s=settings.ledger.retention_s,
        clock=lambda: written_at,
    ) as ledger:
        key = LedgerKey("billing", request_id)
        ledger.claim(key, owner="worker-1", content_hash=content_hash(data))
        ledger.complete(
            key,
            owner="worker-1",
            result=StoredResult("failed", error_code="identity_not_verified"),
        )


def failed_request(stack: Stack, request_id: str) -> tuple[bytes, str]:
    """A dead letter of billing's ``request_id``: its data and message id."""
    data = json.dumps(request(request_id=request_id)).encode()
    return data, dead_letter(stack, data, **worker_reason(request_id))


def replay_subscription(stack: Stack) -> str:
    name = stack.settings().topics.replay_subscription
    return f"projects/{stack.emulator.project_id}/subscriptions/{name}"


def replays_published(stack: Stack) -> bool:
    return not stack.nothing_more(replay_subscription(stack))


def test_a_replay_the_ledger_has_no_record_of_is_refused_before_publishing(
    stack: Stack, env: dict[str, str]
) -> None:
    record_failure(stack, "known", b"{}")  # the ledger exists, without r1
    _, message_id = failed_request(stack, "r1")
    result = invoke(env, "dlq", "replay", message_id, "--yes")
    assert result.exit_code == 1
    assert (
        f"email-worker: {message_id} (billing/r1) cannot be replayed: the ledger has no record "
        "of it (refused before it was recorded, or past the ledger's retention of 8 days?)"
    ) in result.stderr
    assert "Replayed 0" in result.stdout
    assert not replays_published(stack)
    assert [e["message_id"] for e in listed(env)] == [message_id]


def test_a_dry_run_reports_a_replay_the_ledger_cannot_vouch_for(
    stack: Stack, env: dict[str, str]
) -> None:
    record_failure(stack, "known", b"{}")
    _, message_id = failed_request(stack, "r1")
    result = invoke(env, "dlq", "replay", "--request-id", "r1", "--dry-run")
    assert result.exit_code == 1
    assert f"{message_id} (billing/r1) cannot be replayed: the ledger has no record" in (
        result.stderr
    )
    assert "Would replay" not in result.stdout
    assert not replays_published(stack)


def test_a_replay_whose_ledger_record_is_past_its_retention_is_refused(
    stack: Stack, env: dict[str, str]
) -> None:
    data, message_id = failed_request(stack, "old-1")
    record_failure(stack, "old-1", data, age_s=9 * _DAY_S)  # retention: 8 days
    result = invoke(env, "dlq", "replay", "--service", "billing", "--request-id", "old-1", "-y")
    assert result.exit_code == 1
    assert f"{message_id} (billing/old-1) cannot be replayed: the ledger has no record of it" in (
        result.stderr
    )
    assert "retention of 8 days" in result.stderr
    assert not replays_published(stack)
    assert len(listed(env)) == 1


def test_a_replay_whose_ledger_record_is_of_other_content_is_refused(
    stack: Stack, env: dict[str, str]
) -> None:
    _, message_id = failed_request(stack, "r1")
    record_failure(stack, "r1", b"other content under the same request id")
    result = invoke(env, "dlq", "replay", message_id, "--yes")
    assert result.exit_code == 1
    assert f"{message_id} (billing/r1) cannot be replayed: the ledger's record of that " in (
        result.stderr
    )
    assert not replays_published(stack)


def test_only_the_replays_the_ledger_vouches_for_are_published(
    stack: Stack, env: dict[str, str]
) -> None:
    vouched_data, vouched = failed_request(stack, "r1")
    record_failure(stack, "r1", vouched_data)
    _, unknown = failed_request(stack, "r2")
    dry_run = invoke(env, "dlq", "replay", "--all", "--dry-run")
    assert dry_run.exit_code == 1
    assert "Would replay 1" in dry_run.stdout
    result = invoke(env, "dlq", "replay", "--all", "--yes")
    assert result.exit_code == 1
    assert "Replayed 1" in result.stdout
    assert f"{unknown} (billing/r2) cannot be replayed" in result.stderr
    assert "1 not replayed: the ledger cannot vouch for them" in result.stderr
    assert vouched not in result.stderr
    [message] = [m.message for m in stack._collect(replay_subscription(stack), 1, 30)]
    assert message.data == vouched_data
    assert [e["message_id"] for e in listed(env)] == [unknown]
