"""Wiring: build the handler and its clients from settings, once, at the entry point."""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from worker.client.pubsub_rpc import new_publisher, new_subscriber
from worker.config.logs import get_logger
from worker.config.settings import Settings
from worker.ledger import Ledger, open_ledger
from worker.ops.topology import read_max_delivery_attempts
from worker.processing.breaker import OutageBreaker
from worker.processing.handling import Handler
from worker.processing.metrics import Metrics
from worker.processing.outputs import Outputs
from worker.processing.pauses import PauseWatch
from worker.processing.pipeline import Deps
from worker.processing.send_rate import SendRateLimiter
from worker.processing.tenancy import Source, SourceKind, subscription_sources
from worker.sending.session import BaseSession, Session
from worker.sending.session_cache import SessionCache

__all__ = ["Runtime", "build_runtime"]

log = get_logger()


@dataclass
class Runtime:
    settings: Settings
    handler: Handler
    publisher: Any
    subscriber: Any
    metrics: Metrics
    ledger: Ledger | None = None

    def close(self) -> None:
        """Flush pending publishes and close the clients and the ledger."""
        self.publisher.stop()
        self.subscriber.close()
        if self.ledger is not None:
            self.ledger.close()


def build_runtime(
    settings: Settings, *, metrics: Metrics | None = None, subscription_readable: bool = True
) -> Runtime:
    """Create the Pub/Sub clients, the session cache and the handler for ``settings``.

    Without EMAIL_WORKER_MAX_DELIVERY_ATTEMPTS the last delivery attempt is read from the
    subscription's dead-letter policy. A push endpoint may lack the permission to read its
    subscription: with ``subscription_readable=False`` a failure to read it is a warning.
    """
    metrics = metrics if metrics is not None else Metrics()
    project = settings.require_project()
    if settings.services.config_url:
        # The library reads its configuration location from the environment; make sure it
        # sees the value these settings were validated with.
        os.environ["EMAIL_WORKER_SERVICE_CONFIG_URL"] = settings.services.config_url
    # The operators' commands publish with the same batching, retry and timeout.
    publisher = new_publisher(settings.process.publish_timeout_s)
    subscriber = new_subscriber()

    def publish(topic: str, data: bytes, attributes: Mapping[str, str]) -> Future[Any]:
        future: Future[Any] = publisher.publish(topic, data, **attributes)
        return future

    def new_session(service_id: str) -> BaseSession:
        return Session.for_service(service_id, environment=settings.services.config_environment)

    ledger = open_ledger(
        settings.ledger.url,
        project=project,
        claim_lease_s=settings.ledger.claim_s,
        retention_s=settings.ledger.retention_s,
        takeover_wait_s=settings.ledger.send_event_wait_s,
    )
    deps = Deps(
        settings=settings,
        sessions=SessionCache(new_session, ttl_s=settings.services.session_ttl_s),
        send_rate=(
            SendRateLimiter(settings.sending.rate_per_s) if settings.sending.rate_per_s else None
        ),
        ledger=ledger,
        breaker=outage_breaker(settings),
    )
    results_topic = publisher.topic_path(project, settings.topics.results_topic)
    dead_letter_topic = publisher.topic_path(project, settings.topics.dead_letter_topic)
    outputs = Outputs(
        metrics.counting(publish, results_topic=results_topic, dead_letter_topic=dead_letter_topic),
        results_topic=results_topic,
        dead_letter_topic=dead_letter_topic,
        timeout_s=settings.process.publish_timeout_s,
    )
    sources = subscription_sources(settings)
    _log_tenancy(settings, sources)
    max_attempts = settings.redelivery.max_delivery_attempts
    if max_attempts is None:
        # Every subscription the worker reads has the same dead-letter policy (terraform/).
        path = next(iter(sources))
        try:
            max_attempts = read_max_delivery_attempts(subscriber, path)
            readable = True
        except Exception as error:
            if subscription_readable:
                raise
            readable = False
            log.warning(
                "cannot read the subscription's dead-letter policy: set "
                "EMAIL_WORKER_MAX_DELIVERY_ATTEMPTS to its max delivery attempts, or the "
                "requester gets no result for a request that fails transiently on its last "
                "delivery attempt",
                subscription=path,
                error=type(error).__name__,
            )
        if max_attempts is None and readable:
            log.warning(
                "the subscription has no dead-letter policy: messages that keep failing "
                "transiently are retried forever",
                subscription=path,
            )
    pauses = (
        None
        if ledger is None
        else PauseWatch(
            ledger,
            poll_s=settings.ledger.pause_poll_s,
            services=settings.services.allowed,
            metrics=metrics,
        )
    )
    handler = Handler(
        deps, outputs, max_delivery_attempts=max_attempts, metrics=metrics, pauses=pauses
    )
    return Runtime(
        settings=settings,
        handler=handler,
        publisher=publisher,
        subscriber=subscriber,
        metrics=metrics,
        ledger=ledger,
    )


def outage_breaker(settings: Settings) -> OutageBreaker | None:
    """The outage breaker ``settings`` ask for; None with EMAIL_WORKER_OUTAGE_MIN_CALLS=0."""
    if settings.outage.min_calls == 0:
        return None
    return OutageBreaker(
        window_s=settings.outage.window_s,
        min_calls=settings.outage.min_calls,
        failure_ratio=settings.outage.failure_ratio,
        probe_interval_s=settings.outage.probe_interval_s,
    )


def _log_tenancy(settings: Settings, sources: Mapping[str, Source]) -> None:
    """Say at start who the worker takes a request's service to be."""
    if settings.services.per_service:
        log.info(
            "per-service tenancy: each request's service is the topic it was published to",
            services=sorted(s.service_id for s in sources.values() if s.service_id),
            replay_subscription=next(
                path for path, s in sources.items() if s.kind is SourceKind.REPLAY
            ),
        )
    else:
        log.warning(
            "shared tenancy (EMAIL_WORKER_TENANCY=shared): the service_id in each request is "
            "trusted, so any principal that may publish to the requests topic can send as any "
            "allowed service"
        )
