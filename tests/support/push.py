"""Helpers for push-endpoint tests: envelopes, the app on a stack, a push subscription."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.testclient import TestClient

from tests.support.pubsub_emulator import unique_name
from tests.support.worker_stack import Stack
from worker.app.runtime import Runtime, build_runtime
from worker.processing.metrics import Metrics
from worker.transports.push import authenticator_for, push_app

AUDIENCE = "https://email-worker.test/pubsub/push"
PUSHER = "pubsub-pusher@test-project.iam.gserviceaccount.com"


def envelope(
    data: bytes | dict[str, Any],
    *,
    message_id: str = "1001",
    attributes: dict[str, str] | None = None,
    delivery_attempt: int | None = None,
    subscription: str = "projects/test-project/subscriptions/email-requests-push",
) -> dict[str, Any]:
    """A wrapped push envelope as Pub/Sub sends it."""
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    document: dict[str, Any] = {
        "message": {
            "data": base64.b64encode(raw).decode(),
            "attributes": attributes or {},
            "messageId": message_id,
            "message_id": message_id,
            "publishTime": "2026-01-01T00:00:00.000Z",
        },
        "subscription": subscription,
    }
    if delivery_attempt is not None:
        document["deliveryAttempt"] = delivery_attempt
    return document


def auth_env(certs_url: str) -> dict[str, str]:
    """Settings that require tokens for ``AUDIENCE`` from ``PUSHER``, checked at ``certs_url``."""
    return {
        "EMAIL_WORKER_PUSH_AUTH": "on",
        "EMAIL_WORKER_PUSH_AUDIENCE": AUDIENCE,
        "EMAIL_WORKER_PUSH_SERVICE_ACCOUNT": PUSHER,
        "EMAIL_WORKER_PUSH_CERTS_URL": certs_url,
    }


@dataclass
class PushApp:
    app: Starlette
    runtime: Runtime
    client: TestClient

    @property
    def metrics(self) -> Metrics:
        return self.runtime.metrics

    def post(self, document: Any, token: str | None = None, **kwargs: Any) -> Any:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.client.post("/pubsub/push", json=document, headers=headers, **kwargs)

    def value(self, name: str, **labels: str) -> float:
        found = self.metrics.registry.get_sample_value(name, labels)
        return 0.0 if found is None else found

    def requests_processed(self) -> float:
        """Deliveries that reached the handler, whatever their outcome."""
        return sum(
            sample.value
            for metric in self.metrics.registry.collect()
            if metric.name == "email_worker_requests"
            for sample in metric.samples
            if sample.name == "email_worker_requests_total"
        )

    def wait_for(self, name: str, expected: float, timeout_s: float = 10.0, **labels: str) -> None:
        """Publishes are counted when Pub/Sub confirms them, a moment after the answer."""
        deadline = time.monotonic() + timeout_s
        while self.value(name, **labels) != expected:
            if time.monotonic() > deadline:
                raise AssertionError(f"{name}{labels} = {self.value(name, **labels)} != {expected}")
            time.sleep(0.02)


@contextmanager
def push_app_on(stack: Stack, **overrides: str) -> Iterator[PushApp]:
    """The push app for ``stack`` (auth off unless ``overrides`` switch it on), in process."""
    settings = stack.settings(**{"EMAIL_WORKER_PUSH_AUTH": "off", **overrides})
    runtime = build_runtime(settings, subscription_readable=False)
    runtime.handler.deps.sleep = stack.sleeps.append  # retries do not wait in tests
    app = push_app(runtime.handler, authenticator_for(settings), settings=settings)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            yield PushApp(app, runtime, client)
    finally:
        runtime.close()


def create_push_subscription(stack: Stack, endpoint: str, name: str | None = None) -> str:
    """A push subscription on the stack's requests topic, delivering to ``endpoint``."""
    emulator = stack.emulator
    path: str = emulator.subscriber.subscription_path(
        emulator.project_id, name or unique_name("push")
    )
    emulator.subscriber.create_subscription(
        request={
            "name": path,
            "topic": stack.queue.topic,
            "ack_deadline_seconds": 30,
            "push_config": {"push_endpoint": endpoint},
        }
    )
    return path


def delete_subscription(stack: Stack, path: str) -> None:
    """Stop the emulator pushing (it would keep retrying against a stopped server)."""
    stack.emulator.subscriber.delete_subscription(request={"subscription": path})
