"""Acks gathered into few requests (worker/transports/ack_batches.py), on the emulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.worker_stack import Stack, make_stack, request
from worker.transports import ack_batches


@pytest.fixture
def stack(pubsub_env: Any, fault_proxy: Any, tmp_path: Path) -> Stack:
    return make_stack(pubsub_env, tmp_path, fault_proxy.endpoint)


class AckRequests:
    """Counts a subscriber client's Acknowledge requests and the acks they carry."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def __call__(self, subscriber: Any) -> None:
        acknowledge = subscriber.acknowledge

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.sizes.append(len(kwargs.get("ack_ids", ())))
            return acknowledge(*args, **kwargs)

        subscriber.acknowledge = counted


def test_a_paced_workers_acks_go_several_to_a_request(stack: Stack) -> None:
    # At 25 sends a second, after the first second's burst, requests finish about 40 ms
    # apart: after the library's own 10 ms wait each ack would go alone; gathered for 100 ms,
    # two or three share a request.
    stack.watch = acks = AckRequests()
    with stack.running(EMAIL_WORKER_SEND_RATE_PER_S="25"):
        for n in range(65):
            stack.publish(request(request_id=f"paced-{n}"))
        results = stack.results(65)
    assert {r["status"] for r in results} == {"sent"}
    assert sum(acks.sizes) == 65
    assert len(acks.sizes) <= 30, acks.sizes


def test_gathering_acks_sets_the_client_librarys_wait() -> None:
    from google.cloud.pubsub_v1.subscriber._protocol import dispatcher

    before = dispatcher._MAX_BATCH_LATENCY
    try:
        assert ack_batches.gather_acks(0.25)
        assert dispatcher._MAX_BATCH_LATENCY == 0.25
    finally:
        dispatcher._MAX_BATCH_LATENCY = before


def test_a_client_library_without_the_wait_is_left_as_it_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from google.cloud.pubsub_v1.subscriber._protocol import dispatcher

    monkeypatch.delattr(dispatcher, "_MAX_BATCH_LATENCY")
    assert not ack_batches.gather_acks(0.25)
    assert not hasattr(dispatcher, "_MAX_BATCH_LATENCY")
