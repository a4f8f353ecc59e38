"""How the Firestore ledger names and fills the documents other than a request's own: ids,
recipients' statuses and pauses (:mod:`worker.ledger.firestore_ledger`)."""

from __future__ import annotations

import hashlib
import urllib.parse
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from worker.ledger.heartbeats import Heartbeat, HeartbeatKey
from worker.ledger.model import LedgerKey
from worker.ledger.pauses import Pause
from worker.ledger.statuses import RecipientStatus

__all__ = [
    "document_id",
    "heartbeat_document_id",
    "heartbeat_fields",
    "heartbeat_from",
    "pause_document_id",
    "pause_fields",
    "pause_from",
    "plain_utc",
    "status_document_id",
    "status_from",
]


def status_document_id(status: RecipientStatus) -> str:
    """The id of a recipient's status document: a hash, as addresses may hold '/'."""
    return hashlib.sha256(f"{status.message_id}\n{status.recipient}".encode()).hexdigest()


def document_id(key: LedgerKey) -> str:
    """The id of ``key``'s document: ``SERVICE:SHA256(request_id)``.

    A request_id may hold '/' (a path separator to Firestore) and be long, while ids are
    limited to 1500 bytes; its hash is always safe. The ids themselves are stored as fields.
    """
    request_hash = hashlib.sha256(key.request_id.encode()).hexdigest()
    return f"{urllib.parse.quote(key.service_id, safe='')}:{request_hash}"


def pause_document_id(scope: str) -> str:
    """The id of ``scope``'s pause document ('*' and service ids, quoted)."""
    return urllib.parse.quote(scope, safe="")


def plain_utc(moment: datetime) -> datetime:
    # The library hands back its own datetime subclass; callers get a plain aware datetime.
    return datetime(
        moment.year,
        moment.month,
        moment.day,
        moment.hour,
        moment.minute,
        moment.second,
        moment.microsecond,
        tzinfo=UTC,
    )


def status_from(data: Mapping[str, Any]) -> RecipientStatus:
    return RecipientStatus(
        message_id=str(data["message_id"]),
        recipient=str(data["recipient"]),
        event_type=str(data["event_type"]),
        occurred_at=plain_utc(data["occurred_at"]),
        batch=data.get("batch"),
        detail=data.get("detail"),
    )


def pause_fields(pause: Pause) -> dict[str, Any]:
    # A list, not a map: subscription paths hold '/', which field paths do not allow.
    return {
        "scope": pause.scope,
        "since": pause.since,
        "by": pause.by,
        "reason": pause.reason,
        "saved_push_configs": [
            {"subscription": subscription, "push_config": config}
            for subscription, config in sorted(pause.saved_push_configs.items())
        ],
    }


def pause_from(data: Mapping[str, Any]) -> Pause:
    return Pause(
        scope=str(data["scope"]),
        since=plain_utc(data["since"]),
        by=str(data["by"]),
        reason=data.get("reason"),
        saved_push_configs={
            str(entry["subscription"]): str(entry["push_config"])
            for entry in data.get("saved_push_configs") or ()
        },
    )


def heartbeat_document_id(key: HeartbeatKey) -> str:
    """The id of an instance's heartbeat document: its group and instance, quoted."""
    return f"{urllib.parse.quote(key[0], safe='')}:{urllib.parse.quote(key[1], safe='')}"


def heartbeat_fields(beat: Heartbeat) -> dict[str, Any]:
    return {
        "group": beat.group,
        "instance": beat.instance,
        "beat_at": datetime.fromtimestamp(beat.beat_at, UTC),
        # A Firestore timestamp, so the TTL policy on this field can delete the document.
        "expire_at": datetime.fromtimestamp(beat.expire_at, UTC),
    }


def heartbeat_from(key: HeartbeatKey, data: Mapping[str, Any]) -> Heartbeat:
    return Heartbeat(
        key[0],
        key[1],
        beat_at=data["beat_at"].timestamp(),
        expire_at=data["expire_at"].timestamp(),
    )
