"""gcloud's Pub/Sub emulator (Java) as a subprocess group on a free loopback port.

Started and stopped as ``tests.support.gcloud_emulator`` describes.

google-cloud-pubsub clients use the emulator when ``PUBSUB_EMULATOR_HOST`` is set at
construction time (insecure gRPC channel, anonymous credentials). The helpers below build
their own insecure channel, so they work whether or not that variable is set.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from typing import Any

import grpc  # type: ignore[import-untyped]
from google.api_core.exceptions import DeadlineExceeded
from google.cloud import pubsub_v1
from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

from tests.support.gcloud_emulator import GcloudEmulator

PROJECT_ID = "test-project"


def insecure_channel(host: str) -> grpc.Channel:
    # No gRPC message size cap, as in the client library's own channels: one pull of a few
    # large messages easily exceeds gRPC's default 4 MiB.
    unlimited = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    return grpc.insecure_channel(host, options=unlimited)


def subscriber_client(host: str) -> pubsub_v1.SubscriberClient:
    """A subscriber client for the emulator (or a relay in front of it) at ``host``."""
    return pubsub_v1.SubscriberClient(
        transport=SubscriberGrpcTransport(channel=insecure_channel(host))
    )


def unique_name(prefix: str) -> str:
    """A resource name no other test uses (the emulator is shared by the session)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class QueueNames:
    """Full resource paths of a topic/subscription pair with a dead-letter topic."""

    topic: str
    subscription: str
    dead_letter_topic: str
    dead_letter_subscription: str


class PubSubEmulator(GcloudEmulator):
    name = "pubsub-emulator"

    def __init__(self, port: int | None = None, project_id: str = PROJECT_ID) -> None:
        super().__init__(port, project_id)
        self._data_dir = tempfile.mkdtemp(prefix="pubsub-emulator-")
        self._publisher: pubsub_v1.PublisherClient | None = None
        self._subscriber: pubsub_v1.SubscriberClient | None = None

    def argv(self) -> list[str]:
        return [
            "gcloud",
            "beta",
            "emulators",
            "pubsub",
            "start",
            f"--host-port={self.host}",
            f"--project={self.project_id}",
            f"--data-dir={self._data_dir}",
        ]

    def stop(self) -> None:
        """Kill the emulator (wrapper and Java); clients built earlier start failing."""
        self._close_clients()
        super().stop()

    def close(self) -> None:
        """Stop and remove the temp directories (session teardown)."""
        super().close()
        shutil.rmtree(self._data_dir, ignore_errors=True)

    # -- clients ---------------------------------------------------------------------

    @property
    def publisher(self) -> pubsub_v1.PublisherClient:
        if self._publisher is None:
            transport = PublisherGrpcTransport(channel=self._channel())
            self._publisher = pubsub_v1.PublisherClient(transport=transport)
        return self._publisher

    @property
    def subscriber(self) -> pubsub_v1.SubscriberClient:
        if self._subscriber is None:
            self._subscriber = subscriber_client(self.host)
        return self._subscriber

    def _channel(self) -> grpc.Channel:
        return insecure_channel(self.host)

    def _close_clients(self) -> None:
        if self._publisher is not None:
            self._publisher.stop()
            self._publisher.transport.close()
        if self._subscriber is not None:
            self._subscriber.close()
        self._publisher = self._subscriber = None

    # -- resources -------------------------------------------------------------------

    def create_topic(self, name: str | None = None) -> str:
        """Create a topic (default: unique name); return its full path."""
        path: str = self.publisher.topic_path(self.project_id, name or unique_name("topic"))
        self.publisher.create_topic(request={"name": path})
        return path

    def create_subscription(
        self,
        topic: str,
        name: str | None = None,
        *,
        ack_deadline_s: int = 10,
        dead_letter_topic: str | None = None,
        max_delivery_attempts: int = 5,
    ) -> str:
        """Create a pull subscription on ``topic``; return its full path.

        With ``dead_letter_topic``, messages go there after ``max_delivery_attempts``
        (Pub/Sub allows 5..100) deliveries.
        """
        path: str = self.subscriber.subscription_path(
            self.project_id, name or unique_name("subscription")
        )
        request: dict[str, Any] = {
            "name": path,
            "topic": topic,
            "ack_deadline_seconds": ack_deadline_s,
        }
        if dead_letter_topic is not None:
            request["dead_letter_policy"] = {
                "dead_letter_topic": dead_letter_topic,
                "max_delivery_attempts": max_delivery_attempts,
            }
        self.subscriber.create_subscription(request=request)
        return path

    def create_queue(
        self, *, ack_deadline_s: int = 10, max_delivery_attempts: int = 5
    ) -> QueueNames:
        """A unique topic + subscription with a dead-letter topic that has its own sub."""
        dead_letter_topic = self.create_topic(unique_name("dead-letter"))
        dead_letter_subscription = self.create_subscription(dead_letter_topic)
        topic = self.create_topic()
        subscription = self.create_subscription(
            topic,
            ack_deadline_s=ack_deadline_s,
            dead_letter_topic=dead_letter_topic,
            max_delivery_attempts=max_delivery_attempts,
        )
        return QueueNames(topic, subscription, dead_letter_topic, dead_letter_subscription)

    def publish(self, topic: str, data: bytes, **attributes: str) -> str:
        """Publish one message and wait for its id."""
        message_id: str = self.publisher.publish(topic, data, **attributes).result(timeout=30)
        return message_id

    def pull(
        self, subscription: str, max_messages: int = 10, timeout_s: float = 10.0, ack: bool = True
    ) -> list[Any]:
        """Pull until at least one message arrives or ``timeout_s`` passes.

        Returns ``ReceivedMessage`` objects (``.message.data``, ``.message.attributes``,
        ``.delivery_attempt``); acknowledges them unless ``ack=False``.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                response = self.subscriber.pull(
                    request={"subscription": subscription, "max_messages": max_messages},
                    timeout=max(1.0, min(5.0, deadline - time.monotonic())),
                )
                received = list(response.received_messages)
            except DeadlineExceeded:  # a long-poll that found nothing
                received = []
            if received or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        if received and ack:
            self.subscriber.acknowledge(
                request={"subscription": subscription, "ack_ids": [m.ack_id for m in received]}
            )
        return received
