"""Prometheus metrics of one worker process, kept in a registry the caller owns.

Nothing is registered globally: each :class:`Metrics` has its own
:class:`~prometheus_client.CollectorRegistry`, so every app (and every test) sees only its own
counts. The names are documented in ``docs/push.md``. Label values come from small closed sets
(outcome statuses, error codes, reasons, HTTP status codes, and the services admitted to
send), never from request content.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from worker.formats.pubsub import ERROR_CODE_ATTRIBUTE, Publish
from worker.processing.breaker import BreakerState, OutageBreaker
from worker.processing.delivery import DAILY_CAP_HELD, Outcome, Status, tenant_held
from worker.processing.quota_pacer import QuotaPacer
from worker.processing.service_labels import vouched_service

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

#: Seconds; SES answers in tens of milliseconds, retries with backoff take seconds.
SEND_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)
_NONE = "none"


class Metrics:
    """The worker's counters, gauges and histograms in one registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self._add_processing(self.registry)
        self._add_settlement(self.registry)
        self._add_push_and_pauses(self.registry)
        self._add_outage(self.registry)

    def _add_processing(self, r: CollectorRegistry) -> None:
        """What became of the deliveries: outcomes, durations, retries, the ledger's word."""
        self.requests = Counter(
            "email_worker_requests",
            "Deliveries processed, by outcome (sent, rejected, failed, retry) and error code.",
            ["outcome", "error_code"],
            registry=r,
        )
        self.send_duration = Histogram(
            "email_worker_send_duration_seconds",
            "Time to validate and send one request, SES retries included, by outcome.",
            ["outcome"],
            buckets=SEND_BUCKETS,
            registry=r,
        )
        self.retries = Counter(
            "email_worker_send_retries",
            "SES/STS attempts repeated after a transient failure.",
            registry=r,
        )
        self.send_rate_wait = Counter(
            "email_worker_send_rate_wait_seconds",
            "Time sends spent waiting for the worker's own send rate limit "
            "(EMAIL_WORKER_SEND_RATE_PER_S).",
            registry=r,
        )
        self._add_per_service(r)
        self.ledger_events = Counter(
            "email_worker_ledger_events",
            "What the request ledger said per delivery: claimed, replayed (stored result "
            "published again, nothing sent), takeover, conflict, busy, unavailable.",
            ["event"],
            registry=r,
        )
        self.in_flight = Gauge(
            "email_worker_in_flight",
            "Deliveries being processed right now.",
            registry=r,
        )

    def _add_per_service(self, r: CollectorRegistry) -> None:
        """Each service's sends, SES calls and throttling, and waits for the send rate."""
        self.recipients_sent = Counter(
            "email_worker_recipients_sent",
            "Recipients sent to, by service.",
            ["service_id"],
            registry=r,
        )
        self.ses_calls = Counter(
            "email_worker_ses_calls",
            "SES SendEmail calls made for a request's first batch, by service.",
            ["service_id"],
            registry=r,
        )
        self.ses_throttled = Counter(
            "email_worker_ses_throttled",
            "Of those, the calls SES answered with throttling, by service.",
            ["service_id"],
            registry=r,
        )
        self.service_send_rate_wait = Counter(
            "email_worker_service_send_rate_wait_seconds",
            "Time sends waited for their turn at the send rate, by service.",
            ["service_id"],
            registry=r,
        )

    def _observe_service(self, outcome: Outcome) -> None:
        # Without the settings, only a delivery admitted to send vouches for its service.
        service = vouched_service(outcome)
        if service is None:
            return
        if outcome.status is Status.SENT:
            self.recipients_sent.labels(service).inc(outcome.recipient_count)
        if outcome.ses_calls:
            self.ses_calls.labels(service).inc(outcome.ses_calls)
        if outcome.ses_throttled:
            self.ses_throttled.labels(service).inc(outcome.ses_throttled)
        if outcome.send_rate_wait_s:
            self.service_send_rate_wait.labels(service).inc(outcome.send_rate_wait_s)

    def _add_settlement(self, r: CollectorRegistry) -> None:
        """How deliveries were settled, and what was published for them."""
        self.settled = Counter(
            "email_worker_deliveries_settled",
            "Deliveries acknowledged (ack), handed back to Pub/Sub for redelivery (nack) or "
            "kept leased through an outage (hold).",
            ["action"],
            registry=r,
        )
        self.results_published = Counter(
            "email_worker_results_published",
            "Results confirmed published to the results topic, by result status.",
            ["status"],
            registry=r,
        )
        self.dead_letters = Counter(
            "email_worker_dead_letters_forwarded",
            "Requests confirmed forwarded to the dead-letter topic, by error code.",
            ["error_code"],
            registry=r,
        )
        self.publish_failures = Counter(
            "email_worker_publish_failures",
            "Result or dead-letter publishes that failed (the delivery is nacked).",
            ["topic"],
            registry=r,
        )

    def _add_push_and_pauses(self, r: CollectorRegistry) -> None:
        """The push endpoint's answers, and the operators' pauses."""
        self.paused_services = Gauge(
            "email_worker_paused_services",
            "Services of this worker whose sending is paused (email-worker pause; all of "
            "them under pause --all), as last read from the ledger.",
            registry=r,
        )
        self.push_responses = Counter(
            "email_worker_push_responses",
            "Answers of POST /pubsub/push, by HTTP status code.",
            ["code"],
            registry=r,
        )
        self.push_auth_failures = Counter(
            "email_worker_push_auth_failures",
            "Push requests refused by token verification, by reason.",
            ["reason"],
            registry=r,
        )

    def _add_outage(self, r: CollectorRegistry) -> None:
        """The outage breaker's state and the work it held."""
        self.outage_holding = Gauge(
            "email_worker_outage_holding",
            "1 while the outage breaker holds new work back (SES, STS or the ledger failing "
            "for every service), else 0.",
            registry=r,
        )
        self.outage_trips = Counter(
            "email_worker_outage_trips",
            "Times the outage breaker started holding.",
            registry=r,
        )
        self.quota_held = Counter(
            "email_worker_quota_held",
            "Deliveries held in Pub/Sub because SES's 24-hour sending quota was used up.",
            registry=r,
        )
        self.quota_rate = Gauge(
            "email_worker_send_rate_share_per_second",
            "This instance's send rate: its share of SES's maximum send rate after AIMD, "
            "or EMAIL_WORKER_SEND_RATE_PER_S if lower (recipients per second).",
            registry=r,
        )
        self.quota_instances = Gauge(
            "email_worker_live_instances",
            "The live worker instances sharing this instance's SES account, by heartbeats.",
            registry=r,
        )
        self.outage_held = Counter(
            "email_worker_outage_held",
            "Deliveries held back by the outage breaker: not_started (refused before "
            "processing) or after_failure (a transient failure while it held).",
            ["stage"],
            registry=r,
        )
        self.waiting_turn = Counter(
            "email_worker_waiting_turn",
            "Deliveries held, not started, by reason: share (their service held its share of "
            "the send-rate limiter's threads) or daily_cap (its max_per_day was reached).",
            ["reason"],
            registry=r,
        )

    def watch_quota(self, pacer: QuotaPacer) -> None:
        """Report ``pacer``'s share of the SES quota and the live instances it counts."""
        self.quota_rate.set_function(lambda: pacer.rate_per_s or 0.0)
        self.quota_instances.set_function(lambda: pacer.instances)

    def watch_breaker(self, breaker: OutageBreaker) -> None:
        """Keep the outage gauge and trip counter up to date with ``breaker``."""

        def changed(old: BreakerState, new: BreakerState) -> None:
            self.outage_holding.set(0 if new is BreakerState.CLOSED else 1)
            if old is BreakerState.CLOSED:
                self.outage_trips.inc()

        breaker.add_listener(changed)

    def observe(
        self, outcome: Outcome, *, acked: bool, duration_s: float, held: bool = False
    ) -> None:
        """Record one processed delivery."""
        status = outcome.status.value
        self.requests.labels(status, outcome.error_code or _NONE).inc()
        self.send_duration.labels(status).observe(duration_s)
        if outcome.retries:
            self.retries.inc(outcome.retries)
        if outcome.send_rate_wait_s:
            self.send_rate_wait.inc(outcome.send_rate_wait_s)
        self._observe_service(outcome)
        self.settled.labels("ack" if acked else "hold" if held else "nack").inc()
        if outcome.status is Status.HELD and outcome.error_message == DAILY_CAP_HELD:
            self.quota_held.inc()
        elif outcome.held_for is not None:
            self.waiting_turn.labels(outcome.held_for).inc()
        elif outcome.status is Status.HELD and not tenant_held(outcome):
            self.outage_held.labels("after_failure").inc()
        if outcome.ledger is not None:
            self.ledger_events.labels(outcome.ledger.value).inc()

    def counting(self, publish: Publish, *, results_topic: str, dead_letter_topic: str) -> Publish:
        """``publish``, counting results and dead letters once Pub/Sub confirms them."""

        def counted(topic: str, data: bytes, attributes: Mapping[str, str]) -> Future[Any]:
            future = publish(topic, data, attributes)
            kind = (
                "results"
                if topic == results_topic
                else "dead_letter"
                if topic == dead_letter_topic
                else None
            )
            if kind is None:
                return future

            def done(finished: Future[Any]) -> None:
                if finished.cancelled() or finished.exception() is not None:
                    self.publish_failures.labels(kind).inc()
                elif kind == "results":
                    self.results_published.labels(attributes.get("status", _NONE)).inc()
                else:
                    code = attributes.get(ERROR_CODE_ATTRIBUTE) or _NONE
                    self.dead_letters.labels(code).inc()

            future.add_done_callback(done)
            return future

        return counted

    def exposition(self) -> bytes:
        """Everything in the registry, in Prometheus' text format."""
        return generate_latest(self.registry)
