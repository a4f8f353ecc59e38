"""``email-worker dlq`` selecting dead letters by service, request id and error code (besides
message ids), against the Pub/Sub emulator; and ``dlq export``'s summary off a terminal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli_runner import cli_env, dead_letter, invoke, listed, worker_reason
from tests.support.worker_stack import Stack, make_stack, request


@pytest.fixture
def stack(pubsub_env: Any, fault_proxy: Any, tmp_path: Path) -> Stack:
    return make_stack(pubsub_env, tmp_path, fault_proxy.endpoint)


@pytest.fixture
def env(stack: Stack) -> dict[str, str]:
    return cli_env(stack)


def three_dead_letters(stack: Stack) -> dict[str, str]:
    """billing/r1 (identity_not_verified), billing/r2 (invalid_address), shop/r1
    (identity_not_verified): name -> message id."""
    return {
        "billing-r1": dead_letter(stack, request(request_id="r1"), **worker_reason("r1")),
        "billing-r2": dead_letter(
            stack, request(request_id="r2"), **worker_reason("r2", code="invalid_address")
        ),
        "shop-r1": dead_letter(
            stack,
            request(request_id="r1", service_id="shop"),
            **worker_reason("r1", service_id="shop"),
        ),
    }


def republished(stack: Stack, count: int) -> list[Any]:
    return [m.message for m in stack._collect(stack.queue.subscription, count, 30)]


# -- list ---------------------------------------------------------------------------------


def test_list_filters_by_service_request_id_and_code_combined_with_and(
    stack: Stack, env: dict[str, str]
) -> None:
    ids = three_dead_letters(stack)

    def listed_with(*options: str) -> set[str]:
        result = invoke(env, "dlq", "list", "--json", *options)
        assert result.exit_code == 0, result.output
        return {e["message_id"] for e in json.loads(result.stdout)}

    assert listed_with("--service", "billing") == {ids["billing-r1"], ids["billing-r2"]}
    assert listed_with("--request-id", "r1") == {ids["billing-r1"], ids["shop-r1"]}
    assert listed_with("--code", "invalid_address") == {ids["billing-r2"]}
    assert listed_with("--service", "billing", "--request-id", "r1") == {ids["billing-r1"]}
    assert listed_with("--service", "shop", "--code", "identity_not_verified") == {ids["shop-r1"]}
    table = invoke(env, "dlq", "list", "--service", "shop")
    assert "with service shop" in table.stdout
    assert table.stdout.count("identity_not_verified") == 1  # not billing's r1
    assert len(listed(env)) == 3  # looking consumed nothing


def test_list_with_a_filter_that_matches_nothing_says_so_and_exits_1(
    stack: Stack, env: dict[str, str]
) -> None:
    three_dead_letters(stack)
    result = invoke(env, "dlq", "list", "--service", "billing", "--code", "no_such_code")
    assert result.exit_code == 1
    assert "no dead letter with service billing, error code no_such_code in" in result.stderr
    as_json = invoke(env, "dlq", "list", "--json", "--request-id", "r9")
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout) == []


# -- show ---------------------------------------------------------------------------------


def test_show_by_service_and_request_id_shows_that_requests_dead_letter(
    stack: Stack, env: dict[str, str]
) -> None:
    ids = three_dead_letters(stack)
    result = invoke(env, "dlq", "show", "--service", "billing", "--request-id", "r1", "--json")
    assert result.exit_code == 0, result.output
    [shown] = [json.loads(line) for line in result.stdout.splitlines()]
    assert shown["message_id"] == ids["billing-r1"]
    assert shown["reason"].startswith("identity_not_verified")
    assert "Secret" not in result.stdout


def test_show_by_code_shows_every_matching_dead_letter(stack: Stack, env: dict[str, str]) -> None:
    ids = three_dead_letters(stack)
    result = invoke(env, "dlq", "show", "--code", "identity_not_verified", "--json")
    assert result.exit_code == 0, result.output
    shown = {json.loads(line)["message_id"] for line in result.stdout.splitlines()}
    assert shown == {ids["billing-r1"], ids["shop-r1"]}


def test_show_with_a_filter_that_matches_nothing_exits_1(stack: Stack, env: dict[str, str]) -> None:
    three_dead_letters(stack)
    result = invoke(env, "dlq", "show", "--service", "billing", "--request-id", "r9")
    assert result.exit_code == 1
    assert "no dead letter with service billing, request id r9 in" in result.stderr


@pytest.mark.parametrize("args", [["show"], ["replay", "--yes"], ["purge", "--yes"]])
def test_acting_without_message_ids_or_filters_is_a_usage_error(
    env: dict[str, str], args: list[str]
) -> None:
    result = invoke(env, "dlq", *args)
    assert result.exit_code == 2
    assert "--service, --request-id or --code" in result.stderr
    assert "Traceback" not in result.output


# -- replay and purge ---------------------------------------------------------------------


def test_replay_by_service_and_request_id_replays_only_that_request(
    stack: Stack, env: dict[str, str]
) -> None:
    ids = three_dead_letters(stack)
    result = invoke(env, "dlq", "replay", "--service", "shop", "--request-id", "r1", "--yes")
    assert result.exit_code == 0, result.output
    assert "Replayed 1" in result.stdout
    [message] = republished(stack, 1)
    assert json.loads(message.data)["service_id"] == "shop"
    assert stack.nothing_more(stack.queue.subscription)
    assert {e["message_id"] for e in listed(env)} == {ids["billing-r1"], ids["billing-r2"]}


def test_replay_with_message_ids_and_a_filter_replays_only_what_matches_both(
    stack: Stack, env: dict[str, str]
) -> None:
    ids = three_dead_letters(stack)
    result = invoke(
        env, "dlq", "replay", ids["billing-r1"], ids["shop-r1"], "--service", "billing", "--yes"
    )
    assert result.exit_code == 1  # shop-r1 is not billing's: reported as not found
    assert "Replayed 1" in result.stdout
    assert f"not found: {ids['shop-r1']}" in result.stderr
    [message] = republished(stack, 1)
    assert json.loads(message.data)["request_id"] == "r1"
    assert {e["message_id"] for e in listed(env)} == {ids["billing-r2"], ids["shop-r1"]}


def test_replay_with_a_filter_that_matches_nothing_exits_1_and_publishes_nothing(
    stack: Stack, env: dict[str, str]
) -> None:
    three_dead_letters(stack)
    result = invoke(env, "dlq", "replay", "--code", "no_such_code", "--yes")
    assert result.exit_code == 1
    assert "no dead letter with error code no_such_code" in result.stderr
    assert stack.nothing_more(stack.queue.subscription)
    assert len(listed(env)) == 3


def test_purge_by_code_removes_only_those(stack: Stack, env: dict[str, str]) -> None:
    ids = three_dead_letters(stack)
    result = invoke(env, "dlq", "purge", "--code", "identity_not_verified", "--yes")
    assert result.exit_code == 0, result.output
    assert "Purged 2" in result.stdout
    assert [e["message_id"] for e in listed(env)] == [ids["billing-r2"]]


def test_purge_with_a_filter_that_matches_nothing_exits_1_and_removes_nothing(
    stack: Stack, env: dict[str, str]
) -> None:
    three_dead_letters(stack)
    result = invoke(env, "dlq", "purge", "--service", "nobody", "--yes")
    assert result.exit_code == 1
    assert "no dead letter with service nobody" in result.stderr
    assert len(listed(env)) == 3


# -- export -------------------------------------------------------------------------------


def test_export_by_service_writes_only_its_dead_letters_and_ends_with_a_count_line(
    stack: Stack, env: dict[str, str], tmp_path: Path
) -> None:
    ids = three_dead_letters(stack)
    target = tmp_path / "billing.jsonl"
    result = invoke(env, "dlq", "export", str(target), "--service", "billing")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in target.read_text().splitlines()]
    assert {r["message_id"] for r in records} == {ids["billing-r1"], ids["billing-r2"]}
    # Not a terminal: no progress display, one summary line.
    [summary] = result.stderr.splitlines()
    assert summary.startswith("Exported 2 of 3 dead letter(s) from ")
    assert summary.endswith(f"to {target}.")
    assert len(listed(env)) == 3


def test_export_on_a_terminal_shows_a_running_count_on_stderr(
    stack: Stack, env: dict[str, str], tmp_path: Path
) -> None:
    three_dead_letters(stack)
    # TTY_COMPATIBLE=1 makes rich take stderr for a terminal.
    result = invoke({**env, "TTY_COMPATIBLE": "1"}, "dlq", "export", str(tmp_path / "all.jsonl"))
    assert result.exit_code == 0, result.output
    assert "Exporting" in result.stderr
    assert "3 dead letter(s)" in result.stderr
    assert "Exported 3 dead letter(s)" in result.stderr


def test_export_with_a_filter_that_matches_nothing_exits_1(
    stack: Stack, env: dict[str, str], tmp_path: Path
) -> None:
    three_dead_letters(stack)
    target = tmp_path / "none.jsonl"
    result = invoke(env, "dlq", "export", str(target), "--code", "no_such_code")
    assert result.exit_code == 1
    assert "Exported 0 of 3" in result.stderr
    assert "no dead letter with error code no_such_code" in result.stderr
    assert target.read_text() == ""


# -- help ---------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["list", "show", "replay", "purge", "export"])
def test_each_dlq_commands_help_names_the_filters_and_its_exit_codes(command: str) -> None:
    result = invoke({"COLUMNS": "100"}, "dlq", command, "--help")
    assert result.exit_code == 0
    for option in ("--service", "--request-id", "--code"):
        assert option in result.stdout
    exit_codes = result.stdout.split("Exit codes:")[1]
    assert [line.split()[0] for line in exit_codes.splitlines() if line[:6].strip()] == [
        "0",
        "1",
        "2",
    ]


def test_replays_help_says_a_replay_the_ledger_cannot_vouch_for_exits_1() -> None:
    result = invoke({"COLUMNS": "100"}, "dlq", "replay", "--help")
    exit_codes = " ".join(result.stdout.split("Exit codes:")[1].split())
    assert "a dead letter the request ledger cannot vouch for (not replayed)" in exit_codes
