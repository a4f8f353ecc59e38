"""The request page's document: what the ledger holds about one request, and its dead letters.

The same document is the page's JSON twin (``?format=json``) and what its template renders.
Error messages have addresses replaced, as ``email-worker status`` does; the request's
content is never read (the ledger holds none).
"""

from __future__ import annotations

from typing import Any

from worker.console.advice import advice_for, meaning_of
from worker.console.sources import Sources
from worker.formats.result import format_timestamp
from worker.ledger import LedgerKey, LedgerRecord, RecipientStatus
from worker.ops.commands.dead_letter_location import without_addresses
from worker.ops.selection import find_request

__all__ = ["request_document"]

# What each SES event means for its recipient.
STATUS_WORDS = {
    "send": "sent (SES accepted it)",
    "delivery_delay": "delayed",
    "delivery": "delivered",
    "bounce": "bounced",
    "reject": "rejected by SES",
    "complaint": "complained",
}


def request_document(sources: Sources, service_id: str, request_id: str) -> dict[str, Any]:
    """Everything the request page shows (reads the ledger, searches the dead letters of a
    request that was not sent within the console's search time)."""
    record, statuses = sources.lookup(LedgerKey(service_id, request_id))
    not_sent = record is None or (record.result is not None and record.result.status != "sent")
    budget_s = sources.settings.console.dead_letter_search_s
    return {
        "service_id": service_id,
        "request_id": request_id,
        "found": record is not None or bool(statuses),
        "record": None if record is None else _record(record),
        "timeline": _timeline(record),
        "recipients": [_recipient(s) for s in statuses],
        "dead_letters": _dead_letters(sources, service_id, request_id, budget_s)
        if not_sent and budget_s > 0
        else None,
    }


def _record(record: LedgerRecord) -> dict[str, Any]:
    result = record.result
    document: dict[str, Any] = {
        "state": record.state,
        "created_at": format_timestamp(record.created_at),
        "updated_at": format_timestamp(record.updated_at),
        "takeovers": record.takeovers,
        "result": None,
    }
    if result is not None:
        name, version, language = result.template or (None, None, None)
        document["result"] = {
            "status": result.status,
            "message_ids": list(result.message_ids),
            "error_code": result.error_code,
            "error_message": without_addresses(result.error_message or "") or None,
            "recipient_count": result.recipient_count,
            "template": None
            if name is None
            else {"name": name, "version": version, "language": language},
        }
    return document


def _timeline(record: LedgerRecord | None) -> list[dict[str, Any]]:
    if record is None:
        return []
    lines: list[dict[str, Any]] = [
        {"at": format_timestamp(record.created_at), "what": "claimed by a delivery"}
    ]
    if record.takeovers:
        lines.append({"at": None, "what": f"taken over {record.takeovers} time(s)"})
    result, updated = record.result, format_timestamp(record.updated_at)
    if result is None:
        lines.append({"at": updated, "what": "being sent, or waiting for a delivery"})
    elif result.status == "sent":
        ids = ", ".join(result.message_ids)
        lines.append(
            {"at": updated, "what": f"sent to {result.recipient_count} recipient(s): {ids}"}
        )
    else:
        failure = f"{result.status}: {result.error_code}"
        if result.error_message:
            failure += f": {without_addresses(result.error_message)}"
        lines.append({"at": updated, "what": failure})
    return lines


def _recipient(status: RecipientStatus) -> dict[str, Any]:
    return {
        "recipient": status.recipient,
        "status": status.event_type,
        "words": STATUS_WORDS.get(status.event_type, status.event_type),
        "detail": status.detail,
        "message_id": status.message_id,
        "occurred_at": format_timestamp(status.occurred_at),
    }


def _dead_letters(
    sources: Sources, service_id: str, request_id: str, budget_s: float
) -> dict[str, Any]:
    search = find_request(sources.queue(), service_id, request_id, budget_s=budget_s)
    items = []
    for message_id, reason in zip(search.message_ids, search.reasons, strict=True):
        code = reason.partition(":")[0] if ":" in reason else reason
        items.append(
            {
                "message_id": message_id,
                "reason": without_addresses(reason),
                "meaning": meaning_of(code),
                "advice": advice_for(code),
            }
        )
    return {"complete": search.complete, "items": items}
