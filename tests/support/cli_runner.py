"""Helpers for the operators' command tests: invoke ``email-worker``, make dead letters."""

from __future__ import annotations

import json
import time
from typing import Any

from click.testing import CliRunner, Result

from tests.support.worker_stack import Stack
from worker.app.cli import main
from worker.formats.pubsub import (
    DELIVERY_ATTEMPT_ATTRIBUTE,
    ERROR_CODE_ATTRIBUTE,
    ERROR_MESSAGE_ATTRIBUTE,
    FAILED_AT_ATTRIBUTE,
    ORIGINAL_MESSAGE_ID_ATTRIBUTE,
    REQUEST_ID_ATTRIBUTE,
    SERVICE_ID_ATTRIBUTE,
)


def cli_env(stack: Stack, **overrides: str) -> dict[str, str]:
    """The stack's settings, the emulator, and a wide terminal so tables do not wrap."""
    return {
        **stack.env,
        "PUBSUB_EMULATOR_HOST": stack.emulator.host,
        "COLUMNS": "250",
        **overrides,
    }


def invoke(env: dict[str, str], *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env, input=input)


def listed(env: dict[str, str]) -> list[dict[str, Any]]:
    """``dlq list --json --limit 0``, parsed."""
    result = invoke(env, "dlq", "list", "--json", "--limit", "0")
    assert result.exit_code == 0, result.output
    entries: list[dict[str, Any]] = json.loads(result.stdout)
    return entries


def await_listed(env: dict[str, str], count: int, timeout_s: float = 60.0) -> list[dict[str, Any]]:
    """List until ``count`` dead letters are there (the worker forwards them just after it
    publishes the result)."""
    deadline = time.monotonic() + timeout_s
    while True:
        entries = listed(env)
        if len(entries) >= count or time.monotonic() > deadline:
            assert len(entries) == count, entries
            return entries
        time.sleep(0.3)


def worker_reason(
    request_id: str,
    code: str = "identity_not_verified",
    message: str = "SendEmail failed: MessageRejected: Email address is not verified.",
    service_id: str = "billing",
) -> dict[str, str]:
    """The reason attributes the worker adds when it forwards a dead letter."""
    return {
        ERROR_CODE_ATTRIBUTE: code,
        ERROR_MESSAGE_ATTRIBUTE: message,
        SERVICE_ID_ATTRIBUTE: service_id,
        REQUEST_ID_ATTRIBUTE: request_id,
        FAILED_AT_ATTRIBUTE: "2026-11-26T05:00:00.000Z",
        ORIGINAL_MESSAGE_ID_ATTRIBUTE: "1234",
        DELIVERY_ATTEMPT_ATTRIBUTE: "1",
    }


def dead_letter(stack: Stack, data: dict[str, Any] | bytes, **attributes: str) -> str:
    """Publish straight to the stack's dead-letter topic; return the dead letter's id."""
    payload = data if isinstance(data, bytes) else json.dumps(data).encode()
    return stack.emulator.publish(stack.queue.dead_letter_topic, payload, **attributes)
