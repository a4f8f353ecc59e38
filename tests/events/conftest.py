"""The SES events path on local servers: moto's EventBridge and SQS, the Pub/Sub emulator.

``ses_events`` builds what terraform builds on AWS: a queue with a dead-letter queue (redrive
after two receives) and a rule on the default bus that sends SES's events to it. The reader
gets its credentials as in production, from the metadata stand-in's Google ID token through
moto's STS, for ``EVENTS_ROLE``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.moto_server import MotoServer
from tests.support.pubsub_emulator import PubSubEmulator
from tests.support.ses_events import SesEventsQueue, create_ses_events_queue
from worker.events import EventsReader, sqs_client

EVENTS_ROLE = "arn:aws:iam::123456789012:role/email-worker-events"


@pytest.fixture
def ses_events(aws_env: MotoServer, monkeypatch: pytest.MonkeyPatch) -> SesEventsQueue:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", aws_env.endpoint)
    return create_ses_events_queue(aws_env)


@dataclass(frozen=True)
class EventsTopic:
    topic: str
    subscription: str
    emulator: PubSubEmulator

    def published(self, timeout_s: float = 10.0) -> list[Any]:
        """The event messages that arrive within ``timeout_s`` (acknowledged)."""
        return self.emulator.pull(self.subscription, timeout_s=timeout_s)

    def publish(self, topic: str, data: bytes, attributes: Any) -> Future[Any]:
        future: Future[Any] = self.emulator.publisher.publish(topic, data, **attributes)
        return future


@pytest.fixture
def events_topic(pubsub_env: PubSubEmulator) -> EventsTopic:
    topic = pubsub_env.create_topic()
    return EventsTopic(topic, pubsub_env.create_subscription(topic), pubsub_env)


MakeReader = Callable[..., EventsReader]


@pytest.fixture
def make_reader(
    ses_events: SesEventsQueue, events_topic: EventsTopic, clean_metadata: Any
) -> MakeReader:
    """An events reader on ``ses_events`` and ``events_topic``; ``publish`` may be replaced,
    and ``wrap_sqs`` may stand in front of its SQS client."""

    def make(wrap_sqs: Callable[[Any], Any] = lambda sqs: sqs, **overrides: Any) -> EventsReader:
        arguments: dict[str, Any] = {
            "queue_url": ses_events.url,
            "topic": events_topic.topic,
            "publish": events_topic.publish,
            "publish_timeout_s": 10.0,
            "wait_time_s": 1,
            **overrides,
        }
        sqs = sqs_client(role_arn=EVENTS_ROLE, queue_url=ses_events.url)
        return EventsReader(wrap_sqs(sqs), **arguments)

    return make


@pytest.fixture
def running() -> Iterator[Callable[[EventsReader], None]]:
    """Runs readers in background threads; stops and joins them after the test."""
    started: list[tuple[EventsReader, threading.Thread]] = []

    def start(reader: EventsReader) -> None:
        thread = threading.Thread(target=reader.run, daemon=True)
        thread.start()
        started.append((reader, thread))

    yield start
    for reader, _ in started:
        reader.stop()
    for _, thread in started:
        thread.join(timeout=10)
        assert not thread.is_alive()


def wait_until(condition: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
