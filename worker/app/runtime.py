"""Wiring: build the handler on the command's clients from settings, once, at the entry point."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from worker.app.clients import Clients, open_clients
from worker.config.logs import get_logger
from worker.config.settings import Settings
from worker.ledger import Ledger, MemoryLedger
from worker.ledger.service_counter import ServiceCounter
from worker.ops.topology import read_max_delivery_attempts
from worker.processing.breaker import OutageBreaker
from worker.processing.daily_cap import DailyCounts
from worker.processing.handling import Handler
from worker.processing.metrics import Metrics
from worker.processing.outputs import Outputs
from worker.processing.pause_watch import PauseWatch
from worker.processing.pipeline import Deps
from worker.processing.quota_pacer import (
    UNLIMITED_PER_S,
    PacerTerms,
    QuotaPacer,
)
from worker.processing.quota_sources import instance_id, session_sources
from worker.processing.schedule_dispatch import ScheduleDispatcher
from worker.processing.send_rate import SendRateLimiter
from worker.processing.tenancy import Source, SourceKind, subscription_sources
from worker.sending.session_cache import SessionCache

__all__ = ["Runtime", "build_runtime"]

log = get_logger()


@dataclass
class Runtime:
    settings: Settings
    handler: Handler
    clients: Clients
    metrics: Metrics

    @property
    def publisher(self) -> Any:
        return self.clients.publisher

    @property
    def subscriber(self) -> Any:
        return self.clients.subscriber

    @property
    def ledger(self) -> Ledger | None:
        return self.clients.ledger

    def close(self, *, ledger: bool = True) -> None:
        """Stop the quota pacer (its heartbeats removed), flush the send and outcome counts
        and the pending publishes, and close the clients and (unless ``ledger`` is False:
        threads left running may still use it) the ledger."""
        quota = self.handler.deps.quota
        if quota is not None:
            quota.stop()
        counts = self.handler.deps.daily_counts
        if counts is not None:
            counts.close()
        if self.handler.outcome_counts is not None:
            self.handler.outcome_counts.close()
        self.clients.close(ledger=ledger)

    def start_schedule_dispatch(self) -> None:
        """Send the scheduled requests as they fall due, in a thread, until the handler's
        ``stopping`` is set; nothing without a ledger (nothing can be scheduled then)."""
        if self.ledger is not None:
            ScheduleDispatcher(self.handler, self.ledger, self.settings).start()


def build_runtime(
    settings: Settings,
    *,
    clients: Clients | None = None,
    metrics: Metrics | None = None,
    subscription_readable: bool = True,
) -> Runtime:
    """Build the handler for ``settings`` on ``clients`` (opened here when not given, and
    closed again if the handler cannot be built).

    Without EMAIL_WORKER_MAX_DELIVERY_ATTEMPTS the last delivery attempt is read from the
    subscription's dead-letter policy. A push endpoint may lack the permission to read its
    subscription: with ``subscription_readable=False`` a failure to read it is a warning.
    """
    opened = clients is None
    clients = open_clients(settings) if clients is None else clients
    try:
        return _build(settings, clients, metrics or Metrics(), subscription_readable)
    except BaseException:
        if opened:
            clients.close()
        raise


def _build(
    settings: Settings, clients: Clients, metrics: Metrics, subscription_readable: bool
) -> Runtime:
    if clients.sessions is None or clients.subscriber is None:
        raise ValueError("the handler needs clients opened with a subscriber and sessions")
    places = settings.process.concurrency
    send_rate = (
        SendRateLimiter(settings.sending.rate_per_s, places=places)
        if settings.sending.rate_per_s
        else None
    )
    quota = None
    if settings.quota.pacing:
        send_rate = send_rate or SendRateLimiter(UNLIMITED_PER_S, places=places)
        quota = quota_pacer(settings, send_rate, clients.sessions, clients.ledger)
    deps = Deps(
        settings=settings,
        sessions=clients.sessions,
        send_rate=send_rate,
        quota=quota,
        ledger=clients.ledger,
        breaker=outage_breaker(settings),
        # Without a ledger each instance counts its own sends for the services' max_per_day.
        daily_counts=DailyCounts(clients.ledger or MemoryLedger(claim_lease_s=60.0)),
    )
    results_topic = clients.topic_path(settings.topics.results_topic)
    dead_letter_topic = clients.topic_path(settings.topics.dead_letter_topic)
    outputs = Outputs(
        metrics.counting(
            clients.publish, results_topic=results_topic, dead_letter_topic=dead_letter_topic
        ),
        results_topic=results_topic,
        dead_letter_topic=dead_letter_topic,
        timeout_s=settings.process.publish_timeout_s,
    )
    sources = subscription_sources(settings)
    _log_tenancy(settings, sources)
    max_attempts = _max_delivery_attempts(settings, clients, sources, subscription_readable)
    pauses = (
        None
        if clients.ledger is None
        else PauseWatch(
            clients.ledger,
            poll_s=settings.ledger.pause_poll_s,
            services=settings.services.allowed,
            metrics=metrics,
        )
    )
    handler = Handler(
        deps,
        outputs,
        max_delivery_attempts=max_attempts,
        metrics=metrics,
        pauses=pauses,
        outcome_counts=None if clients.ledger is None else ServiceCounter(clients.ledger),
    )
    if quota is not None:
        quota.start()
    return Runtime(settings=settings, handler=handler, clients=clients, metrics=metrics)


def _max_delivery_attempts(
    settings: Settings,
    clients: Clients,
    sources: Mapping[str, Source],
    subscription_readable: bool,
) -> int | None:
    """The last delivery attempt: the setting, else the subscriptions' dead-letter policy."""
    max_attempts = settings.redelivery.max_delivery_attempts
    if max_attempts is not None:
        return max_attempts
    # Every subscription the worker reads has the same dead-letter policy (terraform/).
    path = next(iter(sources))
    try:
        max_attempts = read_max_delivery_attempts(clients.subscriber, path)
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
    return max_attempts


def quota_pacer(
    settings: Settings, limiter: SendRateLimiter, sessions: SessionCache, ledger: Ledger | None
) -> QuotaPacer:
    """The pacer that keeps ``limiter`` at this instance's share of SES's quota."""
    return QuotaPacer(
        limiter,
        session_sources(settings.services.allowed, sessions),
        ledger=ledger,
        instance=instance_id(),
        terms=PacerTerms(
            fraction=settings.quota.fraction,
            upper_bound_per_s=settings.sending.rate_per_s,
            refresh_s=settings.quota.refresh_s,
            heartbeat_s=settings.quota.heartbeat_s,
        ),
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
