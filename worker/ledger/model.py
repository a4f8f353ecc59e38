"""The ledger's vocabulary: keys, records, claims and results (the interface is in
:mod:`worker.ledger.base`)."""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from datetime import datetime

__all__ = [
    "Claim",
    "ClaimState",
    "LedgerKey",
    "LedgerRecord",
    "LedgerUnavailable",
    "ReplayVerdict",
    "StoredResult",
    "content_hash",
    "replay_verdict",
]


class LedgerUnavailable(Exception):
    """The ledger could not be reached, or answered with an error.

    Always transient from the caller's point of view: nack the delivery and send nothing,
    because an email may only go out under a claim the ledger has confirmed.
    """


@dataclass(frozen=True)
class LedgerKey:
    """Which request a record is about: a requester's own id, scoped to its service."""

    service_id: str
    request_id: str


@dataclass(frozen=True)
class StoredResult:
    """The final outcome of a request, kept so a redelivery can republish it unchanged."""

    status: str  # "sent" | "rejected" | "failed"
    message_ids: tuple[str, ...] = ()
    error_code: str | None = None
    # Provider text can quote addresses; keep it out of reprs that end up in logs.
    error_message: str | None = field(default=None, repr=False)
    recipient_count: int = 0
    #: The template it rendered: (name, version, language); None for a request without one.
    template: tuple[str, int, str] | None = None


class ClaimState(enum.StrEnum):
    """What a delivery should do after asking the ledger for a request."""

    # The claim is new and ours: send.
    CLAIMED = "claimed"
    # An earlier claim's lease ran out and the claim is now ours: send, knowing that the
    # earlier delivery's call to SES may or may not have gone through.
    TAKEOVER = "takeover"
    # A final result is stored (Claim.result): republish it and send nothing.
    DONE = "done"
    # Another delivery holds a live claim: nack, and the request comes back later.
    BUSY = "busy"
    # The request_id was used before for different content.
    CONFLICT = "conflict"


@dataclass(frozen=True)
class Claim:
    """The answer to :meth:`Ledger.claim`; ``result`` is set exactly when the state is DONE."""

    state: ClaimState
    result: StoredResult | None = None
    #: The template version pinned on the record, once the claim is held (see ``claim``).
    template_version: int | None = None


@dataclass(frozen=True)
class LedgerRecord:
    """Everything the ledger keeps about one request (for operators; times are UTC)."""

    key: LedgerKey
    state: str  # "claimed" | "done"; a claim nobody holds (owner None) was released
    content_hash: str
    owner: str | None
    lease_until: datetime | None
    takeovers: int
    result: StoredResult | None
    created_at: datetime
    updated_at: datetime
    expire_at: datetime
    #: Generations of the request's gs:// attachments, pinned when it was first sent.
    attachment_generations: tuple[int, ...] | None = None
    #: The template version a request naming none (the latest) was first sent with.
    template_version: int | None = None


def content_hash(data: bytes) -> str:
    """The SHA-256 hex digest of ``data``: what a claim records to spot a reused request_id."""
    return hashlib.sha256(data).hexdigest()


class ReplayVerdict(enum.StrEnum):
    """Whether the ledger vouches for a replayed request (see :func:`replay_verdict`)."""

    VOUCHED = "vouched"
    # No record: never claimed (refused before that), or past its retention.
    NO_RECORD = "no_record"
    # A record for that service and request id, but of other content.
    OTHER_CONTENT = "other_content"


def replay_verdict(record: LedgerRecord | None, data: bytes) -> ReplayVerdict:
    """Whether ``record`` (the ledger's, for the replay's service and request id) proves that
    the service published ``data``.

    The one rule for replays through the operators' replay topic, which anyone may publish
    to: the worker sends one only when this says VOUCHED, and ``email-worker dlq replay``
    checks it before publishing. A record with the same content hash could only have been
    written for a delivery through the service's own topic.
    """
    if record is None:
        return ReplayVerdict.NO_RECORD
    if record.content_hash != content_hash(data):
        return ReplayVerdict.OTHER_CONTENT
    return ReplayVerdict.VOUCHED
