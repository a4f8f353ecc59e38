"""The recipient page's document: what was sent to one address in the last days, and what
became of each email, from the ledger's recipients' statuses (one indexed lookup,
`Ledger.sent_to`). The address is posted, never put in a URL, so that it stays out of
request logs; it is not logged either."""

from __future__ import annotations

import datetime as dt
from typing import Any

from worker.console.request_view import STATUS_WORDS
from worker.console.sources import Sources
from worker.formats.result import format_timestamp

__all__ = ["MAX_SHOWN", "recipient_document"]

#: At most this many emails are shown, newest first.
MAX_SHOWN = 200


def recipient_document(sources: Sources, address: str, days: float) -> dict[str, Any]:
    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    found = sources.ledger.sent_to(address, since, limit=MAX_SHOWN)
    return {
        "recipient": address,
        "days": days,
        "since": format_timestamp(since),
        "count": len(found),
        "limited": len(found) >= MAX_SHOWN,
        "emails": [
            {
                "service_id": key.service_id,
                "request_id": key.request_id,
                "status": status.event_type,
                "words": STATUS_WORDS.get(status.event_type, status.event_type),
                "detail": status.detail,
                "occurred_at": format_timestamp(status.occurred_at),
                "message_id": status.message_id,
            }
            for key, status in found
        ],
    }
