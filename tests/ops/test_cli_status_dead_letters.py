"""``email-worker status`` of a request that was not sent: its error message (without
addresses), where its dead letter is, and the commands to look at it and replay it.
Pub/Sub emulator, the worker's SQLite ledger, moto."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli_runner import await_listed, cli_env, dead_letter, invoke, worker_reason
from tests.support.ports import free_port
from tests.support.worker_stack import Stack, make_stack, make_tenant_stack, request
from worker.ledger import LedgerKey, SqliteLedger, StoredResult, content_hash

_SHOW = "email-worker dlq show --service billing --request-id r1"
_REPLAY = "email-worker dlq replay --service billing --request-id r1"


@pytest.fixture
def stack(pubsub_env: Any, fault_proxy: Any, tmp_path: Path) -> Stack:
    return make_stack(pubsub_env, tmp_path, fault_proxy.endpoint)


@pytest.fixture
def env(stack: Stack) -> dict[str, str]:
    return cli_env(stack)


def failed(stack: Stack, request_id: str = "r1") -> str:
    """A failure of billing's ``request_id`` as the worker records it (ledger and dead
    letter); returns the dead letter's message id."""
    document = request(request_id=request_id, to=["carol@example.org"], text="Secret body")
    data = json.dumps(document).encode()
    message = (
        "SendEmail failed: MessageRejected: Email address is not verified. The following "
        "identities failed the check in region US-EAST-1: billing@unverified.example"
    )
    with SqliteLedger(stack.config_dir.resolve() / "ledger.db", claim_lease_s=60) as ledger:
        key = LedgerKey("billing", request_id)
        ledger.claim(key, owner="worker-1", content_hash=content_hash(data))
        ledger.complete(
            key,
            owner="worker-1",
            result=StoredResult(
                "failed", error_code="identity_not_verified", error_message=message
            ),
        )
    return dead_letter(stack, data, **worker_reason(request_id, message=message))


def test_status_of_a_failed_request_shows_its_error_message_without_addresses(
    stack: Stack, env: dict[str, str]
) -> None:
    failed(stack)
    result = invoke(env, "status", "billing", "r1")
    assert result.exit_code == 0, result.output
    assert "failed: identity_not_verified: SendEmail failed: MessageRejected: Email" in (
        result.stdout
    )
    assert "failed the check in region US-EAST-1: <address>" in result.stdout
    assert "@" not in result.stdout
    assert "Secret body" not in result.stdout
    as_json = json.loads(invoke(env, "status", "billing", "r1", "--json").stdout)
    assert as_json["record"]["result"]["error_message"].endswith("US-EAST-1: <address>")
    assert "@" not in json.dumps(as_json)


def test_status_of_a_failed_request_names_its_dead_letter_and_the_replay_command(
    stack: Stack, env: dict[str, str]
) -> None:
    dead_letter(stack, request(request_id="other"), **worker_reason("other"))
    message_id = failed(stack)
    result = invoke(env, "status", "billing", "r1")
    assert result.exit_code == 0, result.output
    assert f"Dead letter: {message_id} in projects/" in result.stdout
    assert f"Replay it with: {_REPLAY}" in result.stdout
    as_json = json.loads(invoke(env, "status", "billing", "r1", "--json").stdout)
    assert as_json["dead_letters"]["message_ids"] == [message_id]
    assert as_json["dead_letters"]["searched"] == "complete"
    assert as_json["dead_letters"]["replay_command"] == _REPLAY
    # Looking consumed nothing.
    assert len(await_listed(env, 2)) == 2


def test_status_when_the_dead_letters_cannot_be_read_prints_the_command_that_looks(
    stack: Stack, env: dict[str, str]
) -> None:
    failed(stack)
    closed = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = invoke(
        {**env, "PUBSUB_EMULATOR_HOST": closed},
        "status",
        "billing",
        "r1",
        "--dead-letter-search-s",
        "2",
    )
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started < 15
    assert f"look with: {_SHOW}" in result.stdout
    assert "Dead letters: not searched (cannot read projects/" in result.stdout
    assert f"Replay it with: {_REPLAY}" in result.stdout
    assert "Traceback" not in result.output


def test_status_with_no_dead_letter_search_prints_the_commands_instead(
    stack: Stack, env: dict[str, str]
) -> None:
    failed(stack)
    result = invoke(env, "status", "billing", "r1", "--dead-letter-search-s", "0")
    assert result.exit_code == 0, result.output
    assert f"Dead letters: not searched (--dead-letter-search-s 0); look with: {_SHOW}" in (
        result.stdout
    )
    assert f"Replay it with: {_REPLAY}" in result.stdout


def test_status_of_a_failed_request_no_longer_dead_lettered_says_so(
    stack: Stack, env: dict[str, str]
) -> None:
    message_id = failed(stack)
    assert invoke(env, "dlq", "purge", message_id, "--yes").exit_code == 0
    result = invoke(env, "status", "billing", "r1")
    assert result.exit_code == 0, result.output
    assert "Dead letters: none of this request in projects/" in result.stdout
    assert "Replay it with" not in result.stdout


def test_status_of_a_request_the_worker_failed_leads_to_its_dead_letter(
    stack: Stack, env: dict[str, str]
) -> None:
    with stack.running():
        stack.publish(request(request_id="r1", **{"from": "billing@unverified.example"}))
        [result] = stack.results(1)
    assert result["status"] == "failed"
    [entry] = await_listed(env, 1)
    shown = invoke(env, "status", "billing", "r1")
    assert shown.exit_code == 0, shown.output
    assert "failed: identity_not_verified: " in shown.stdout
    assert f"Dead letter: {entry['message_id']} in" in shown.stdout
    assert "@" not in shown.stdout
    # The command status prints finds that very dead letter.
    listed = invoke(env, "dlq", "show", "--service", "billing", "--request-id", "r1", "--json")
    assert json.loads(listed.stdout)["message_id"] == entry["message_id"]


# -- a request the ledger knows nothing of ------------------------------------------------


def test_status_of_a_request_refused_before_the_ledger_recorded_it_shows_its_dead_letter(
    stack: Stack, env: dict[str, str]
) -> None:
    with stack.running():
        stack.publish(request(request_id="r1", to=["not an address"]))
        [result] = stack.results(1)
    assert (result["status"], result["error"]["code"]) == ("rejected", "invalid_address")
    [entry] = await_listed(env, 1)
    shown = invoke(env, "status", "billing", "r1")
    assert shown.exit_code == 0, shown.output
    assert "Not in the request ledger" in shown.stdout
    assert f"Dead letter: {entry['message_id']} in projects/" in shown.stdout
    assert ": invalid_address: " in shown.stdout
    assert f"Replay it with: {_REPLAY}" in shown.stdout  # shared tenancy: the worker decides
    as_json = json.loads(invoke(env, "status", "billing", "r1", "--json").stdout)
    assert as_json["record"] is None
    assert as_json["dead_letters"]["reasons"][0].startswith("invalid_address: ")


def test_status_of_an_unknown_request_without_a_dead_letter_exits_5_and_says_both(
    stack: Stack, env: dict[str, str]
) -> None:
    failed(stack, "known")
    result = invoke(env, "status", "billing", "r1")
    assert result.exit_code == 5
    assert "nothing is known of request 'r1'" in result.stderr
    assert "no dead letter of it either" in result.stderr


@pytest.fixture
def tenant_stack(pubsub_env: Any, fault_proxy: Any, tmp_path: Path) -> Stack:
    return make_tenant_stack(pubsub_env, tmp_path, fault_proxy.endpoint)


def test_status_says_a_per_service_request_the_ledger_does_not_know_cannot_be_replayed(
    tenant_stack: Stack,
) -> None:
    env = cli_env(tenant_stack)
    failed(tenant_stack, "known")  # the ledger exists, without r1
    message_id = dead_letter(
        tenant_stack, request(request_id="r1"), **worker_reason("r1", code="invalid_request")
    )
    result = invoke(env, "status", "billing", "r1")
    assert result.exit_code == 0, result.output
    assert f"Dead letter: {message_id} in projects/" in result.stdout
    assert "It cannot be replayed: with per-service tenancy" in result.stdout
    assert "Replay it with" not in result.stdout
    as_json = json.loads(invoke(env, "status", "billing", "r1", "--json").stdout)
    assert as_json["dead_letters"]["replay_command"] is None


def test_status_of_a_template_request_names_its_template_version_and_language(
    stack: Stack, env: dict[str, str]
) -> None:
    with SqliteLedger(stack.config_dir.resolve() / "ledger.db", claim_lease_s=60) as ledger:
        key = LedgerKey("billing", "r1")
        ledger.claim(key, owner="worker-1", content_hash=content_hash(b"{}"))
        result = StoredResult(
            "rejected",
            error_code="template_data_invalid",
            error_message="template 'invoice': data lacks total",
            template=("invoice", 3, "de"),
        )
        ledger.complete(key, owner="worker-1", result=result)
    shown = invoke(env, "status", "billing", "r1", "--dead-letter-search-s", "0")
    assert shown.exit_code == 0, shown.output
    assert "template invoice version 3, language de" in shown.stdout
