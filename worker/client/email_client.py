"""A small typed client for services: publish email requests and, optionally, await results.

    from worker.client import AttachmentSpec, EmailClient, EmailRequestSpec

    with EmailClient("my-project", default_service_id="billing") as client:
        spec = EmailRequestSpec(to=["alice@example.org"], subject="Invoice", text="Hello")
        request_id = client.publish(spec)               # fire and forget
        result = client.publish_and_wait(spec, timeout_s=60)   # or: publish, then await
        print(result.status, result.message_ids)
        for received in client.pull_results(timeout_s=10):  # or: from billing's results
            print(received.result.request_id, received.result.status)
            received.ack()

Requests are checked locally with the worker's own parser (`worker.formats.request.parse_request`)
before publishing, so a malformed request raises `RequestRejected` at once instead of coming
back as a ``rejected`` result.

A service reads its results from its own results subscription, ``email-results-{service}``
(:mod:`worker.client.results`): a service that publishes and moves on handles them there.
Awaiting one result instead uses a temporary subscription on the results topic, filtered on
``attributes.request_id`` and ``attributes.service_id``. A result is taken only when both are
the awaited ones: request ids are chosen by the services, so another service may use the same
one (deliberately, to answer this client with a refusal of its own request). The subscription
is created *before* the request is published (a subscription
only receives messages published after it exists) and deleted afterwards, also on timeout or
interruption; should deletion fail, the subscription expires by itself after a day of
inactivity. Creating it needs ``pubsub.subscriptions.create`` in the project and
``pubsub.topics.attachSubscription`` on the results topic.

The request specs and their local check are in :mod:`worker.client.request_specs`, awaiting
one result in :mod:`worker.client.pending_result`, reading results subscriptions in
:mod:`worker.client.results`.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from worker.client.pending_result import PendingResult, ResultTimeout
from worker.client.references import GcsAttachmentSpec, TemplateSpec
from worker.client.request_specs import (
    MAX_REQUEST_BYTES,
    AttachmentSpec,
    EmailRequestSpec,
    prepare_checked,
    prepare_request,
)
from worker.client.results import ReceivedResult, pull_results
from worker.config.names import RESULTS_SUBSCRIPTION_TEMPLATE, results_subscription_for
from worker.formats.error_codes import ErrorCode
from worker.formats.request import RequestRejected
from worker.formats.result import EmailResult

__all__ = [
    "MAX_REQUEST_BYTES",
    "AttachmentSpec",
    "EmailClient",
    "EmailRequestSpec",
    "GcsAttachmentSpec",
    "PendingResult",
    "ReceivedResult",
    "RequestRejected",
    "ResultTimeout",
    "TemplateSpec",
    "prepare_request",
]

logger = logging.getLogger(__name__)

# Request ids that can be written into a filter's string literal as they are.
_FILTERABLE_ID = re.compile(r"[ !#-\[\]-~]{1,128}")


def _topic_path(project_id: str, topic: str) -> str:
    return topic if topic.startswith("projects/") else f"projects/{project_id}/topics/{topic}"


class EmailClient:
    """Publishes requests to the requests topic and awaits results on the results topic.

    Each request goes to its own service's topic (``service_topic``, ``{service}`` replaced
    by the request's ``service_id``): with per-service tenancy the worker takes the topic as
    proof of who published, and refuses a request that names another service. Set
    ``requests_topic`` instead for a worker with shared tenancy (one topic for every service).

    A service's results are read from its own subscription on the results topic,
    ``results_subscription`` (``{service}`` replaced by the service id), as terraform and
    ``email-worker setup`` name it: a name in ``project_id`` or a full path.

    Topics are names in ``project_id`` or full ``projects/.../topics/...`` paths. The Pub/Sub
    clients are created on first use (honouring ``PUBSUB_EMULATOR_HOST``) unless given.
    ``timeout_s`` bounds each publish; ``rpc_timeout_s`` (default: the shorter of ``timeout_s``
    and 10 s) each other Pub/Sub call.
    """

    def __init__(
        self,
        project_id: str,
        *,
        requests_topic: str | None = None,
        service_topic: str = "email-requests-{service}",
        results_topic: str = "email-results",
        results_subscription: str = RESULTS_SUBSCRIPTION_TEMPLATE,
        default_service_id: str | None = None,
        timeout_s: float = 30.0,
        rpc_timeout_s: float | None = None,
        publisher: Any = None,
        subscriber: Any = None,
    ) -> None:
        self.project_id = project_id
        self.requests_topic = (
            None if requests_topic is None else _topic_path(project_id, requests_topic)
        )
        self.service_topic = service_topic
        self.results_topic = _topic_path(project_id, results_topic)
        self.results_subscription = results_subscription
        self.default_service_id = default_service_id
        self.timeout_s = timeout_s
        self.rpc_timeout_s = rpc_timeout_s or min(timeout_s, 10.0)
        self._publisher = publisher
        self._subscriber = subscriber
        self._owns_publisher = publisher is None
        self._owns_subscriber = subscriber is None

    @property
    def publisher(self) -> Any:
        if self._publisher is None:
            from worker.client.pubsub_rpc import new_publisher

            self._publisher = new_publisher(self.timeout_s)
        return self._publisher

    @property
    def subscriber(self) -> Any:
        if self._subscriber is None:
            from worker.client.pubsub_rpc import new_subscriber

            self._subscriber = new_subscriber()
        return self._subscriber

    def publish(self, request: Mapping[str, Any] | EmailRequestSpec) -> str:
        """Check and publish ``request``; return its ``request_id`` once Pub/Sub confirms.

        Raises `RequestRejected` for a request the worker would reject (nothing is published),
        or the Pub/Sub error if publishing fails.
        """
        parsed, data, service_id = prepare_checked(
            request, default_service_id=self.default_service_id
        )
        topic = self._topic_for(service_id)
        self.publisher.publish(topic, data).result(timeout=self.timeout_s)
        return parsed.request_id

    def topic_for(self, service_id: str) -> str:
        """The topic a request of ``service_id`` is published to."""
        if self.requests_topic is not None:
            return self.requests_topic
        return _topic_path(self.project_id, self.service_topic.replace("{service}", service_id))

    def _topic_for(self, service_id: str | None) -> str:
        if service_id is None:
            if self.requests_topic is not None:
                return self.requests_topic
            raise RequestRejected(
                ErrorCode.INVALID_REQUEST,
                "the request names no service_id (nor does the client's default_service_id), "
                "so there is no service topic to publish it to",
            )
        return self.topic_for(service_id)

    def results_subscription_for(self, service_id: str) -> str:
        """The full path of ``service_id``'s own results subscription."""
        name = results_subscription_for(service_id, self.results_subscription)
        if name.startswith("projects/"):
            return name
        return f"projects/{self.project_id}/subscriptions/{name}"

    def pull_results(
        self, service_id: str | None = None, *, max_results: int = 100, timeout_s: float = 10.0
    ) -> list[ReceivedResult]:
        """Results waiting on the service's own results subscription (``service_id``, default:
        the client's ``default_service_id``), up to ``max_results``; ``[]`` when none comes
        within ``timeout_s``. Call ``ack()`` on each once handled: one left unacknowledged is
        delivered again after the subscription's ack deadline.

        Raises ValueError when there is no service to read for.
        """
        service = service_id or self.default_service_id
        if service is None:
            raise ValueError(
                "pull_results needs a service_id (or the client's default_service_id): "
                "each service reads its own results subscription"
            )
        return pull_results(
            self.subscriber,
            self.results_subscription_for(service),
            service,
            max_results=max_results,
            timeout_s=timeout_s,
            rpc_timeout_s=self.rpc_timeout_s,
        )

    def publish_and_wait(
        self, request: Mapping[str, Any] | EmailRequestSpec, timeout_s: float = 60.0
    ) -> EmailResult:
        """Publish ``request`` and return its result (any status).

        Raises `RequestRejected` before publishing, or `ResultTimeout` when no result arrives
        within ``timeout_s`` (the request may still be sent later).
        """
        parsed, data, service_id = prepare_checked(
            request, default_service_id=self.default_service_id
        )
        topic = self._topic_for(service_id)
        with self.expect_result(parsed.request_id, service_id=service_id) as pending:
            self.publisher.publish(topic, data).result(timeout=self.timeout_s)
            return pending.wait(timeout_s)

    @contextmanager
    def expect_result(
        self, request_id: str, *, service_id: str | None = None
    ) -> Iterator[PendingResult]:
        """Subscribe to the result of ``request_id``; publish inside the block, then ``wait``.

        Only a result of ``service_id`` (default: the client's ``default_service_id``) for
        ``request_id`` is taken: with per-service tenancy, the service whose topic the request
        is published to. With neither (shared tenancy, the worker's default service) any
        service's result for ``request_id`` is. The temporary subscription is deleted when the
        block exits, however it exits.
        """
        from worker.client.pubsub_rpc import bounded

        name = f"email-worker-wait-{uuid.uuid4().hex[:16]}"
        subscription = f"projects/{self.project_id}/subscriptions/{name}"
        spec: dict[str, Any] = {
            "name": subscription,
            "topic": self.results_topic,
            "ack_deadline_seconds": 30,
            # Pub/Sub's minimums: a leaked subscription disappears after a quiet day.
            "message_retention_duration": {"seconds": 600},
            "expiration_policy": {"ttl": {"seconds": 86400}},
        }
        service = service_id or self.default_service_id
        if _FILTERABLE_ID.fullmatch(request_id) and (
            service is None or _FILTERABLE_ID.fullmatch(service)
        ):
            spec["filter"] = f'attributes.request_id = "{request_id}"' + (
                "" if service is None else f' AND attributes.service_id = "{service}"'
            )
        # Otherwise (quotes, backslashes, non-ASCII) every result comes in and is checked here.
        self.subscriber.create_subscription(request=spec, **bounded(self.rpc_timeout_s))
        try:
            yield PendingResult(
                self.subscriber, subscription, request_id, self.rpc_timeout_s, service
            )
        finally:
            try:
                self.subscriber.delete_subscription(
                    request={"subscription": subscription}, **bounded(self.rpc_timeout_s)
                )
            except Exception as error:  # never hide the block's own outcome
                logger.warning(
                    "could not delete temporary subscription %s (it expires after a day "
                    "unused): %s",
                    subscription,
                    error,
                )

    def close(self) -> None:
        """Stop the clients this client created."""
        if self._owns_publisher and self._publisher is not None:
            self._publisher.stop()
        if self._owns_subscriber and self._subscriber is not None:
            self._subscriber.close()
        self._publisher = self._subscriber = None

    def __enter__(self) -> EmailClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
