"""Prometheus counters of the events reader, in a registry the caller owns.

Label values come from closed sets (event types, drop and malformation reasons), never from
event content. The names are documented in ``docs/formats.md`` (Events).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

__all__ = ["EventsMetrics"]


class EventsMetrics:
    """What the events reader did with the SQS messages it received."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.published = Counter(
            "email_worker_events_published",
            "SES events confirmed published to the events topic (their SQS message then "
            "deleted), by event type.",
            ["event_type"],
            registry=r,
        )
        self.dropped = Counter(
            "email_worker_events_dropped",
            "SES events deleted without publishing, by reason: untagged (a send the worker "
            "did not make), unknown_tags (worker tags naming no request), unsupported_type.",
            ["reason"],
            registry=r,
        )
        self.malformed = Counter(
            "email_worker_events_malformed",
            "SQS messages that are not SES events, left on the queue for its dead-letter "
            "queue, by reason.",
            ["reason"],
            registry=r,
        )
        self.publish_failures = Counter(
            "email_worker_events_publish_failures",
            "Event publishes that failed or timed out; the SQS message is left to be "
            "received again.",
            registry=r,
        )
        self.sqs_failures = Counter(
            "email_worker_events_sqs_failures",
            "SQS (or STS) calls that failed, by call: receive or delete.",
            ["call"],
            registry=r,
        )
        self.reputation_pauses = Counter(
            "email_worker_events_reputation_pauses",
            "Services the reputation breaker paused (bounce or complaint rate over its "
            "threshold), by service.",
            ["service_id"],
            registry=r,
        )
        self.ledger_failures = Counter(
            "email_worker_events_ledger_failures",
            "Events whose recipients' statuses could not be recorded in the request ledger; "
            "the SQS message is left to be received again.",
            registry=r,
        )
