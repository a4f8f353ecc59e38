"""A worker wired to the Pub/Sub emulator, moto and a file:// service configuration.

Each stack gets its own topics and subscriptions (unique names), so tests sharing the
emulator cannot see each other's messages.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.pubsub_emulator import (
    PubSubEmulator,
    QueueNames,
    subscriber_client,
    unique_name,
)
from tests.support.tcp_relay import TcpRelay
from worker.app.runtime import Runtime, build_runtime
from worker.config.settings import Settings
from worker.transports.pull import PullWorker

ROLE = "arn:aws:iam::123456789012:role/email-sender"


def short(path: str) -> str:
    return path.rsplit("/", 1)[-1]


@dataclass
class Stack:
    emulator: PubSubEmulator
    queue: QueueNames
    results_topic: str
    results_subscription: str
    config_dir: Path
    env: dict[str, str]
    sleeps: list[float] = field(default_factory=list)
    #: Per-service tenancy (make_tenant_stack): each service's request topic, and the replay
    #: topic, as full paths.
    service_topics: dict[str, str] = field(default_factory=dict)
    replay_topic: str | None = None
    #: Handed the pull worker's subscriber client before it starts (see running).
    watch: Callable[[Any], object] | None = None

    def settings(self, **overrides: str) -> Settings:
        return Settings.from_env({**self.env, **overrides})

    def write_service(self, service_id: str, **document: Any) -> None:
        path = self.config_dir / "production" / f"{service_id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"service_id": service_id, **document}))

    def publish(self, request: dict[str, Any] | bytes, **attributes: str) -> str:
        data = request if isinstance(request, bytes) else json.dumps(request).encode()
        return self.emulator.publish(self.queue.topic, data, **attributes)

    def publish_as(
        self, service_id: str, request: dict[str, Any] | bytes, **attributes: str
    ) -> str:
        """Publish to ``service_id``'s own topic (per-service tenancy)."""
        data = request if isinstance(request, bytes) else json.dumps(request).encode()
        return self.emulator.publish(self.service_topics[service_id], data, **attributes)

    def results(self, count: int, timeout_s: float = 60.0) -> list[dict[str, Any]]:
        """Collect ``count`` results (or fail after ``timeout_s``), with their attributes."""
        return [
            {**json.loads(m.message.data), "_attributes": dict(m.message.attributes)}
            for m in self._collect(self.results_subscription, count, timeout_s)
        ]

    def dead_letters(self, count: int, timeout_s: float = 60.0) -> list[Any]:
        return [
            m.message for m in self._collect(self.queue.dead_letter_subscription, count, timeout_s)
        ]

    def nothing_more(self, subscription: str, wait_s: float = 2.0) -> bool:
        return not self.emulator.pull(subscription, timeout_s=wait_s)

    def _collect(self, subscription: str, count: int, timeout_s: float) -> list[Any]:
        deadline = time.monotonic() + timeout_s
        collected: list[Any] = []
        while len(collected) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"only {len(collected)} of {count} messages arrived")
            collected.extend(
                self.emulator.pull(subscription, max_messages=100, timeout_s=min(remaining, 10))
            )
        return collected

    @contextmanager
    def running(self, **overrides: str) -> Iterator[Runtime]:
        """Run a pull worker in a thread; stop it (gracefully) on exit. ``watch``, if set, is
        handed the worker's subscriber client before it starts, to observe its calls.

        Its streaming pull goes through ``TcpRelay(end_streams=True)``: the emulator alone
        keeps handing messages to a stream the stopped worker cancelled, so a test that runs
        a worker twice on one subscription would wait minutes for what the first got.
        """
        settings = self.settings(**overrides)
        runtime = build_runtime(settings)
        runtime.handler.deps.sleep = self.sleeps.append  # retries do not wait in tests
        with TcpRelay(self.emulator.port, end_streams=True) as relay:
            subscriber = subscriber_client(relay.host)
            if self.watch is not None:
                self.watch(subscriber)
            worker = PullWorker(settings, runtime.handler, subscriber)
            thread = threading.Thread(target=worker.run, name="pull-worker", daemon=True)
            thread.start()
            try:
                yield runtime
            finally:
                worker.stop()
                thread.join(timeout=30)
                subscriber.close()
                runtime.close()
                assert not thread.is_alive(), "the worker did not stop"


def make_stack(
    emulator: PubSubEmulator, config_dir: Path, aws_endpoint: str, *, max_delivery_attempts: int = 5
) -> Stack:
    queue = emulator.create_queue(max_delivery_attempts=max_delivery_attempts)
    results_topic = emulator.create_topic(unique_name("results"))
    results_subscription = emulator.create_subscription(results_topic)
    env = {
        "GOOGLE_CLOUD_PROJECT": emulator.project_id,
        "EMAIL_WORKER_SUBSCRIPTION": short(queue.subscription),
        "EMAIL_WORKER_REQUESTS_TOPIC": short(queue.topic),
        "EMAIL_WORKER_RESULTS_TOPIC": short(results_topic),
        "EMAIL_WORKER_DEAD_LETTER_TOPIC": short(queue.dead_letter_topic),
        "EMAIL_WORKER_DEAD_LETTER_SUBSCRIPTION": short(queue.dead_letter_subscription),
        "EMAIL_WORKER_ALLOWED_SERVICES": "billing",
        # One topic for every service; tests/support/tenant_stack.py has per-service topics.
        "EMAIL_WORKER_TENANCY": "shared",
        "EMAIL_WORKER_SERVICE_CONFIG_URL": f"file://{config_dir}/{{environment}}/{{service_id}}.json",
        "EMAIL_WORKER_SEND_MAX_ATTEMPTS": "3",
        # Each stack its own ledger: request ids repeat from test to test.
        "EMAIL_WORKER_LEDGER": f"sqlite:///{config_dir.resolve()}/ledger.db",
        # No events reader runs beside these workers, so there is no Send event to wait for
        # (as terraform sets it when the events path is off); the crash test runs one.
        "EMAIL_WORKER_SEND_EVENT_WAIT_S": "0",
    }
    stack = Stack(emulator, queue, results_topic, results_subscription, config_dir, env)
    stack.write_service(
        "billing",
        service_role_arn=ROLE,
        default_from_address="billing@example.com",
        allowed_from_domains=["example.com", "unverified.example"],
    )
    return stack


def make_tenant_stack(
    emulator: PubSubEmulator,
    config_dir: Path,
    aws_endpoint: str,
    *,
    max_delivery_attempts: int = 5,
    ack_deadline_s: int = 10,
) -> Stack:
    """A stack with per-service tenancy: services ``billing`` and ``shop``, each with its own
    topic and worker subscription (``ack_deadline_s``), and the replay topic, all
    dead-lettering to the stack's dead-letter topic. ``publish_as`` publishes as a service."""
    stack = make_stack(
        emulator, config_dir, aws_endpoint, max_delivery_attempts=max_delivery_attempts
    )
    prefix = unique_name("tenant")
    templates = {
        "EMAIL_WORKER_SERVICE_TOPIC": f"{prefix}-{{service}}",
        "EMAIL_WORKER_SERVICE_SUBSCRIPTION": f"{prefix}-{{service}}-worker",
        "EMAIL_WORKER_REPLAY_TOPIC": f"{prefix}-replays",
        "EMAIL_WORKER_REPLAY_SUBSCRIPTION": f"{prefix}-replays-worker",
    }
    stack.env.update(
        templates, EMAIL_WORKER_TENANCY="per-service", EMAIL_WORKER_ALLOWED_SERVICES="billing,shop"
    )
    settings = stack.settings()

    def inbound(topic_name: str, subscription_name: str) -> str:
        topic = emulator.create_topic(topic_name)
        emulator.create_subscription(
            topic,
            subscription_name,
            ack_deadline_s=ack_deadline_s,
            dead_letter_topic=stack.queue.dead_letter_topic,
            max_delivery_attempts=max_delivery_attempts,
        )
        return topic

    for service in ("billing", "shop"):
        stack.service_topics[service] = inbound(
            settings.topics.service_topic_for(service),
            settings.topics.service_subscription_for(service),
        )
    stack.replay_topic = inbound(settings.topics.replay_topic, settings.topics.replay_subscription)
    stack.write_service(
        "shop",
        service_role_arn=ROLE,
        default_from_address="shop@example.com",
        allowed_from_domains=["example.com"],
    )
    return stack


def request(**fields: Any) -> dict[str, Any]:
    """A valid v1 request for the ``billing`` service, with ``fields`` overriding."""
    document: dict[str, Any] = {
        "version": 1,
        "service_id": "billing",
        "from": "Billing <billing@example.com>",
        "to": ["alice@example.org"],
        "subject": "Your invoice",
        "text": "Hello Alice",
    }
    document.update(fields)
    return {k: v for k, v in document.items() if v is not None}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
