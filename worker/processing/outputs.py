"""Carry out a decision: publish the result, forward dead letters, then ack or nack.

Nothing is acknowledged before what it depends on is confirmed by Pub/Sub: if a publish fails
or times out the message is nacked and will be delivered again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field

from worker.config.logs import get_logger
from worker.formats import pubsub
from worker.formats.pubsub import Publish
from worker.formats.result import EmailResult, ResultError, format_timestamp
from worker.processing.decisions import Decision
from worker.processing.delivery import Delivery, Outcome, Status

__all__ = ["Outputs", "dead_letter_attributes", "result_for"]

log = get_logger()

_MAX_ATTRIBUTE_BYTES = 1024  # Pub/Sub's limit on one attribute value


def result_for(outcome: Outcome, delivery: Delivery, now: dt.datetime) -> EmailResult:
    """The result message for ``outcome``. A delivery handed back on its last attempt is
    reported as ``failed``: from the requester's point of view it is over."""
    status = "failed" if outcome.status in (Status.RETRY, Status.HELD) else outcome.status.value
    error = None
    if outcome.error_code is not None:
        error = ResultError(code=outcome.error_code, message=outcome.error_message or "")
    return EmailResult(
        request_id=outcome.request_id,
        service_id=outcome.service_id,
        status=status,
        message_ids=list(outcome.message_ids),
        error=error,
        attempt=delivery.delivery_attempt,
        pubsub_message_id=delivery.message_id,
        completed_at=format_timestamp(now),
        template=outcome.template,
        send_at=outcome.send_at,
    )


def _truncate(value: str) -> str:
    encoded = value.encode("utf-8")
    if len(encoded) <= _MAX_ATTRIBUTE_BYTES:
        return value
    return encoded[: _MAX_ATTRIBUTE_BYTES - 3].decode("utf-8", "ignore") + "..."


def dead_letter_attributes(
    outcome: Outcome, delivery: Delivery, now: dt.datetime
) -> dict[str, str]:
    """The original attributes plus the reason, for forwarding to the dead-letter topic."""
    reason = {
        pubsub.ERROR_CODE_ATTRIBUTE: outcome.error_code or "",
        pubsub.ERROR_MESSAGE_ATTRIBUTE: _truncate(outcome.error_message or ""),
        pubsub.SERVICE_ID_ATTRIBUTE: outcome.service_id or "",
        pubsub.REQUEST_ID_ATTRIBUTE: outcome.request_id,
        pubsub.FAILED_AT_ATTRIBUTE: format_timestamp(now),
        pubsub.ORIGINAL_MESSAGE_ID_ATTRIBUTE: delivery.message_id,
        pubsub.DELIVERY_ATTEMPT_ATTRIBUTE: str(delivery.delivery_attempt or ""),
    }
    # A replayed message may carry the reason of an earlier failure; the new one replaces it.
    kept = {k: v for k, v in delivery.attributes.items() if k not in reason}
    return {**kept, **reason}


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Outputs:
    """Publishes results and dead letters, and settles each delivery."""

    publish: Publish = field(repr=False)
    _: KW_ONLY
    results_topic: str
    dead_letter_topic: str
    #: How long a publish may take to be confirmed.
    timeout_s: float
    clock: Callable[[], dt.datetime] = field(default=_utc_now, repr=False)

    def settle(
        self,
        delivery: Delivery,
        outcome: Outcome,
        decision: Decision,
        *,
        ack: Callable[[], None],
        nack: Callable[[], None],
        hold: Callable[[], None] | None = None,
    ) -> bool:
        """Publish what ``decision`` asks for, then ack or nack (or hold). Returns whether it
        acked."""
        if decision.hold:
            assert hold is not None, "only a transport that can hold is told to"
            hold()
            return False
        now = self.clock()
        try:
            if decision.publish_result:
                result = result_for(outcome, delivery, now)
                self.publish(
                    self.results_topic, result.to_json_bytes(), result.pubsub_attributes()
                ).result(timeout=self.timeout_s)
            if decision.dead_letter:
                self.publish(
                    self.dead_letter_topic,
                    delivery.data,
                    dead_letter_attributes(outcome, delivery, now),
                ).result(timeout=self.timeout_s)
        except Exception as error:  # any publish failure: hand the message back, lose nothing
            log.warning("publish failed; message will be redelivered", error=type(error).__name__)
            nack()
            return False
        if decision.ack:
            ack()
            return True
        nack()
        return False
