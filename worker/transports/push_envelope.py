"""The envelope Pub/Sub wraps each pushed message in, decoded into a delivery.

Pub/Sub sends::

    {"message": {"data": "<base64>", "attributes": {...}, "messageId": "..."},
     "subscription": "projects/P/subscriptions/S", "deliveryAttempt": 3}

:func:`parse_envelope` accepts exactly what Pub/Sub would send and refuses the rest with an
:class:`EnvelopeError` whose message is safe to answer with (the push endpoint's 400).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from worker.formats.json_depth import nested_too_deep
from worker.processing.pipeline import Delivery

__all__ = ["EnvelopeError", "PushEnvelope", "parse_envelope"]

_MAX_MESSAGE_ID_LENGTH = 256


class EnvelopeError(ValueError):
    """The body is not a push envelope Pub/Sub would send. The message is safe to show."""


@dataclass(frozen=True)
class PushEnvelope:
    delivery: Delivery
    subscription: str | None


def parse_envelope(body: bytes) -> PushEnvelope:
    """The delivery in a wrapped push envelope; :class:`EnvelopeError` when malformed."""
    if nested_too_deep(body):
        raise EnvelopeError("the body nests arrays and objects too deep")
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise EnvelopeError("the body is not JSON") from None
    if not isinstance(document, dict):
        raise EnvelopeError("the body is not a JSON object")
    message = document.get("message")
    if not isinstance(message, dict):
        raise EnvelopeError("'message' must be an object")
    data = message.get("data")
    if data is None:
        data = ""  # Pub/Sub leaves out empty data (a message with attributes only)
    if not isinstance(data, str):
        raise EnvelopeError("'message.data' must be a base64 string")
    try:
        decoded = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise EnvelopeError("'message.data' is not valid base64") from None
    attributes = message.get("attributes")
    if attributes is None:
        attributes = {}
    if not isinstance(attributes, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in attributes.items()
    ):
        raise EnvelopeError("'message.attributes' must map strings to strings")
    message_id = message.get("messageId", message.get("message_id"))
    if not isinstance(message_id, str) or not 0 < len(message_id) <= _MAX_MESSAGE_ID_LENGTH:
        raise EnvelopeError("'message.messageId' must be a non-empty string")
    attempt = document.get("deliveryAttempt")
    if attempt is not None and (
        isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1
    ):
        raise EnvelopeError("'deliveryAttempt' must be a positive whole number")
    subscription = document.get("subscription")
    if subscription is not None and not isinstance(subscription, str):
        raise EnvelopeError("'subscription' must be a string")
    return PushEnvelope(
        Delivery(
            data=decoded,
            attributes=attributes,
            message_id=message_id,
            delivery_attempt=attempt,
        ),
        subscription=subscription,
    )
