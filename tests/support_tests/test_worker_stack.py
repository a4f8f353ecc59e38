"""The in-process worker stack behaves like a worker on the real service across restarts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.pubsub_emulator import PubSubEmulator
from tests.support.worker_stack import make_stack, request


def test_a_worker_started_again_on_a_subscription_gets_every_new_message_at_once(
    pubsub_env: PubSubEmulator, fault_proxy: Any, tmp_path: Path
) -> None:
    stack = make_stack(pubsub_env, tmp_path, fault_proxy.endpoint)  # ack deadline: 10 s
    with stack.running():
        for n in range(3):
            stack.publish(request(request_id=f"first-{n}"))
        stack.results(3)
    with stack.running():
        for n in range(12):
            stack.publish(request(request_id=f"again-{n}"))
        # Well inside the ack deadline: none was handed to the first worker's ended stream,
        # where it would wait out the deadline before redelivery.
        results = stack.results(12, timeout_s=8)
    assert sorted(r["request_id"] for r in results) == sorted(f"again-{n}" for n in range(12))
    assert {r["status"] for r in results} == {"sent"}
