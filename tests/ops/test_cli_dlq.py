"""``email-worker dlq ...`` against the Pub/Sub emulator (and, for replays that send, the
worker with moto). Each test has its own topics and subscriptions."""

from __future__ import annotations

import base64
import json
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from google.api_core.exceptions import ServiceUnavailable

from tests.support.cli_runner import (
    await_listed,
    cli_env,
    dead_letter,
    invoke,
    listed,
    worker_reason,
)
from tests.support.ports import free_port
from tests.support.worker_stack import Stack, b64, make_stack, request
from worker.ops.commands import dlq_queue


@pytest.fixture
def stack(pubsub_env: Any, fault_proxy: Any, tmp_path: Path) -> Stack:
    return make_stack(pubsub_env, tmp_path, fault_proxy.endpoint)


@pytest.fixture
def env(stack: Stack) -> dict[str, str]:
    return cli_env(stack)


def republished(stack: Stack, count: int) -> list[Any]:
    """Messages on the worker's subscription (the worker is not running)."""
    return [m.message for m in stack._collect(stack.queue.subscription, count, 30)]


# -- list ---------------------------------------------------------------------------------


def test_dead_letters_from_the_worker_are_listed_with_their_reasons(
    stack: Stack, env: dict[str, str]
) -> None:
    with stack.running():
        stack.publish(request(request_id="unverified-1", **{"from": "billing@unverified.example"}))
        stack.publish(request(request_id="bad-address-1", to=["not an address"]))
        stack.results(2)
    # Listed once the worker has stopped (after settling everything): its logs go to stdout.
    entries = await_listed(env, 2)
    by_request = {e["request_id"]: e for e in entries}
    assert by_request["unverified-1"]["error_code"] == "identity_not_verified"
    assert "not verified" in by_request["unverified-1"]["error_message"]
    assert by_request["unverified-1"]["service_id"] == "billing"
    assert by_request["bad-address-1"]["error_code"] == "invalid_address"
    table = invoke(env, "dlq", "list")
    assert table.exit_code == 0, table.output
    for entry in entries:
        assert entry["message_id"] in table.stdout
    assert "identity_not_verified" in table.stdout
    assert "invalid_address" in table.stdout
    assert "unverified-1" in table.stdout


def test_listing_twice_shows_the_dead_letters_twice(stack: Stack, env: dict[str, str]) -> None:
    ids = {
        dead_letter(stack, request(request_id=f"r{n}"), **worker_reason(f"r{n}")) for n in range(3)
    }
    first = listed(env)
    second = listed(env)
    assert {e["message_id"] for e in first} == ids
    assert {e["message_id"] for e in second} == ids


def test_list_json_prints_only_a_json_list_on_stdout(stack: Stack, env: dict[str, str]) -> None:
    message_id = dead_letter(stack, request(request_id="r1"), **worker_reason("r1"))
    result = invoke(env, "dlq", "list", "--json")
    assert result.exit_code == 0
    [entry] = json.loads(result.stdout)
    assert entry["message_id"] == message_id
    assert entry["request_id"] == "r1"
    assert entry["error_code"] == "identity_not_verified"
    assert entry["replay_count"] == 0
    assert entry["delivery_count"] is None
    assert entry["age_s"] >= 0


def test_an_empty_dead_letter_subscription_lists_as_an_empty_json_list(
    env: dict[str, str],
) -> None:
    result = invoke(env, "dlq", "list", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []
    assert "No dead letters" in invoke(env, "dlq", "list").stdout


def test_list_limit_shows_at_most_that_many(stack: Stack, env: dict[str, str]) -> None:
    for n in range(4):
        dead_letter(stack, request(request_id=f"r{n}"), **worker_reason(f"r{n}"))
    result = invoke(env, "dlq", "list", "--json", "--limit", "2")
    assert len(json.loads(result.stdout)) == 2
    assert len(listed(env)) == 4


def test_a_dead_letter_moved_by_pubsubs_policy_shows_its_delivery_count(
    stack: Stack, env: dict[str, str]
) -> None:
    dead_letter(
        stack,
        request(request_id="slow-1"),
        CloudPubSubDeadLetterSourceDeliveryCount="5",
        CloudPubSubDeadLetterSourceSubscription="email-requests-worker",
    )
    [entry] = listed(env)
    assert entry["delivery_count"] == 5
    assert entry["error_code"] is None
    assert entry["request_id"] == "slow-1"  # read from the request itself
    assert "after 5 deliveries" in invoke(env, "dlq", "list").stdout


# -- show ---------------------------------------------------------------------------------


def test_show_elides_bodies_and_attachments_unless_full(stack: Stack, env: dict[str, str]) -> None:
    document = request(
        request_id="r1",
        text="Secret body text",
        html="<p>Secret html</p>",
        attachments=[
            {"filename": "a.pdf", "content_type": "application/pdf", "content_base64": b64(b"PDF")}
        ],
    )
    message_id = dead_letter(stack, document, **worker_reason("r1"))
    shown = invoke(env, "dlq", "show", message_id)
    assert shown.exit_code == 0, shown.output
    assert "identity_not_verified" in shown.stdout
    assert "Your invoice" in shown.stdout  # the subject is shown
    assert "a.pdf" in shown.stdout
    assert "Secret" not in shown.stdout
    assert b64(b"PDF") not in shown.stdout
    full = json.loads(invoke(env, "dlq", "show", message_id, "--full", "--json").stdout)
    assert full["request"] == document
    assert full["attributes"]["email_worker_request_id"] == "r1"


def test_show_of_an_unknown_id_exits_1(stack: Stack, env: dict[str, str]) -> None:
    dead_letter(stack, request(request_id="r1"), **worker_reason("r1"))
    result = invoke(env, "dlq", "show", "999999")
    assert result.exit_code == 1
    assert "no dead letter with message id 999999" in result.stderr
    assert len(listed(env)) == 1


# -- replay -------------------------------------------------------------------------------


def test_replay_after_verifying_the_identity_sends_them_and_empties_the_subscription(
    stack: Stack, env: dict[str, str], moto: Any
) -> None:
    with stack.running():
        for n in range(3):
            stack.publish(
                request(request_id=f"unverified-{n}", **{"from": "billing@unverified.example"})
            )
        assert {r["status"] for r in stack.results(3)} == {"failed"}
    await_listed(env, 3)
    assert moto.sent_messages() == []
    moto.verify_email_identity("unverified.example")
    with stack.running():
        result = invoke(env, "dlq", "replay", "--all", "--yes")
        assert result.exit_code == 0, result.output
        assert "Replayed 3" in result.stdout
        results = stack.results(3)
    assert {r["request_id"]: r["status"] for r in results} == {
        "unverified-0": "sent",
        "unverified-1": "sent",
        "unverified-2": "sent",
    }
    assert len(moto.sent_messages()) == 3
    assert listed(env) == []


def test_replay_republishes_the_original_data_and_attributes_with_a_replay_count(
    stack: Stack, env: dict[str, str]
) -> None:
    document = request(request_id="r1")
    message_id = dead_letter(
        stack,
        document,
        origin="tests",
        CloudPubSubDeadLetterSourceDeliveryCount="5",
        **worker_reason("r1"),
    )
    result = invoke(env, "dlq", "replay", message_id, "--yes")
    assert result.exit_code == 0, result.output
    [message] = republished(stack, 1)
    assert json.loads(message.data) == document
    assert dict(message.attributes) == {
        "origin": "tests",
        "email_worker_replay_count": "1",
        "email_worker_service_id": "billing",
        "email_worker_request_id": "r1",
    }
    assert listed(env) == []


def test_a_second_replay_increments_the_replay_count(stack: Stack, env: dict[str, str]) -> None:
    message_id = dead_letter(
        stack, request(request_id="r1"), email_worker_replay_count="1", **worker_reason("r1")
    )
    assert invoke(env, "dlq", "replay", message_id, "--yes").exit_code == 0
    [message] = republished(stack, 1)
    assert message.attributes["email_worker_replay_count"] == "2"


def test_replay_by_id_replays_only_those_dead_letters(stack: Stack, env: dict[str, str]) -> None:
    ids = [
        dead_letter(stack, request(request_id=f"r{n}"), **worker_reason(f"r{n}")) for n in range(4)
    ]
    result = invoke(env, "dlq", "replay", ids[1], ids[3], "--yes")
    assert result.exit_code == 0, result.output
    messages = republished(stack, 2)
    assert sorted(json.loads(m.data)["request_id"] for m in messages) == ["r1", "r3"]
    assert stack.nothing_more(stack.queue.subscription)
    assert sorted(e["message_id"] for e in listed(env)) == sorted([ids[0], ids[2]])


def test_replaying_many_shows_progress_and_replays_them_all(
    stack: Stack, env: dict[str, str]
) -> None:
    for n in range(12):
        dead_letter(stack, request(request_id=f"r{n}"), **worker_reason(f"r{n}"))
    result = invoke(env, "dlq", "replay", "--all", "--yes")
    assert result.exit_code == 0, result.output
    assert "Replayed 12" in result.stdout
    assert "Replaying" in result.stderr
    assert len(republished(stack, 12)) == 12
    assert listed(env) == []


def test_replay_dry_run_shows_them_and_changes_nothing(stack: Stack, env: dict[str, str]) -> None:
    message_id = dead_letter(stack, request(request_id="r1"), **worker_reason("r1"))
    result = invoke(env, "dlq", "replay", "--all", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "Would replay 1" in result.stdout
    assert message_id in result.stdout
    assert stack.nothing_more(stack.queue.subscription)
    assert [e["message_id"] for e in listed(env)] == [message_id]


def test_replay_without_yes_asks_and_a_no_replays_nothing(
    stack: Stack, env: dict[str, str]
) -> None:
    dead_letter(stack, request(request_id="r1"), **worker_reason("r1"))
    result = invoke(env, "dlq", "replay", "--all", input="n\n")
    assert result.exit_code == 1
    assert "Replay 1 dead letter(s)" in result.output
    assert stack.nothing_more(stack.queue.subscription)
    assert len(listed(env)) == 1


def test_replay_without_ids_or_all_is_a_usage_error(env: dict[str, str]) -> None:
    assert invoke(env, "dlq", "replay", "--yes").exit_code == 2
    assert invoke(env, "dlq", "replay", "123", "--all", "--yes").exit_code == 2


def test_replay_of_an_unknown_id_exits_1_and_names_it(stack: Stack, env: dict[str, str]) -> None:
    message_id = dead_letter(stack, request(request_id="r1"), **worker_reason("r1"))
    result = invoke(env, "dlq", "replay", message_id, "424242", "--yes")
    assert result.exit_code == 1
    assert "not found: 424242" in result.stderr
    assert len(republished(stack, 1)) == 1


def test_a_replay_whose_publish_fails_part_way_loses_nothing(
    stack: Stack, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [
        dead_letter(stack, request(request_id=f"r{n}"), **worker_reason(f"r{n}")) for n in range(6)
    ]
    real_make_publish = dlq_queue.make_publish

    def failing_after_two(publisher: Any) -> Any:
        real = real_make_publish(publisher)
        calls = 0

        def publish(topic: str, data: bytes, attributes: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls > 2:
                failed: Future[Any] = Future()
                failed.set_exception(ServiceUnavailable("injected publish failure"))
                return failed
            return real(topic, data, attributes)

        return publish

    monkeypatch.setattr(dlq_queue, "make_publish", failing_after_two)
    result = invoke(env, "dlq", "replay", "--all", "--yes")
    assert result.exit_code == 1
    assert "Replayed 2" in result.stdout
    assert "4 could not be republished" in result.stderr
    assert "injected publish failure" in result.stderr
    sent = [json.loads(m.data)["request_id"] for m in republished(stack, 2)]
    assert stack.nothing_more(stack.queue.subscription)
    remaining = [e["request_id"] for e in listed(env)]
    assert len(sent) == 2
    assert sorted(sent + remaining) == [f"r{n}" for n in range(6)]
    assert len(ids) == 6


# -- purge --------------------------------------------------------------------------------


def test_purge_all_empties_the_subscription(stack: Stack, env: dict[str, str]) -> None:
    for n in range(5):
        dead_letter(stack, request(request_id=f"r{n}"), **worker_reason(f"r{n}"))
    result = invoke(env, "dlq", "purge", "--all", "--yes")
    assert result.exit_code == 0, result.output
    assert "Purged 5" in result.stdout
    assert listed(env) == []
    assert stack.nothing_more(stack.queue.subscription)  # nothing was replayed


def test_purge_by_id_removes_only_those(stack: Stack, env: dict[str, str]) -> None:
    ids = [
        dead_letter(stack, request(request_id=f"r{n}"), **worker_reason(f"r{n}")) for n in range(3)
    ]
    result = invoke(env, "dlq", "purge", ids[0], "--yes")
    assert result.exit_code == 0, result.output
    assert sorted(e["message_id"] for e in listed(env)) == sorted(ids[1:])


def test_purge_declined_at_the_prompt_keeps_everything(stack: Stack, env: dict[str, str]) -> None:
    dead_letter(stack, request(request_id="r1"), **worker_reason("r1"))
    result = invoke(env, "dlq", "purge", "--all", input="n\n")
    assert result.exit_code == 1
    assert len(listed(env)) == 1


# -- export -------------------------------------------------------------------------------


def test_export_writes_every_dead_letter_as_json_lines_and_consumes_nothing(
    stack: Stack, env: dict[str, str], tmp_path: Path
) -> None:
    raw = b"\xffnot json"
    ids = {
        dead_letter(stack, request(request_id="r1"), **worker_reason("r1")),
        dead_letter(stack, raw, **worker_reason("7", code="invalid_json")),
    }
    target = tmp_path / "dead.jsonl"
    result = invoke(env, "dlq", "export", str(target))
    assert result.exit_code == 0, result.output
    assert "Exported 2" in result.stderr
    records = [json.loads(line) for line in target.read_text().splitlines()]
    assert {r["message_id"] for r in records} == ids
    by_code = {r["error_code"]: r for r in records}
    assert base64.b64decode(by_code["invalid_json"]["data_base64"]) == raw
    assert by_code["invalid_json"]["request"] is None
    assert by_code["identity_not_verified"]["request"]["request_id"] == "r1"
    assert by_code["identity_not_verified"]["attributes"]["email_worker_request_id"] == "r1"
    assert len(listed(env)) == 2


def test_export_to_stdout_prints_only_json_lines(stack: Stack, env: dict[str, str]) -> None:
    dead_letter(stack, request(request_id="r1"), **worker_reason("r1"))
    result = invoke(env, "dlq", "export", "-")
    assert result.exit_code == 0, result.output
    [line] = result.stdout.splitlines()
    assert json.loads(line)["request_id"] == "r1"


# -- errors -------------------------------------------------------------------------------


def test_a_missing_dead_letter_subscription_exits_1_without_a_traceback(
    env: dict[str, str],
) -> None:
    result = invoke(
        {**env, "EMAIL_WORKER_DEAD_LETTER_SUBSCRIPTION": "no-such-subscription"}, "dlq", "list"
    )
    assert result.exit_code == 1
    assert "no-such-subscription does not exist" in result.stderr
    assert "email-worker setup" in result.stderr
    assert "Traceback" not in result.output


def test_unreachable_pubsub_exits_1_without_a_traceback(env: dict[str, str]) -> None:
    closed = f"127.0.0.1:{free_port()}"
    result = invoke(
        {**env, "PUBSUB_EMULATOR_HOST": closed, "EMAIL_WORKER_PUBLISH_TIMEOUT_S": "2"},
        "dlq",
        "list",
    )
    assert result.exit_code == 1
    assert f"cannot reach the Pub/Sub emulator at {closed}" in result.stderr
    assert "Traceback" not in result.output


def test_a_missing_project_exits_2_without_a_traceback(env: dict[str, str]) -> None:
    result = invoke({**env, "GOOGLE_CLOUD_PROJECT": ""}, "dlq", "list")
    assert result.exit_code == 2
    assert "GOOGLE_CLOUD_PROJECT" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", ["list", "show", "replay", "purge", "export"])
def test_every_dlq_command_has_help_with_exit_codes(command: str) -> None:
    result = invoke({}, "dlq", command, "--help")
    assert result.exit_code == 0
    assert "Exit codes:" in result.stdout
