"""The SQS side of the events reader: one long-polled receive of a batch, one batch delete.

A receive that fails is logged, counted and raised as :class:`SqsFailure` (the reader backs
off and tries again); messages a delete misses are logged and counted only: they come back
after their visibility timeout and are published again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from worker.config.logs import get_logger
from worker.events.event_metrics import EventsMetrics

__all__ = [
    "MAX_MESSAGES_PER_RECEIVE",
    "MAX_WAIT_TIME_S",
    "Received",
    "SqsFailure",
    "delete_batch",
    "receive_batch",
]

log = get_logger()

#: SQS's most messages per receive.
MAX_MESSAGES_PER_RECEIVE = 10
#: SQS's longest long poll.
MAX_WAIT_TIME_S = 20


@dataclass(frozen=True)
class Received:
    """One SQS message. The repr leaves out the body and the receipt handle."""

    sqs_message_id: str
    receipt_handle: str = field(repr=False)
    body: str = field(repr=False)
    receive_count: int | None = None

    @classmethod
    def of(cls, message: dict[str, Any]) -> Received:
        count = message.get("Attributes", {}).get("ApproximateReceiveCount")
        return cls(
            sqs_message_id=str(message.get("MessageId", "")),
            receipt_handle=str(message["ReceiptHandle"]),
            body=message.get("Body") or "",
            receive_count=int(count) if count and str(count).isdigit() else None,
        )


class SqsFailure(Exception):
    """A receive from SQS failed (already logged and counted). The reader tries again after
    a backoff: SQS, STS or the network may be back by then."""


def receive_batch(
    sqs: Any, queue_url: str, *, wait_time_s: int, metrics: EventsMetrics
) -> list[Received]:
    """Up to ten messages, waiting up to ``wait_time_s`` for them; :class:`SqsFailure`
    (logged and counted) when the receive failed."""
    try:
        response = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=MAX_MESSAGES_PER_RECEIVE,
            WaitTimeSeconds=wait_time_s,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
    except Exception as error:
        metrics.sqs_failures.labels("receive").inc()
        log.warning(
            "cannot receive SES events from SQS",
            error=type(error).__name__,
            detail=str(error)[:300],
        )
        raise SqsFailure from error
    return [Received.of(message) for message in response.get("Messages", [])]


def delete_batch(
    sqs: Any, queue_url: str, messages: Sequence[Received], *, metrics: EventsMetrics
) -> None:
    """Delete ``messages``; the ones SQS does not delete are logged and counted."""
    if not messages:
        return
    entries = [
        {"Id": str(index), "ReceiptHandle": message.receipt_handle}
        for index, message in enumerate(messages)
    ]
    try:
        response = sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)
    except Exception as error:
        failed = len(entries)
        detail = f"{type(error).__name__}: {str(error)[:300]}"
    else:
        failed = len(response.get("Failed", []))
        detail = ", ".join(sorted({str(f.get("Code")) for f in response.get("Failed", [])}))
    if failed:
        # Those messages come back after their visibility timeout and are published again.
        metrics.sqs_failures.labels("delete").inc(failed)
        log.warning("could not delete SQS messages", count=failed, detail=detail)
