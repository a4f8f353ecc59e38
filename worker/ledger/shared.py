"""What the backends share: how a claim is decided against an existing record, and how
results and times are stored."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from worker.ledger.model import StoredResult

__all__ = [
    "Found",
    "Verdict",
    "judge",
    "result_fields",
    "result_from_fields",
    "sent_nothing",
    "utc",
]


class Verdict(enum.Enum):
    """The next step of a claim that collided with an existing record."""

    RECLAIM = "reclaim"  # the record outlived its retention: overwrite it as a fresh claim
    RETRY = "retry"  # finished without sending anything, and asked to retry: claim it afresh
    CONFLICT = "conflict"
    DONE = "done"
    MINE = "mine"  # this owner already holds the claim
    FREE = "free"  # released after a transient failure: nobody holds it, nothing was sent
    BUSY = "busy"
    TAKEOVER = "takeover"


@dataclass(frozen=True)
class Found:
    """The fields of a stored record that a claim decision depends on (times in epoch s)."""

    state: str
    content_hash: str
    owner: str | None
    lease_until: float | None
    expire_at: float
    #: Finished, and nothing was sent: the result is not "sent" and has no message ids.
    unsent: bool = False


def judge(
    found: Found,
    *,
    owner: str,
    content_hash: str,
    now: float,
    retry_unsent: bool = False,
    takeover_wait_s: float = 0.0,
) -> Verdict:
    """Decide a claim against ``found``, in the order the ledger's contract gives.

    An expired claim is taken over only ``takeover_wait_s`` after its lease ran out: time for
    SES's Send event of a send its holder may have made to reach the ledger.
    """
    # Expiry first: a store may keep an expired record for a while (Firestore's TTL deletes
    # lazily), and it must then behave as if the record were gone.
    if found.expire_at < now:
        return Verdict.RECLAIM
    if found.content_hash != content_hash:
        return Verdict.CONFLICT
    if found.state == "done":
        return Verdict.RETRY if retry_unsent and found.unsent else Verdict.DONE
    if found.owner == owner:
        return Verdict.MINE
    if found.owner is None:
        return Verdict.FREE
    if found.lease_until is not None and found.lease_until + takeover_wait_s > now:
        return Verdict.BUSY
    return Verdict.TAKEOVER


def result_fields(result: StoredResult) -> dict[str, Any]:
    """``result`` as a plain mapping (lists, not tuples) that JSON and Firestore both store."""
    return {
        "status": result.status,
        "message_ids": list(result.message_ids),
        "error_code": result.error_code,
        "error_message": result.error_message,
        "recipient_count": result.recipient_count,
    }


def result_from_fields(fields: Mapping[str, Any]) -> StoredResult:
    """The inverse of :func:`result_fields`."""
    return StoredResult(
        status=str(fields["status"]),
        message_ids=tuple(str(message_id) for message_id in fields.get("message_ids") or ()),
        error_code=fields.get("error_code"),
        error_message=fields.get("error_message"),
        recipient_count=int(fields.get("recipient_count") or 0),
    )


def sent_nothing(result: StoredResult | None) -> bool:
    """Whether ``result`` is final and no email went out for it."""
    return result is not None and result.status != "sent" and not result.message_ids


def utc(epoch_s: float) -> datetime:
    """An aware UTC datetime for a clock reading."""
    return datetime.fromtimestamp(epoch_s, UTC)
