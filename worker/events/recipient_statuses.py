"""What an SES event says about each of its recipients, as the request ledger keeps it
(``email-worker status`` shows it)."""

from __future__ import annotations

from worker.formats.event import EmailEvent
from worker.ledger import RecipientStatus

__all__ = ["statuses_of"]


def statuses_of(event: EmailEvent) -> list[RecipientStatus]:
    """What ``event`` says about each of its recipients, for the request ledger."""
    detail = _detail(event)
    return [
        RecipientStatus(
            message_id=event.message_id,
            recipient=recipient,
            event_type=event.event_type.value,
            occurred_at=event.occurred_at,
            batch=event.batch,
            detail=detail,
        )
        for recipient in event.recipients
    ]


def _detail(event: EmailEvent) -> str | None:
    pairs = (
        (event.bounce_type, event.bounce_subtype),
        (event.complaint_type, event.complaint_subtype),
        (event.delay_type, None),
        (event.reject_reason, None),
    )
    for kind, subtype in pairs:
        if kind is not None:
            return f"{kind}/{subtype}" if subtype else kind
    return None
