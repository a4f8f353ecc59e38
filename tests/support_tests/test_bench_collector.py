"""The benchmarks' result collector (bench/run.py): a result published twice for one request
is a duplicate; one message Pub/Sub delivers again is not."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from bench.run import Collector

pytestmark = pytest.mark.unit


@dataclass
class Message:
    message_id: str
    data: bytes
    acks: list[str] = field(default_factory=list)

    def ack(self) -> None:
        self.acks.append(self.message_id)


class Subscriber:
    """Hands the collector's callback to the test, as a streaming pull would call it."""

    callback: Callable[[Any], None]

    def subscribe(self, subscription: str, callback: Callable[[Any], None]) -> object:
        self.callback = callback
        return object()


def result(message_id: str, request_id: str) -> Message:
    body = {"request_id": request_id, "status": "sent"}
    return Message(message_id, json.dumps(body).encode())


def test_two_results_published_for_one_request_count_as_a_duplicate() -> None:
    subscriber = Subscriber()
    collector = Collector(subscriber, "results")
    subscriber.callback(result("m-1", "r-1"))
    subscriber.callback(result("m-2", "r-1"))
    assert (collector.duplicates, collector.redelivered) == (1, 0)


def test_one_result_message_delivered_again_is_a_redelivery_not_a_duplicate() -> None:
    subscriber = Subscriber()
    collector = Collector(subscriber, "results")
    message = result("m-1", "r-1")
    subscriber.callback(message)
    subscriber.callback(message)
    assert (collector.duplicates, collector.redelivered) == (0, 1)
    assert collector.statuses["sent"] == 1
