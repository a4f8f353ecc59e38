"""``email-worker schedule list`` / ``cancel`` and ``status`` of a scheduled request, on a real
SQLite ledger; ``cancel`` publishes the cancelled result on the Pub/Sub emulator."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli_runner import invoke
from tests.support.pubsub_emulator import PubSubEmulator
from worker.formats.result import EmailResult
from worker.ledger import LedgerKey, SqliteLedger
from worker.ledger.schedule_stores import schedules_of
from worker.ledger.schedules import Schedule

NOW = time.time()


@pytest.fixture
def ledger_file(tmp_path: Path) -> Path:
    return tmp_path / "ledger.db"


@pytest.fixture
def ledger(ledger_file: Path) -> Iterator[SqliteLedger]:
    with SqliteLedger(ledger_file, claim_lease_s=90) as opened:
        yield opened


@pytest.fixture
def env(ledger_file: Path) -> dict[str, str]:
    return {
        "EMAIL_WORKER_LEDGER": f"sqlite:///{ledger_file}",
        "GOOGLE_CLOUD_PROJECT": "test-project",
        "COLUMNS": "250",
    }


def scheduled(
    ledger: SqliteLedger, request_id: str, due_in_s: float, service: str = "billing"
) -> None:
    schedules_of(ledger).add(
        Schedule(
            key=LedgerKey(service, request_id),
            due_at=NOW + due_in_s,
            data=b"{}",
            message_id="m-" + request_id,
            content_hash="h-" + request_id,
        )
    )


def test_schedule_list_shows_a_services_requests_earliest_first(
    ledger: SqliteLedger, env: dict[str, str]
) -> None:
    scheduled(ledger, "late", 7200)
    scheduled(ledger, "soon", 600)
    scheduled(ledger, "theirs", 600, service="shop")

    result = invoke(env, "schedule", "list", "billing", "--json")

    assert result.exit_code == 0, result.output
    listed = [json.loads(line) for line in result.stdout.splitlines()]
    assert [item["request_id"] for item in listed] == ["soon", "late"]
    assert listed[0]["send_at"].endswith("Z")


def test_schedule_list_due_before_leaves_out_later_ones(
    ledger: SqliteLedger, env: dict[str, str]
) -> None:
    scheduled(ledger, "late", 7200)
    scheduled(ledger, "soon", 600)
    before = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW + 3600))

    result = invoke(env, "schedule", "list", "billing", "--due-before", before)

    assert result.exit_code == 0, result.output
    assert [line.split()[1] for line in result.stdout.splitlines()] == ["soon"]


def test_schedule_list_refuses_a_time_without_offset(
    ledger: SqliteLedger, env: dict[str, str]
) -> None:
    result = invoke(env, "schedule", "list", "billing", "--due-before", "2027-01-01T00:00:00")

    assert result.exit_code == 2
    assert "RFC 3339" in result.stderr


def test_schedule_cancel_cancels_and_publishes_the_requests_cancelled_result(
    ledger: SqliteLedger, env: dict[str, str], pubsub_env: PubSubEmulator
) -> None:
    results = pubsub_env.create_topic("email-results")
    subscription = pubsub_env.create_subscription(results)
    scheduled(ledger, "invoice-1", 600)

    result = invoke(
        {
            **env,
            "GOOGLE_CLOUD_PROJECT": pubsub_env.project_id,
            "PUBSUB_EMULATOR_HOST": pubsub_env.host,
        },
        "schedule",
        "cancel",
        "billing",
        "invoice-1",
    )

    assert result.exit_code == 0, result.output
    (message,) = pubsub_env.pull(subscription)
    published = EmailResult.from_json_bytes(message.message.data)
    assert (published.status, published.request_id, published.service_id) == (
        "cancelled",
        "invoice-1",
        "billing",
    )
    assert schedules_of(ledger).scheduled("billing") == []


def test_schedule_cancel_of_a_request_being_sent_says_too_late(
    ledger: SqliteLedger, env: dict[str, str]
) -> None:
    scheduled(ledger, "invoice-1", -10)
    schedules_of(ledger).take_due(owner="a-worker", lease_s=60, limit=10)

    result = invoke(env, "schedule", "cancel", "billing", "invoice-1")

    assert result.exit_code == 1
    assert "too late" in result.stderr


def test_schedule_cancel_of_an_unknown_request_exits_5(
    ledger: SqliteLedger, env: dict[str, str]
) -> None:
    result = invoke(env, "schedule", "cancel", "billing", "nothing")

    assert result.exit_code == 5
    assert "no scheduled request" in result.stderr


def test_status_of_a_request_not_yet_sent_says_when_it_is_scheduled_for(
    ledger: SqliteLedger, env: dict[str, str]
) -> None:
    scheduled(ledger, "invoice-1", 600)
    due = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(NOW + 600))

    result = invoke(env, "status", "billing", "invoice-1", "--dead-letter-search-s", "0")

    assert result.exit_code == 0, result.output
    assert f"scheduled for {due}" in result.stdout


def test_status_json_of_a_cancelled_request_has_its_schedule(
    ledger: SqliteLedger, env: dict[str, str]
) -> None:
    scheduled(ledger, "invoice-1", 600)
    schedules_of(ledger).cancel(LedgerKey("billing", "invoice-1"))

    result = invoke(env, "status", "billing", "invoice-1", "--json", "--dead-letter-search-s", "0")

    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["record"] is None
    assert document["schedule"]["state"] == "cancelled"
    assert document["schedule"]["send_at"].endswith("Z")
