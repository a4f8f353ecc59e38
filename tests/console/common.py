"""Helpers of the console's tests: dead letters of billing's requests, and what the ledger
holds about them."""

from __future__ import annotations

import json
from typing import Any

from tests.support.cli_runner import dead_letter, worker_reason
from tests.support.console import stack_ledger
from tests.support.worker_stack import Stack, request
from worker.ledger import LedgerKey, StoredResult, content_hash


def dead_lettered(
    stack: Stack,
    request_id: str,
    *,
    code: str = "identity_not_verified",
    message: str = "SendEmail failed: MessageRejected: Email address is not verified.",
    service_id: str = "billing",
    recorded: bool = True,
    sender: str | None = None,
    **fields: Any,
) -> str:
    """A dead letter of ``request_id`` as the worker forwards it (recorded in the ledger as
    failed, unless not ``recorded``); its message id."""
    if sender is not None:
        fields["from"] = sender
    data = json.dumps(request(request_id=request_id, service_id=service_id, **fields)).encode()
    if recorded:
        with stack_ledger(stack) as ledger:
            key = LedgerKey(service_id, request_id)
            ledger.claim(key, owner="worker-1", content_hash=content_hash(data))
            ledger.complete(
                key,
                owner="worker-1",
                result=StoredResult("failed", error_code=code, error_message=message),
            )
    reason = worker_reason(request_id, code=code, message=message, service_id=service_id)
    return dead_letter(stack, data, **reason)


def replay_subscription(stack: Stack) -> str:
    name = stack.settings().topics.replay_subscription
    return f"projects/{stack.emulator.project_id}/subscriptions/{name}"
