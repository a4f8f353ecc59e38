"""The events reader's loop: long-poll SQS, publish each SES event, delete what is done.

For every SQS message, in each batch of up to ten:

* an SES event of a request the worker sent is published as event v1 to the events topic,
  and the message is deleted once Pub/Sub has confirmed the publish; a publish that fails or
  times out leaves the message, which SQS delivers again after its visibility timeout;
* a well-formed event that is not one of the worker's sends (no worker tags, or worker tags
  that name no request) or of a type the format does not carry is counted and deleted;
* anything else (not JSON, not an SES event record) is counted and left alone: after the
  queue's receive limit its redrive policy moves it to the dead-letter queue.

SQS delivers at least once, so an event may be published more than once; event consumers
treat a repeated event as harmless. With a request ledger, each event's recipients' statuses
are recorded there too (before the delete; a ledger failure leaves the message for SQS to
deliver again), where they only ever move forward. With a
:class:`~worker.events.reputation.ReputationBreaker`, each published event is counted for its
service, and after each batch the breaker pauses a service whose bounce or complaint rate is
over its threshold. Nothing a message contains stops the loop,
and failing SQS or STS calls are retried with backoff until :meth:`EventsReader.stop`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from worker.config.logs import get_logger
from worker.events.event_metrics import EventsMetrics
from worker.events.event_records import Dropped, MalformedEvent, read_event
from worker.events.recipient_statuses import statuses_of
from worker.events.reputation import ReputationBreaker
from worker.events.sqs_batches import (
    MAX_WAIT_TIME_S,
    Received,
    SqsFailure,
    delete_batch,
    receive_batch,
)
from worker.formats.event import EmailEvent, EventType
from worker.formats.pubsub import Publish
from worker.ledger import Ledger, LedgerKey, LedgerUnavailable
from worker.ledger.service_counter import ServiceCounter

__all__ = ["MAX_WAIT_TIME_S", "EventsReader", "statuses_of"]

log = get_logger()

# Waits after a failed SQS call: doubling from the first to the cap.
_FIRST_BACKOFF_S = 1.0
_MAX_BACKOFF_S = 30.0


class EventsReader:
    """Reads SES events from an SQS queue and publishes them until :meth:`stop` is called.

    Args:
        sqs: A boto3/botocore SQS client (see :func:`worker.events.sqs.sqs_client`).
        queue_url: The queue EventBridge delivers SES events to.
        topic: Full path of the events topic.
        publish: Publishes one message; its future resolves once Pub/Sub has it.
        publish_timeout_s: How long a batch's publishes may take before the messages whose
            publish is unconfirmed are left for SQS to deliver again.
        wait_time_s: The long poll's wait (at most 20 s).
        sleep: How backoff waits pass (tests replace it); by default they end at :meth:`stop`.
        reputation: Counts the published events per service and pauses a service whose
            bounce or complaint rate is too high; None: no reputation breaker.
        outcome_counts: Counts each service's hard-bounced and complaining recipients for
            the console's services page (flushed to the ledger every few seconds).
    """

    def __init__(
        self,
        sqs: Any,
        *,
        queue_url: str,
        topic: str,
        publish: Publish,
        metrics: EventsMetrics | None = None,
        ledger: Ledger | None = None,
        publish_timeout_s: float = 30.0,
        wait_time_s: int = MAX_WAIT_TIME_S,
        sleep: Callable[[float], object] | None = None,
        reputation: ReputationBreaker | None = None,
        outcome_counts: ServiceCounter | None = None,
    ) -> None:
        if not 0 <= wait_time_s <= MAX_WAIT_TIME_S:
            raise ValueError(f"wait_time_s must be 0-{MAX_WAIT_TIME_S}")
        self._sqs = sqs
        self._queue_url = queue_url
        self._topic = topic
        self._publish = publish
        self.metrics = metrics if metrics is not None else EventsMetrics()
        self._ledger = ledger
        self._publish_timeout_s = publish_timeout_s
        self._wait_time_s = wait_time_s
        self._stopping = threading.Event()
        self._sleep = sleep if sleep is not None else self._stopping.wait
        self._reputation = reputation
        self._outcome_counts = outcome_counts

    def __repr__(self) -> str:
        return f"EventsReader(topic={self._topic!r})"

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def stop(self) -> None:
        """Finish the batch in hand and return from :meth:`run` (a long poll in progress
        is not cut short; what it brings is handled first)."""
        self._stopping.set()

    def run(self) -> None:
        """Poll until :meth:`stop`; never raises for what a message holds or SQS says."""
        backoff_s = 0.0
        while not self._stopping.is_set():
            try:
                self.poll_once()
            except Exception as error:
                if not isinstance(error, SqsFailure):  # a bug: logged, and the loop goes on
                    log.error("unexpected failure in the events reader", error=type(error).__name__)
                backoff_s = min(_MAX_BACKOFF_S, max(_FIRST_BACKOFF_S, backoff_s * 2))
                self._sleep(backoff_s)
            else:
                backoff_s = 0.0

    def poll_once(self) -> int:
        """Receive one batch (waiting up to ``wait_time_s``) and handle it; return its size.

        Raises ``SqsFailure`` (logged and counted) when the receive itself failed.
        """
        messages = receive_batch(
            self._sqs, self._queue_url, wait_time_s=self._wait_time_s, metrics=self.metrics
        )
        done: list[Received] = []
        pending: list[tuple[Received, EmailEvent, Future[Any]]] = []
        for message in messages:
            handled = self._read(message)
            if isinstance(handled, Dropped):
                done.append(message)
            elif handled is not None:
                future = self._start_publish(message, handled)
                if future is not None:
                    pending.append((message, handled, future))
        done.extend(self._confirmed(pending))
        delete_batch(self._sqs, self._queue_url, done, metrics=self.metrics)
        if self._reputation is not None:
            for service_id in self._reputation.check():
                self.metrics.reputation_pauses.labels(service_id).inc()
        return len(messages)

    def _read(self, message: Received) -> EmailEvent | Dropped | None:
        """The message's event, or why it is dropped; None (logged, counted) if malformed."""
        try:
            read = read_event(message.body)
        except MalformedEvent as error:
            reason = error.reason
        except Exception as error:  # a bug must not stop the reader; the DLQ keeps the message
            reason = "unreadable"
            log.error("failed to read an SQS message", error=type(error).__name__)
        else:
            if isinstance(read, Dropped):
                self.metrics.dropped.labels(read.reason).inc()
                log.info(
                    "SES event dropped",
                    outcome="dropped",
                    reason=read.reason,
                    ses_event_type=read.ses_event_type,
                    ses_message_id=read.message_id,
                    sqs_message_id=message.sqs_message_id,
                )
            return read
        self.metrics.malformed.labels(reason).inc()
        # The body is not logged: it may hold addresses. The dead-letter queue keeps it.
        log.warning(
            "malformed SQS message left for the dead-letter queue",
            outcome="malformed",
            reason=reason,
            sqs_message_id=message.sqs_message_id,
            receive_count=message.receive_count,
        )
        return None

    def _start_publish(self, message: Received, event: EmailEvent) -> Future[Any] | None:
        try:
            return self._publish(self._topic, event.to_json_bytes(), event.pubsub_attributes())
        except Exception as error:
            self._publish_failed(message, event, error)
            return None

    def _confirmed(
        self, pending: Sequence[tuple[Received, EmailEvent, Future[Any]]]
    ) -> list[Received]:
        """The messages whose publish Pub/Sub confirmed within the publish timeout."""
        deadline = time.monotonic() + self._publish_timeout_s
        confirmed: list[Received] = []
        for message, event, future in pending:
            try:
                future.result(timeout=max(0.0, deadline - time.monotonic()))
            except Exception as error:
                self._publish_failed(message, event, error)
                continue
            if not self._recorded(message, event):
                continue
            confirmed.append(message)
            if self._reputation is not None:
                self._reputation.count(event)
            self._count(event)
            self.metrics.published.labels(event.event_type.value).inc()
            log.info(
                "SES event published",
                outcome="published",
                event_type=event.event_type.value,
                request_id=event.request_id,
                service_id=event.service_id,
                ses_message_id=event.message_id,
                batch=event.batch,
                recipient_count=len(event.recipients),
                sqs_message_id=message.sqs_message_id,
            )
        return confirmed

    def _count(self, event: EmailEvent) -> None:
        """Count a hard bounce or a complaint for its service (in memory)."""
        counts = self._outcome_counts
        if counts is None:
            return
        if event.event_type is EventType.BOUNCE and event.bounce_type == "Permanent":
            counts.add(event.service_id, "bounced", len(event.recipients))
        elif event.event_type is EventType.COMPLAINT:
            counts.add(event.service_id, "complained", len(event.recipients))

    def _recorded(self, message: Received, event: EmailEvent) -> bool:
        """Keep the recipients' statuses in the request ledger (``email-worker status`` reads
        them); False when the ledger failed, so that SQS delivers the event again."""
        if self._ledger is None:
            return True
        try:
            self._ledger.record_statuses(
                LedgerKey(event.service_id, event.request_id), statuses_of(event)
            )
        except LedgerUnavailable as error:
            self.metrics.ledger_failures.inc()
            log.warning(
                "could not record an SES event in the request ledger; SQS delivers it again",
                outcome="ledger_failed",
                error=str(error)[:300],
                request_id=event.request_id,
                service_id=event.service_id,
                sqs_message_id=message.sqs_message_id,
            )
            return False
        return True

    def _publish_failed(self, message: Received, event: EmailEvent, error: BaseException) -> None:
        self.metrics.publish_failures.inc()
        log.warning(
            "could not publish an SES event; SQS delivers it again",
            outcome="publish_failed",
            error=type(error).__name__,
            event_type=event.event_type.value,
            request_id=event.request_id,
            service_id=event.service_id,
            sqs_message_id=message.sqs_message_id,
        )
