"""What the worker's messages carry on Pub/Sub besides their data, and the shape of a publish.

The attribute names are part of the wire format: the worker writes them on dead letters and
the operators' tools (``email-worker dlq``) read them back, so both sides take them from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any, Protocol

__all__ = [
    "DEAD_LETTER_ATTRIBUTES",
    "DELIVERY_ATTEMPT_ATTRIBUTE",
    "ERROR_CODE_ATTRIBUTE",
    "ERROR_MESSAGE_ATTRIBUTE",
    "FAILED_AT_ATTRIBUTE",
    "ORIGINAL_MESSAGE_ID_ATTRIBUTE",
    "REPLAY_COUNT_ATTRIBUTE",
    "REQUEST_ID_ATTRIBUTE",
    "SERVICE_ID_ATTRIBUTE",
    "Publish",
]

# Added to a dead-lettered message, next to its original attributes: why and when it failed.
ERROR_CODE_ATTRIBUTE = "email_worker_error_code"
ERROR_MESSAGE_ATTRIBUTE = "email_worker_error_message"
SERVICE_ID_ATTRIBUTE = "email_worker_service_id"
REQUEST_ID_ATTRIBUTE = "email_worker_request_id"
FAILED_AT_ATTRIBUTE = "email_worker_failed_at"
ORIGINAL_MESSAGE_ID_ATTRIBUTE = "email_worker_original_message_id"
DELIVERY_ATTEMPT_ATTRIBUTE = "email_worker_delivery_attempt"

#: Attributes added to a dead-lettered message, next to its original ones.
DEAD_LETTER_ATTRIBUTES = (
    ERROR_CODE_ATTRIBUTE,
    ERROR_MESSAGE_ATTRIBUTE,
    SERVICE_ID_ATTRIBUTE,
    REQUEST_ID_ATTRIBUTE,
    FAILED_AT_ATTRIBUTE,
    ORIGINAL_MESSAGE_ID_ATTRIBUTE,
    DELIVERY_ATTEMPT_ATTRIBUTE,
)

#: Set by ``email-worker dlq replay`` on the messages it publishes again: how often replayed.
#: A replayed request that failed without sending anything is tried again.
REPLAY_COUNT_ATTRIBUTE = "email_worker_replay_count"


class Publish(Protocol):
    """Publish ``data`` with ``attributes`` to ``topic``; the future resolves once Pub/Sub has
    the message."""

    def __call__(self, topic: str, data: bytes, attributes: Mapping[str, str]) -> Future[Any]: ...
