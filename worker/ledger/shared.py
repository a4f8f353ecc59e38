"""What the protocol and the backends share: the record as stored (:class:`Entry`), how a
claim is decided against it (:func:`judge`), and how results and times are stored."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from worker.ledger.model import LedgerKey, LedgerRecord, StoredResult

__all__ = [
    "Entry",
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
class Entry:
    """One request's record as every backend stores it (times in epoch seconds)."""

    key: LedgerKey
    state: str  # "claimed" | "done"
    content_hash: str
    owner: str | None
    lease_until: float | None
    takeovers: int
    result: StoredResult | None
    created_at: float
    updated_at: float
    expire_at: float
    #: The generations of the request's gs:// attachments, pinned by its first send; None
    #: until then (and for requests without any).
    attachment_generations: tuple[int, ...] | None = None
    #: The version a request naming no template version (the latest) resolved to on its first
    #: send; None until then (and for requests without a template or naming a version).
    template_version: int | None = None

    @property
    def unsent(self) -> bool:
        """Finished, and nothing was sent: the result is not "sent" and has no message ids."""
        return self.state == "done" and sent_nothing(self.result)

    def held_by(self, owner: str) -> bool:
        """Whether ``owner`` holds the claim (it is not finished, and not released)."""
        return self.state == "claimed" and self.owner == owner

    def record(self) -> LedgerRecord:
        """The operators' view of this entry (times as UTC datetimes)."""
        return LedgerRecord(
            key=self.key,
            state=self.state,
            content_hash=self.content_hash,
            owner=self.owner,
            lease_until=None if self.lease_until is None else utc(self.lease_until),
            takeovers=self.takeovers,
            result=self.result,
            created_at=utc(self.created_at),
            updated_at=utc(self.updated_at),
            expire_at=utc(self.expire_at),
            attachment_generations=self.attachment_generations,
            template_version=self.template_version,
        )


def judge(
    found: Entry,
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
    fields: dict[str, Any] = {
        "status": result.status,
        "message_ids": list(result.message_ids),
        "error_code": result.error_code,
        "error_message": result.error_message,
        "recipient_count": result.recipient_count,
    }
    if result.template is not None:
        fields["template"] = list(result.template)
    return fields


def result_from_fields(fields: Mapping[str, Any]) -> StoredResult:
    """The inverse of :func:`result_fields`."""
    return StoredResult(
        status=str(fields["status"]),
        message_ids=tuple(str(message_id) for message_id in fields.get("message_ids") or ()),
        error_code=fields.get("error_code"),
        error_message=fields.get("error_message"),
        recipient_count=int(fields.get("recipient_count") or 0),
        template=_template_from(fields.get("template")),
    )


def _template_from(value: Any) -> tuple[str, int, str] | None:
    if not isinstance(value, list | tuple) or len(value) != 3:
        return None
    return str(value[0]), int(value[1]), str(value[2])


def sent_nothing(result: StoredResult | None) -> bool:
    """Whether ``result`` is final and no email went out for it."""
    return result is not None and result.status != "sent" and not result.message_ids


def utc(epoch_s: float) -> datetime:
    """An aware UTC datetime for a clock reading."""
    return datetime.fromtimestamp(epoch_s, UTC)
