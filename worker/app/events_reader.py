"""``email-worker events``: the SES events reader, wired to the settings and Pub/Sub.

The reader runs in a daemon thread while the main thread waits for SIGTERM or SIGINT. On a
stop signal it finishes the batch in hand (its publishes confirmed and its SQS messages
deleted) within EMAIL_WORKER_SHUTDOWN_TIMEOUT_S, flushes the publisher and exits 0. Long
polls are kept shorter than that timeout, so a stop rarely has to leave a poll behind; when
it does, the messages that poll brings return to the queue after their visibility timeout.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
import urllib.parse
from concurrent.futures import Future
from types import FrameType
from typing import Any

from worker.client.pubsub_rpc import new_publisher
from worker.config.logs import get_logger
from worker.config.settings import Settings
from worker.events import EventsMetrics, EventsReader, sqs_client
from worker.events.reader import MAX_WAIT_TIME_S
from worker.ledger import open_ledger
from worker.processing.metrics import Metrics

__all__ = ["events_settings_problems", "run_events"]

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
    """Read SES events and publish them until SIGTERM or SIGINT; return the exit code."""
    problems = events_settings_problems(settings)
    if problems:
        print("email-worker: invalid settings:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2
    queue_url, role_arn = settings.events.queue_url, settings.events.role_arn
    assert queue_url is not None  # checked above
    assert role_arn is not None
    project = settings.require_project()

    publisher = new_publisher(settings.process.publish_timeout_s)
    topic = publisher.topic_path(project, settings.topics.events_topic)

    def publish(topic: str, data: bytes, attributes: Any) -> Future[Any]:
        future: Future[Any] = publisher.publish(topic, data, **attributes)
        return future

    # The worker's own ledger: the recipients' statuses go next to each request's record.
    ledger = open_ledger(
        settings.ledger.url,
        project=project,
        claim_lease_s=settings.ledger.claim_s,
        retention_s=settings.ledger.retention_s,
        takeover_wait_s=settings.ledger.send_event_wait_s,
    )
    # One registry for /metrics: the HTTP app's own counters and the reader's.
    metrics = Metrics()
    reader = EventsReader(
        sqs_client(role_arn=role_arn, queue_url=queue_url),
        queue_url=queue_url,
        topic=topic,
        publish=publish,
        metrics=EventsMetrics(metrics.registry),
        ledger=ledger,
        publish_timeout_s=settings.process.publish_timeout_s,
        wait_time_s=long_poll_s(settings),
    )
    stop_requested = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal received", signal=signal.Signals(signum).name)
        reader.stop()
        stop_requested.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    http = None
    if settings.http.port is not None:
        from worker.app.serving import BackgroundServer
        from worker.transports.http_app import create_app

        app = create_app(metrics=metrics, ready=lambda: not reader.stopping)
        try:
            http = BackgroundServer(
                app,
                host=settings.http.host,
                port=settings.http.port,
                shutdown_timeout_s=min(settings.process.shutdown_timeout_s, 2.0),
            ).start()
        except RuntimeError as error:
            log.error("cannot start", error=type(error).__name__, detail=str(error))
            publisher.stop()
            if ledger is not None:
                ledger.close()
            return 1

    thread = threading.Thread(target=reader.run, name="events-reader", daemon=True)
    log.info(
        "reading SES events",
        queue=queue_url,
        topic=topic,
        long_poll_s=long_poll_s(settings),
    )
    thread.start()
    while thread.is_alive() and not stop_requested.wait(1.0):
        pass
    # The reader's loop never ends on its own: if it did, something is badly wrong.
    code = 0 if stop_requested.is_set() else 1
    reader.stop()
    thread.join(timeout=settings.process.shutdown_timeout_s)
    left_behind = thread.is_alive()
    if left_behind:
        log.warning(
            "shutdown timeout: a long poll or publish was still running; its SQS messages "
            "return after their visibility timeout"
        )
    publisher.stop()
    if ledger is not None and not left_behind:
        ledger.close()
    if http is not None:
        http.stop()
    log.info("stopped", exit_code=code)
    if left_behind:
        # The reader's thread may sit in a socket read for a while yet: leave now.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
