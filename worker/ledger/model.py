"""The ledger's vocabulary: keys, records, claims, results, and the interface backends share."""

from __future__ import annotations

import abc
import enum
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Self

from worker.ledger.pauses import Pause
from worker.ledger.statuses import RecipientStatus

__all__ = [
    "DEFAULT_RETENTION_S",
    "Claim",
    "ClaimState",
    "Ledger",
    "LedgerKey",
    "LedgerRecord",
    "LedgerUnavailable",
    "ReplayVerdict",
    "StoredResult",
    "content_hash",
    "replay_verdict",
]

# Pub/Sub keeps an unacknowledged message for at most seven days; a record must outlive every
# redelivery of its request, plus a day for replays from a snapshot or a dead-letter topic.
DEFAULT_RETENTION_S = 8 * 24 * 3600.0


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


class Ledger(abc.ABC):
    """A record per request that lets exactly one delivery send it.

    A delivery ``claim``s the request before sending, then either ``complete``s it with the
    final result or, after a transient failure, ``release``s it so a later delivery can try
    again. Every method raises :class:`LedgerUnavailable` when the store fails.
    """

    @abc.abstractmethod
    def claim(
        self, key: LedgerKey, *, owner: str, content_hash: str, retry_unsent: bool = False
    ) -> Claim:
        """Claim ``key`` for ``owner``, or say why not (see :class:`ClaimState`).

        Asking again as the owner that holds the claim answers CLAIMED and changes nothing.
        With ``retry_unsent``, a finished request whose result sent nothing (not ``sent``, no
        message ids) is claimed afresh instead of answered DONE: an operator's replay after
        fixing what made it fail.
        """

    @abc.abstractmethod
    def complete(self, key: LedgerKey, *, owner: str, result: StoredResult) -> bool:
        """Store ``result`` if ``owner`` still holds the claim; False if it does not."""

    @abc.abstractmethod
    def release(self, key: LedgerKey, *, owner: str) -> None:
        """Give up ``owner``'s claim, if it still holds one, so the next delivery can claim.

        The record itself stays, with nobody holding it: an operator's replay of the request
        is recognised by it (see :func:`content_hash`).
        """

    @abc.abstractmethod
    def record_statuses(self, key: LedgerKey, statuses: Sequence[RecipientStatus]) -> None:
        """Keep each of ``statuses`` unless the ledger holds a more advanced one for the same
        message and recipient (:func:`~worker.ledger.statuses.advances`). Repeated and
        out-of-order calls are harmless: the outcome does not depend on their order."""

    @abc.abstractmethod
    def statuses(self, key: LedgerKey) -> list[RecipientStatus]:
        """The latest status of every recipient of ``key``'s SES messages, oldest first."""

    @abc.abstractmethod
    def get(self, key: LedgerKey) -> LedgerRecord | None:
        """The record for ``key``, or None if there is none or it has expired."""

    @abc.abstractmethod
    def add_pause(self, pause: Pause) -> Pause:
        """Record ``pause`` unless its scope is paused already; return the stored record.

        Asked again for a paused scope, the first record stays, gaining only the push
        configurations saved for subscriptions it holds none for
        (:func:`~worker.ledger.pauses.merged`).
        """

    @abc.abstractmethod
    def remove_pause(self, scope: str) -> Pause | None:
        """Remove the pause of ``scope`` and return it; None when it was not paused."""

    @abc.abstractmethod
    def pauses(self) -> list[Pause]:
        """Every pause in force, by scope."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections; the ledger must not be used afterwards."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
