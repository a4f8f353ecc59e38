"""Event format v1: what became of a sent request's email after SES accepted it.

The events reader (``email-worker events``) publishes one :class:`EmailEvent` per SES event
(send, delivery, bounce, complaint, delivery delay, reject) to the events topic, serialised
with :meth:`EmailEvent.to_json_bytes` and with :meth:`EmailEvent.pubsub_attributes` for
subscription filters. The JSON Schema is ``worker/formats/schemas/event-v1.schema.json``;
tests check both agree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from worker.formats.result import format_timestamp

__all__ = ["EVENT_VERSION", "EmailEvent", "EventType"]

EVENT_VERSION: Literal[1] = 1


class EventType(StrEnum):
    """What happened to an email, from SES's event records."""

    SEND = "send"
    """SES accepted the call and will try to deliver (SES ``Send``)."""
    DELIVERY = "delivery"
    """The recipients' mail server accepted the email (SES ``Delivery``)."""
    BOUNCE = "bounce"
    """The recipients' mail server refused it, for good or for now (SES ``Bounce``)."""
    COMPLAINT = "complaint"
    """A recipient marked it as spam (SES ``Complaint``)."""
    DELIVERY_DELAY = "delivery_delay"
    """Delivery is delayed; SES keeps trying (SES ``DeliveryDelay``)."""
    REJECT = "reject"
    """SES accepted the call but refused to send, for example for a virus (SES ``Reject``)."""


@dataclass(frozen=True)
class EmailEvent:
    """One SES event about a request's email, as published to the events topic.

    The repr leaves out the recipients' addresses.
    """

    request_id: str
    service_id: str
    event_type: EventType
    #: The SES message id: one of the result's ``message_ids``.
    message_id: str
    #: The recipients this event is about (all of the SES call's for send and reject).
    recipients: tuple[str, ...] = field(repr=False)
    occurred_at: datetime
    #: The message's recipient batch (position in ``message_ids``) when it had several.
    batch: int | None = None
    bounce_type: str | None = None
    bounce_subtype: str | None = None
    complaint_type: str | None = None
    complaint_subtype: str | None = None
    delay_type: str | None = None
    reject_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": EVENT_VERSION,
            "request_id": self.request_id,
            "service_id": self.service_id,
            "event_type": self.event_type.value,
            "message_id": self.message_id,
            "batch": self.batch,
            "recipients": list(self.recipients),
            "occurred_at": format_timestamp(self.occurred_at),
            "bounce_type": self.bounce_type,
            "bounce_subtype": self.bounce_subtype,
            "complaint_type": self.complaint_type,
            "complaint_subtype": self.complaint_subtype,
            "delay_type": self.delay_type,
            "reject_reason": self.reject_reason,
        }

    def to_json_bytes(self) -> bytes:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":")).encode()

    def pubsub_attributes(self) -> dict[str, str]:
        """The message's attributes, for subscription filters."""
        return {
            "version": str(EVENT_VERSION),
            "request_id": self.request_id,
            "service_id": self.service_id,
            "event_type": self.event_type.value,
        }
