"""From an SQS message body (an EventBridge event whose detail is an SES event record) to an
:class:`~worker.formats.event.EmailEvent`, a :class:`Dropped` event, or :class:`MalformedEvent`.

The body is what an EventBridge rule with the queue as its target delivers::

    {"version": "0", "id": "...", "detail-type": "Email Bounced", "source": "aws.ses",
     "time": "2026-11-26T05:00:01Z", "region": "eu-west-2", "resources": [...],
     "detail": {"eventType": "Bounce", "mail": {"messageId": "...", "timestamp": "...",
                "destination": [...], "tags": {"name": ["value"], ...}},
                "bounce": {"bounceType": "Permanent", "bounceSubType": "General",
                           "bouncedRecipients": [{"emailAddress": "..."}],
                           "timestamp": "..."}}}

SES's own records name the recipients and times per event type: ``delivery.recipients``,
``bounce.bouncedRecipients``, ``complaint.complainedRecipients``,
``deliveryDelay.delayedRecipients``; send and reject concern the whole call
(``mail.destination``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from worker.formats.event import EmailEvent, EventType
from worker.formats.json_depth import nested_too_deep
from worker.formats.tags import read_worker_tags

__all__ = ["DropReason", "Dropped", "MalformedEvent", "read_event"]


class MalformedEvent(Exception):
    """The body is not an SES event delivered by EventBridge.

    Not retryable by the reader: reading it again gives the same answer. The message is left
    on the queue, so that after the queue's receive limit its redrive policy moves it to the
    dead-letter queue, where operators can look at it.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        #: A short fixed phrase (a metric label), never content of the body.
        self.reason = reason


class DropReason:
    """Why a well-formed event is not published (the ``reason`` of :class:`Dropped`)."""

    UNTAGGED = "untagged"  # no worker tags: a send the worker did not make
    UNKNOWN_TAGS = "unknown_tags"  # worker tags that name no request
    UNSUPPORTED_TYPE = "unsupported_type"  # open, click, rendering failure, subscription


@dataclass(frozen=True)
class Dropped:
    """A well-formed SES event the reader deletes without publishing."""

    reason: str
    #: SES's eventType and message id, for the log line.
    ses_event_type: str
    message_id: str


# SES's eventType -> ours, and the key of the record's section about that event.
_TYPES: dict[str, tuple[EventType, str]] = {
    "Send": (EventType.SEND, "send"),
    "Delivery": (EventType.DELIVERY, "delivery"),
    "Bounce": (EventType.BOUNCE, "bounce"),
    "Complaint": (EventType.COMPLAINT, "complaint"),
    "DeliveryDelay": (EventType.DELIVERY_DELAY, "deliveryDelay"),
    "Reject": (EventType.REJECT, "reject"),
}
# Where each type lists the recipients concerned: a list of addresses, or of objects with
# ``emailAddress``. Send and reject concern every recipient of the call.
_RECIPIENTS: dict[EventType, str | None] = {
    EventType.SEND: None,
    EventType.DELIVERY: "recipients",
    EventType.BOUNCE: "bouncedRecipients",
    EventType.COMPLAINT: "complainedRecipients",
    EventType.DELIVERY_DELAY: "delayedRecipients",
    EventType.REJECT: None,
}
_MAX_BODY_BYTES = 1024 * 1024  # SQS allows 256 KiB; anything larger is not from SES


def _envelope_and_detail(body: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The EventBridge envelope in ``body`` and its ``detail`` object; raise
    :class:`MalformedEvent` when there are none."""
    if len(body) > _MAX_BODY_BYTES or nested_too_deep(body):
        raise MalformedEvent("too large or too deeply nested")
    try:
        envelope = json.loads(body)
    except ValueError:
        raise MalformedEvent("not JSON") from None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("detail-type"), str):
        raise MalformedEvent("not an EventBridge event")
    detail = envelope.get("detail")
    if not isinstance(detail, dict):
        raise MalformedEvent("no detail object")
    return envelope, detail


def read_event(body: str) -> EmailEvent | Dropped:
    """The event in an SQS message ``body``, or why it is dropped.

    Raises :class:`MalformedEvent` when the body is not an SES event record in an EventBridge
    envelope.
    """
    envelope, detail = _envelope_and_detail(body)
    ses_type = detail.get("eventType")
    mail = detail.get("mail")
    if not isinstance(ses_type, str) or not isinstance(mail, dict):
        raise MalformedEvent("not an SES event record")
    message_id = mail.get("messageId")
    if not isinstance(message_id, str) or not message_id:
        raise MalformedEvent("no mail.messageId")
    tags = _tags(mail.get("tags"))

    known = _TYPES.get(ses_type)
    if known is None:
        return Dropped(DropReason.UNSUPPORTED_TYPE, ses_type, message_id)
    event_type, section_key = known
    section = detail.get(section_key)
    if not isinstance(section, dict):
        raise MalformedEvent(f"no {section_key} object")
    try:
        ours = read_worker_tags(tags)
    except ValueError:
        return Dropped(DropReason.UNKNOWN_TAGS, ses_type, message_id)
    if ours is None:
        return Dropped(DropReason.UNTAGGED, ses_type, message_id)

    return EmailEvent(
        request_id=ours.request_id,
        service_id=ours.service_id,
        event_type=event_type,
        message_id=message_id,
        recipients=_recipients(event_type, section, mail),
        occurred_at=_time(section, mail, envelope),
        batch=ours.batch,
        bounce_type=_text(section, "bounceType") if event_type is EventType.BOUNCE else None,
        bounce_subtype=_text(section, "bounceSubType") if event_type is EventType.BOUNCE else None,
        complaint_type=(
            _text(section, "complaintFeedbackType") if event_type is EventType.COMPLAINT else None
        ),
        complaint_subtype=(
            _text(section, "complaintSubType") if event_type is EventType.COMPLAINT else None
        ),
        delay_type=(
            _text(section, "delayType") if event_type is EventType.DELIVERY_DELAY else None
        ),
        reject_reason=_text(section, "reason") if event_type is EventType.REJECT else None,
    )


def _tags(value: Any) -> dict[str, str]:
    """SES's ``mail.tags`` (name to a list of values) as name to its first value."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedEvent("mail.tags is not an object")
    tags: dict[str, str] = {}
    for name, values in value.items():
        if isinstance(values, list) and values and isinstance(values[0], str):
            tags[name] = values[0]
        else:
            raise MalformedEvent("a mail.tags value is not a list of strings")
    return tags


def _recipients(
    event_type: EventType, section: Mapping[str, Any], mail: Mapping[str, Any]
) -> tuple[str, ...]:
    key = _RECIPIENTS[event_type]
    items = mail.get("destination") if key is None else section.get(key)
    if not isinstance(items, list):
        raise MalformedEvent(f"no {key or 'mail.destination'} list")
    recipients: list[str] = []
    for item in items:
        address = item.get("emailAddress") if isinstance(item, dict) else item
        if not isinstance(address, str):
            raise MalformedEvent("a recipient is not an address")
        recipients.append(address)
    return tuple(recipients)


def _time(
    section: Mapping[str, Any], mail: Mapping[str, Any], envelope: Mapping[str, Any]
) -> datetime:
    """The event's own time, else the send's, else when EventBridge saw it."""
    for value in (section.get("timestamp"), mail.get("timestamp"), envelope.get("time")):
        if isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                continue
            if moment.tzinfo is not None:
                return moment
    raise MalformedEvent("no timestamp")


def _text(section: Mapping[str, Any], key: str) -> str | None:
    value = section.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedEvent(f"{key} is not a string")
    return value
