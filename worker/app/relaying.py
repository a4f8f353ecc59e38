"""``email-worker events``: the SES events reader, wired to the settings and Pub/Sub.

The reader runs as the command's main loop under :func:`~worker.app.lifecycle.run_until_signalled`.
On a stop signal it finishes the batch in hand (its publishes confirmed and its SQS messages
deleted) within EMAIL_WORKER_SHUTDOWN_TIMEOUT_S, flushes the publisher and exits 0. Long
polls are kept shorter than that timeout, so a stop rarely has to leave a poll behind; when
it does, the messages that poll brings return to the queue after their visibility timeout.

Unless EMAIL_WORKER_REPUTATION_MIN_SENDS is 0, the reader counts each service's sends, hard
bounces and complaints (:mod:`worker.events.reputation`) and pauses a service whose rates are
too high, as ``email-worker pause`` would (:func:`worker.ops.pausing.pause`), by
``reputation-breaker``. With shared tenancy one subscription carries every service's requests,
so the breaker can only pause them all.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

from worker.app.clients import Clients, open_clients
from worker.app.http_server import health_server
from worker.app.lifecycle import EXIT_FAILURE, EXIT_OK, opened_or_logged, run_until_signalled
from worker.config.logs import get_logger
from worker.config.settings import Settings
from worker.events import EventsMetrics, EventsReader, sqs_client
from worker.events.reader import MAX_WAIT_TIME_S
from worker.events.reputation import BREAKER_AUTHOR, ReputationBreaker, Thresholds
from worker.ledger import ALL_SERVICES, Ledger
from worker.ledger.service_counter import ServiceCounter
from worker.ops.pausing import pause
from worker.processing.metrics import Metrics

__all__ = ["events_settings_problems", "reputation_breaker", "run_events"]

log = get_logger()

_ROLE_ARN_RE = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+")


def events_settings_problems(settings: Settings) -> list[str]:
    """What ``email-worker events`` needs that ``settings`` lack, as problems."""
    problems = []
    if not settings.topics.project_id:
        problems.append("GOOGLE_CLOUD_PROJECT must name the Google Cloud project")
    queue_url = settings.events.queue_url
    if not queue_url:
        problems.append("EMAIL_WORKER_SES_EVENTS_QUEUE_URL must be set to the SES events queue")
    elif urllib.parse.urlsplit(queue_url).scheme not in ("https", "http"):
        problems.append("EMAIL_WORKER_SES_EVENTS_QUEUE_URL must be an SQS queue URL")
    role_arn = settings.events.role_arn
    if not role_arn:
        problems.append("EMAIL_WORKER_SES_EVENTS_ROLE_ARN must be set to the reader's AWS role")
    elif not _ROLE_ARN_RE.fullmatch(role_arn):
        problems.append("EMAIL_WORKER_SES_EVENTS_ROLE_ARN must be an AWS IAM role ARN")
    return problems


def long_poll_s(settings: Settings) -> int:
    """The long poll's wait: SQS's 20 s, or less so that a stop finishes inside the shutdown
    timeout (2 s are left for the batch's publishes and deletes)."""
    return max(1, min(MAX_WAIT_TIME_S, int(settings.process.shutdown_timeout_s) - 2))


def run_events(settings: Settings) -> int:
    """Read SES events and publish them until SIGTERM or SIGINT; return the exit code.

    The caller has checked the settings (:func:`events_settings_problems`).
    """
    queue_url, role_arn = settings.events.queue_url, settings.events.role_arn
    if queue_url is None or role_arn is None:
        raise ValueError("the events reader needs its queue and role (checked at start)")
    # The worker's own ledger: the recipients' statuses go next to each request's record.
    # A subscriber for the reputation breaker's pauses, which switch push subscriptions to pull.
    breaker_on = settings.events.reputation_min_sends > 0
    clients = opened_or_logged(
        lambda: open_clients(settings, subscriber=breaker_on, sessions=False)
    )
    if clients is None:
        return EXIT_FAILURE
    topic = clients.topic_path(settings.topics.events_topic)
    # One registry for /metrics: the HTTP app's own counters and the reader's.
    metrics = Metrics()
    counts = None if clients.ledger is None else ServiceCounter(clients.ledger)
    reader = EventsReader(
        sqs_client(role_arn=role_arn, queue_url=queue_url),
        queue_url=queue_url,
        topic=topic,
        publish=clients.publish,
        metrics=EventsMetrics(metrics.registry),
        ledger=clients.ledger,
        publish_timeout_s=settings.process.publish_timeout_s,
        wait_time_s=long_poll_s(settings),
        reputation=reputation_breaker(settings, clients) if breaker_on else None,
        outcome_counts=counts,
    )
    http = health_server(settings, metrics, ready=lambda: not reader.stopping)
    log.info("reading SES events", queue=queue_url, topic=topic, long_poll_s=long_poll_s(settings))
    return run_until_signalled(
        _ReaderLoop(reader, counts),
        clients,
        shutdown_timeout_s=settings.process.shutdown_timeout_s,
        http=http,
    )


def reputation_breaker(settings: Settings, clients: Clients) -> ReputationBreaker | None:
    """The reputation breaker of EMAIL_WORKER_REPUTATION_*, pausing through the request
    ledger; None (logged) without a ledger, where no pause could be recorded."""
    if clients.ledger is None:
        log.warning(
            "reputation breaker off: it pauses services through the request ledger, and "
            "EMAIL_WORKER_LEDGER names none"
        )
        return None
    events = settings.events
    thresholds = Thresholds(
        window_s=events.reputation_window_s,
        min_sends=events.reputation_min_sends,
        bounce_percent=events.reputation_bounce_percent,
        complaint_percent=events.reputation_complaint_percent,
    )
    return ReputationBreaker(thresholds, _pauser(settings, clients.ledger, clients.subscriber))


def _pauser(settings: Settings, ledger: Ledger, subscriber: Any) -> Any:
    """``pause(service_id, reason)`` as ``email-worker pause`` does it, by the breaker."""

    def pause_service(service_id: str, reason: str) -> None:
        scope = service_id if settings.services.per_service else ALL_SERVICES
        pause(
            ledger,
            subscriber,
            settings,
            scope=scope,
            by=BREAKER_AUTHOR,
            reason=reason,
            timeout_s=min(10.0, settings.process.publish_timeout_s),
        )

    return pause_service


class _ReaderLoop:
    """The events reader as the command's main loop: it never ends by itself unless
    something is badly wrong. One still running at the shutdown timeout is in a long poll
    or a publish; that poll's SQS messages return after their visibility timeout."""

    abandoned = 0

    def __init__(self, reader: EventsReader, counts: ServiceCounter | None = None) -> None:
        self._reader = reader
        self._counts = counts

    def stop(self) -> None:
        self._reader.stop()

    def run(self) -> int:
        self._reader.run()
        if self._counts is not None:
            self._counts.close()  # what the last batches counted, before the ledger closes
        return EXIT_OK if self._reader.stopping else EXIT_FAILURE
