"""``email-worker send`` against the emulator, with the worker and moto for ``--wait``."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli_runner import cli_env, invoke
from tests.support.ports import free_port
from tests.support.worker_stack import Stack, make_stack, request

EMAIL_WORKER = str(Path(sys.executable).parent / "email-worker")
HELLO = ("--to", "me@example.org", "--subject", "Hi", "--text", "Hello", "--service", "billing")


@pytest.fixture
def stack(pubsub_env: Any, fault_proxy: Any, tmp_path: Path) -> Stack:
    return make_stack(pubsub_env, tmp_path, fault_proxy.endpoint)


@pytest.fixture
def env(stack: Stack) -> dict[str, str]:
    return cli_env(stack)


def published(stack: Stack) -> dict[str, Any]:
    [received] = stack.emulator.pull(stack.queue.subscription)
    assert stack.nothing_more(stack.queue.subscription, wait_s=1)
    document: dict[str, Any] = json.loads(received.message.data)
    return document


def test_send_publishes_the_request_and_prints_its_generated_request_id(
    stack: Stack, env: dict[str, str]
) -> None:
    result = invoke(env, "send", *HELLO, "--cc", "c@example.org", "--cc", "d@example.org")
    assert result.exit_code == 0, result.output
    request_id = result.stdout.strip()
    assert uuid.UUID(request_id)
    assert published(stack) == {
        "version": 1,
        "request_id": request_id,
        "service_id": "billing",
        "to": ["me@example.org"],
        "cc": ["c@example.org", "d@example.org"],
        "subject": "Hi",
        "text": "Hello",
    }


def test_the_service_defaults_to_email_worker_service_id(stack: Stack, env: dict[str, str]) -> None:
    result = invoke(
        {**env, "EMAIL_WORKER_SERVICE_ID": "billing"},
        "send",
        "--to",
        "me@example.org",
        "--subject",
        "Hi",
        "--html",
        "<p>Hello</p>",
    )
    assert result.exit_code == 0, result.output
    assert published(stack)["service_id"] == "billing"


def test_attachments_are_read_and_base64_encoded(
    stack: Stack, env: dict[str, str], tmp_path: Path
) -> None:
    pdf = tmp_path / "invoice.pdf"
    pdf.write_bytes(b"%PDF-1.4")
    result = invoke(env, "send", *HELLO, "--attach", str(pdf))
    assert result.exit_code == 0, result.output
    [attachment] = published(stack)["attachments"]
    assert attachment["filename"] == "invoice.pdf"
    assert attachment["content_type"] == "application/pdf"
    assert base64.b64decode(attachment["content_base64"]) == b"%PDF-1.4"


def test_send_file_publishes_the_files_request(
    stack: Stack, env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request(request_id="from-file-1")))
    result = invoke(env, "send", "--file", str(path))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "from-file-1"
    assert published(stack) == request(request_id="from-file-1")


def test_send_file_cannot_be_combined_with_message_options(
    stack: Stack, env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request()))
    result = invoke(env, "send", "--file", str(path), "--to", "x@example.org")
    assert result.exit_code == 2
    assert "--file cannot be combined with --to" in result.stderr


def test_a_request_the_worker_would_reject_exits_2_and_is_not_published(
    stack: Stack, env: dict[str, str]
) -> None:
    result = invoke(env, "send", "--to", "not an address", "--subject", "Hi", "--text", "x")
    assert result.exit_code == 2
    assert "invalid_address" in result.stderr
    assert stack.nothing_more(stack.queue.subscription, wait_s=1)


def test_send_without_recipients_is_a_usage_error(env: dict[str, str]) -> None:
    result = invoke(env, "send", "--subject", "Hi", "--text", "x")
    assert result.exit_code == 2
    assert "at least one recipient" in result.stderr


def test_send_wait_prints_the_ses_message_id_and_exits_0(
    stack: Stack, env: dict[str, str], moto: Any
) -> None:
    with stack.running():
        result = invoke(env, "send", *HELLO, "--wait", "--timeout", "60")
    assert result.exit_code == 0, result.output
    [sent] = moto.sent_messages()
    assert "status: sent" in result.stdout
    assert f"message_ids: {sent.message_id}" in result.stdout
    assert sent.destinations == ["me@example.org"]


def test_send_wait_json_prints_only_the_result_on_stdout(stack: Stack, env: dict[str, str]) -> None:
    # A separate process: the worker running in this one logs to this process's stdout.
    with stack.running():
        completed = subprocess.run(
            [EMAIL_WORKER, "send", *HELLO, "--request-id", "json-1", "--wait", "--json"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert completed.returncode == 0, completed.stderr
    document = json.loads(completed.stdout)
    assert document["request_id"] == "json-1"
    assert document["status"] == "sent"


def test_send_wait_exits_3_and_prints_the_error_when_the_request_fails(
    stack: Stack, env: dict[str, str], moto: Any
) -> None:
    with stack.running():
        result = invoke(env, "send", *HELLO, "--from", "billing@unverified.example", "--wait")
    assert result.exit_code == 3, result.output
    assert "status: failed" in result.stdout
    assert "error: identity_not_verified" in result.stdout
    assert moto.sent_messages() == []


def test_send_wait_exits_3_when_the_worker_rejects_the_request(
    stack: Stack, env: dict[str, str]
) -> None:
    # Passes the local checks, but the worker's service configuration refuses the sender.
    with stack.running():
        result = invoke(env, "send", *HELLO, "--from", "x@elsewhere.example", "--wait")
    assert result.exit_code == 3, result.output
    assert "status: rejected" in result.stdout
    assert "sender_not_allowed" in result.stdout


def test_send_wait_without_a_worker_exits_4_after_the_timeout(
    stack: Stack, env: dict[str, str]
) -> None:
    result = invoke(env, "send", *HELLO, "--request-id", "lonely-1", "--wait", "--timeout", "2")
    assert result.exit_code == 4
    assert "no result for request lonely-1 within 2 s" in result.stderr


def test_a_missing_requests_topic_exits_1_without_a_traceback(env: dict[str, str]) -> None:
    result = invoke({**env, "EMAIL_WORKER_REQUESTS_TOPIC": "no-such-topic"}, "send", *HELLO)
    assert result.exit_code == 1
    assert "no-such-topic does not exist" in result.stderr
    assert "Traceback" not in result.output


def test_unreachable_pubsub_exits_1_without_a_traceback(env: dict[str, str]) -> None:
    closed = f"127.0.0.1:{free_port()}"
    result = invoke(
        {**env, "PUBSUB_EMULATOR_HOST": closed, "EMAIL_WORKER_PUBLISH_TIMEOUT_S": "2"},
        "send",
        *HELLO,
        "--wait",
    )
    assert result.exit_code == 1
    assert f"cannot reach the Pub/Sub emulator at {closed}" in result.stderr
    assert "Traceback" not in result.output


def test_a_missing_project_exits_2(env: dict[str, str]) -> None:
    result = invoke({**env, "GOOGLE_CLOUD_PROJECT": ""}, "send", *HELLO)
    assert result.exit_code == 2
    assert "GOOGLE_CLOUD_PROJECT" in result.stderr


def test_send_help_documents_the_exit_codes() -> None:
    result = invoke({}, "send", "--help")
    assert result.exit_code == 0
    for line in ("0  success", "3  send --wait", "4  send --wait"):
        assert line in result.stdout
