"""The streaming pull's flow control: one fixed ack deadline, for held and streamed messages."""

from __future__ import annotations

from worker.config.settings import Settings
from worker.transports.pull import flow_control


def test_every_lease_extension_asks_for_the_configured_ack_deadline() -> None:
    control = flow_control(Settings.from_env({"EMAIL_WORKER_ACK_DEADLINE_S": "90"}))
    assert control.min_duration_per_lease_extension == 90
    assert control.max_duration_per_lease_extension == 90


def test_flow_control_holds_the_configured_messages_and_bytes() -> None:
    settings = Settings.from_env(
        {"EMAIL_WORKER_MAX_MESSAGES": "500", "EMAIL_WORKER_MAX_BYTES": "1000000"}
    )
    control = flow_control(settings)
    assert control.max_messages == 500
    assert control.max_bytes == 1_000_000
