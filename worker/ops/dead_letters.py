"""A dead letter: one message of the operators' dead-letter subscription, and what it says
about itself (which request, why it is there, what a replay republishes).

Dead letters come from two places:

* the worker forwards requests that cannot succeed (``rejected``/``failed``) to the dead-letter
  topic with the original data and attributes plus the ``email_worker_*`` reason attributes
  (`worker.formats.pubsub.DEAD_LETTER_ATTRIBUTES`);
* Pub/Sub's own dead-letter policy moves a message there after too many deliveries; it adds
  ``CloudPubSubDeadLetterSource*`` attributes (delivery count, source subscription...).

Reading, replaying and purging the subscription is `worker.ops.dead_letter_queue`; how the
``dlq`` commands show dead letters (tables, JSON) is `worker.ops.commands.dlq_views`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from worker.formats.json_depth import nested_too_deep

# REPLAY_COUNT_ATTRIBUTE is incremented on every replay of the same request; the pipeline
# retries what sent nothing.
from worker.formats.pubsub import (
    DEAD_LETTER_ATTRIBUTES,
    ERROR_CODE_ATTRIBUTE,
    ERROR_MESSAGE_ATTRIBUTE,
    REPLAY_COUNT_ATTRIBUTE,
    REQUEST_ID_ATTRIBUTE,
    SERVICE_ID_ATTRIBUTE,
)

__all__ = [
    "PUBSUB_DEAD_LETTER_PREFIX",
    "REPLAY_COUNT_ATTRIBUTE",
    "DeadLetter",
    "publish_order",
]

#: Prefix of the attributes Pub/Sub's dead-letter policy adds.
PUBSUB_DEAD_LETTER_PREFIX = "CloudPubSubDeadLetter"
_SOURCE_DELIVERY_COUNT = "CloudPubSubDeadLetterSourceDeliveryCount"
_REASON_ATTRIBUTES = frozenset(DEAD_LETTER_ATTRIBUTES)


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


@dataclass(frozen=True, repr=False)
class DeadLetter:
    """One message of the dead-letter subscription."""

    message_id: str
    data: bytes
    attributes: Mapping[str, str]
    publish_time: dt.datetime | None = None

    @classmethod
    def from_received(cls, received: Any) -> DeadLetter:
        message = received.message
        published = message.publish_time
        return cls(
            message_id=message.message_id,
            data=bytes(message.data),
            attributes=dict(message.attributes),
            publish_time=published if isinstance(published, dt.datetime) else None,
        )

    @cached_property
    def request(self) -> dict[str, Any] | None:
        """The data as a JSON object, or None if it is not one."""
        try:
            text = self.data.decode("utf-8")
            if nested_too_deep(text):
                return None
            document = json.loads(text)
        except (UnicodeDecodeError, ValueError, RecursionError):
            return None
        return document if isinstance(document, dict) else None

    def _attribute_or_field(self, attribute: str, name: str) -> str | None:
        value = self.attributes.get(attribute)
        if value:
            return value
        from_request = (self.request or {}).get(name)
        return from_request if isinstance(from_request, str) else None

    @property
    def request_id(self) -> str | None:
        return self._attribute_or_field(REQUEST_ID_ATTRIBUTE, "request_id")

    @property
    def service_id(self) -> str | None:
        return self._attribute_or_field(SERVICE_ID_ATTRIBUTE, "service_id")

    @property
    def error_code(self) -> str | None:
        return self.attributes.get(ERROR_CODE_ATTRIBUTE) or None

    @property
    def error_message(self) -> str | None:
        return self.attributes.get(ERROR_MESSAGE_ATTRIBUTE) or None

    @property
    def delivery_count(self) -> int | None:
        """Deliveries before Pub/Sub's dead-letter policy moved it (None if the worker did)."""
        return _int_or_none(self.attributes.get(_SOURCE_DELIVERY_COUNT))

    @property
    def replay_count(self) -> int:
        return _int_or_none(self.attributes.get(REPLAY_COUNT_ATTRIBUTE)) or 0

    @property
    def reason(self) -> str:
        """Why it is here, for people."""
        if self.error_code and self.error_message:
            return f"{self.error_code}: {self.error_message}"
        if self.error_code:
            return self.error_code
        if self.delivery_count is not None:
            return f"not acknowledged after {self.delivery_count} deliveries (Pub/Sub policy)"
        return "unknown (no reason attributes)"

    def age_s(self, now: dt.datetime) -> float | None:
        if self.publish_time is None:
            return None
        return max(0.0, (now - self.publish_time).total_seconds())

    def replay_attributes(self) -> dict[str, str]:
        """The original attributes, without reasons, with the replay count incremented and
        the request's service and id."""
        kept = {
            name: value
            for name, value in self.attributes.items()
            if name not in _REASON_ATTRIBUTES and not name.startswith(PUBSUB_DEAD_LETTER_PREFIX)
        }
        kept[REPLAY_COUNT_ATTRIBUTE] = str(self.replay_count + 1)
        # Which request it was, as the worker saw it: a replay through the replay topic is
        # checked against the request ledger under this service and request id.
        if self.service_id:
            kept[SERVICE_ID_ATTRIBUTE] = self.service_id
        if self.request_id:
            kept[REQUEST_ID_ATTRIBUTE] = self.request_id
        return kept

    def __repr__(self) -> str:
        return f"DeadLetter(message_id={self.message_id!r}, request_id={self.request_id!r})"


def publish_order(dead_letter: DeadLetter) -> tuple[dt.datetime, int, str]:
    """Sort key: oldest first."""
    moment = dead_letter.publish_time or dt.datetime.min.replace(tzinfo=dt.UTC)
    # Message ids are decimal numbers in practice: shorter ones sort first.
    return moment, len(dead_letter.message_id), dead_letter.message_id
