"""The in-process worker stack behaves like a worker on the real service across restarts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.pubsub_emulator import PubSubEmulator
from tests.support.worker_stack import make_stack, request


def test_a_worker_started_again_on_a_subscription_gets_every_new_message_at_once(
    pubsub_env: PubSubEmulator, fault_proxy: Any, tmp_path: Path
) -> None:
    stack = make_stack(pubsub_env, tmp_path, fault_proxy.endpoint)
    with stack.running():
        for n in range(3):
            stack.publish(request(request_id=f"first-{n}"))
        stack.results(3)
    with stack.running():
        for n in range(12):
            stack.publish(request(request_id=f"again-{n}"))
        results = stack.results(12)
    assert sorted(r["request_id"] for r in results) == sorted(f"again-{n}" for n in range(12))
    assert {r["status"] for r in results} == {"sent"}
    # None was handed to the first worker's ended stream, to come back an ack deadline later
    # as a second delivery attempt.
    assert {r["attempt"] for r in results} == {1}
