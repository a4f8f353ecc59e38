"""The ledger in Cloud Firestore, for workers spread over many hosts.

One document per request. A claim is a ``create()``, which Firestore refuses when the document
exists, so two deliveries can never both create it. Every later change (takeover, completion,
release) is conditional on the document's ``update_time`` as last read, so a change made by
someone else in between makes ours fail instead of overwriting it.

Leases are compared with the local clock against times other hosts wrote, so a lease must be
far longer than the clock skew between workers.

The operators' pauses are documents of their own collection (``email-worker-pauses``), one
per scope, without ``expire_at``: they stay until resumed.

Records expire through a TTL policy on the ``expire_at`` field, which the deployment creates.
Firestore deletes expired documents lazily (up to about a day late), so this class also
treats a document past its ``expire_at`` as absent.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from google.api_core.exceptions import Conflict, FailedPrecondition, GoogleAPIError, NotFound
from google.api_core.retry import Retry, if_transient_error
from google.cloud import firestore
from google.cloud.firestore import DocumentReference, DocumentSnapshot

from worker.ledger.model import (
    DEFAULT_RETENTION_S,
    Claim,
    ClaimState,
    Ledger,
    LedgerKey,
    LedgerRecord,
    LedgerUnavailable,
    StoredResult,
)
from worker.ledger.pauses import Pause, merged
from worker.ledger.shared import (
    Found,
    Verdict,
    judge,
    result_fields,
    result_from_fields,
    sent_nothing,
    utc,
)
from worker.ledger.statuses import RecipientStatus, advances

__all__ = [
    "DEFAULT_COLLECTION",
    "PAUSES_COLLECTION",
    "STATUSES_COLLECTION",
    "FirestoreLedger",
    "document_id",
    "status_document_id",
]

DEFAULT_COLLECTION = "email-worker-requests"
#: Collection of the pause records, one document per scope (no TTL: a pause stays until
#: resumed).
PAUSES_COLLECTION = "email-worker-pauses"
#: Subcollection of a request's document holding its recipients' statuses (one document each;
#: the deployment's TTL policy on ``expire_at`` covers this collection group too).
STATUSES_COLLECTION = "statuses"
# Firestore's name for the database a project gets first (what the client uses given None).
_DEFAULT_DATABASE = "(default)"

# A claim re-evaluates when the document changes or vanishes under it; more rounds than this
# mean heavy contention on one request, and the delivery is told to come back later.
_CLAIM_ROUNDS = 3


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


class FirestoreLedger(Ledger):
    """A :class:`Ledger` in a Firestore collection.

    ``project`` and ``database`` default to the environment's project and the (default)
    database; ``FIRESTORE_EMULATOR_HOST``, when set, points the client at an emulator.
    ``claim_lease_s``: how long a claim keeps other deliveries out. ``retention_s``: how long
    a record lives after its last write. ``takeover_wait_s``: how much longer an expired claim
    keeps them out, for SES's Send event of its holder's send to arrive. ``clock``: epoch
    seconds, replaced in tests.
    ``timeout_s``: the most one operation may take, retries of transient errors included,
    before the ledger counts as unavailable.
    """

    def __init__(
        self,
        *,
        project: str | None = None,
        database: str | None = None,
        collection: str = DEFAULT_COLLECTION,
        pauses_collection: str = PAUSES_COLLECTION,
        claim_lease_s: float,
        retention_s: float = DEFAULT_RETENTION_S,
        takeover_wait_s: float = 0.0,
        clock: Callable[[], float] = time.time,
        timeout_s: float = 10.0,
    ) -> None:
        self._client = firestore.Client(project=project, database=database)
        self.database = database or _DEFAULT_DATABASE
        self.collection = collection
        self._collection = self._client.collection(collection)
        self._pauses = self._client.collection(pauses_collection)
        self._claim_lease_s = claim_lease_s
        self._retention_s = retention_s
        self._takeover_wait_s = takeover_wait_s
        self._clock = clock
        # The library's default retries run for up to a minute; a delivery should rather be
        # nacked and come back than hold its lease waiting out an outage.
        retry = Retry(
            predicate=if_transient_error,
            initial=0.1,
            maximum=1.0,
            multiplier=2.0,
            timeout=timeout_s,
        )
        self._call: dict[str, Any] = {"retry": retry, "timeout": timeout_s}

    def __repr__(self) -> str:
        return f"FirestoreLedger(database={self.database!r}, collection={self.collection!r})"

    # -- Ledger ----------------------------------------------------------------------------

    def claim(
        self, key: LedgerKey, *, owner: str, content_hash: str, retry_unsent: bool = False
    ) -> Claim:
        ref = self._collection.document(document_id(key))
        # What our last conditional write would have made of the claim. Its answer can be lost
        # and the retry then fails its precondition; the next read shows whether it landed.
        attempted: ClaimState | None = None
        with self._unavailable("claim", key):
            for _ in range(_CLAIM_ROUNDS):
                now = self._clock()
                fresh = self._fresh_claim(key, owner, content_hash, now)
                try:
                    ref.create(fresh, **self._call)
                    return Claim(ClaimState.CLAIMED)
                except Conflict:
                    pass  # the document exists: look at it below
                snapshot = ref.get(**self._call)
                data = snapshot.to_dict()
                if data is None:
                    continue  # deleted since the create failed: create again
                now = self._clock()
                verdict = judge(
                    _found(data),
                    owner=owner,
                    content_hash=content_hash,
                    now=now,
                    retry_unsent=retry_unsent,
                    takeover_wait_s=self._takeover_wait_s,
                )
                if verdict is Verdict.MINE:
                    return Claim(attempted or ClaimState.CLAIMED)
                if verdict in (Verdict.RECLAIM, Verdict.RETRY):
                    change, attempted = fresh, ClaimState.CLAIMED
                elif verdict is Verdict.FREE:
                    change = {
                        "owner": owner,
                        "lease_until": utc(now + self._claim_lease_s),
                        "updated_at": utc(now),
                    }
                    attempted = ClaimState.CLAIMED
                elif verdict is Verdict.TAKEOVER:
                    change = {
                        "owner": owner,
                        "lease_until": utc(now + self._claim_lease_s),
                        "takeovers": int(data.get("takeovers") or 0) + 1,
                        "updated_at": utc(now),
                    }
                    attempted = ClaimState.TAKEOVER
                else:
                    return _claim_without_write(verdict, data)
                if self._update_unchanged(ref, snapshot, change):
                    return Claim(attempted)
            return Claim(ClaimState.BUSY)

    def complete(self, key: LedgerKey, *, owner: str, result: StoredResult) -> bool:
        ref = self._collection.document(document_id(key))
        stored = result_fields(result)
        with self._unavailable("complete", key):
            snapshot = ref.get(**self._call)
            data = snapshot.to_dict()
            if data is None or data.get("state") != "claimed" or data.get("owner") != owner:
                return False
            now = self._clock()
            change = {
                "state": "done",
                "result": stored,
                "lease_until": None,
                "updated_at": utc(now),
                "expire_at": utc(now + self._retention_s),
            }
            if self._update_unchanged(ref, snapshot, change):
                return True
            # The document changed since our read: by a takeover, or by this very write if its
            # answer was lost and the retry then failed the precondition.
            data = ref.get(**self._call).to_dict()
            return (
                data is not None
                and data.get("state") == "done"
                and data.get("owner") == owner
                and data.get("result") == stored
            )

    def release(self, key: LedgerKey, *, owner: str) -> None:
        ref = self._collection.document(document_id(key))
        with self._unavailable("release", key):
            snapshot = ref.get(**self._call)
            data = snapshot.to_dict()
            if data is None or data.get("state") != "claimed" or data.get("owner") != owner:
                return
            # Kept, not deleted: an operator's replay of the request is checked against its
            # content hash. A changed document is no longer ours to release.
            self._update_unchanged(
                ref,
                snapshot,
                {"owner": None, "lease_until": None, "updated_at": utc(self._clock())},
            )

    def record_statuses(self, key: LedgerKey, statuses: Sequence[RecipientStatus]) -> None:
        # Each recipient's status is a document of its own under the request's (which need not
        # exist), so the events reader never contends with the deliveries' claim writes.
        parent = self._collection.document(document_id(key)).collection(STATUSES_COLLECTION)
        with self._unavailable("record statuses of", key):
            for status in statuses:
                self._advance(parent.document(status_document_id(status)), status)

    def _advance(self, ref: DocumentReference, status: RecipientStatus) -> None:
        fields = {
            "message_id": status.message_id,
            "recipient": status.recipient,
            "event_type": status.event_type,
            "occurred_at": status.occurred_at,
            "batch": status.batch,
            "detail": status.detail,
            "expire_at": utc(self._clock() + self._retention_s),
        }
        for _ in range(_CLAIM_ROUNDS):
            try:
                ref.create(fields, **self._call)
                return
            except Conflict:
                pass
            snapshot = ref.get(**self._call)
            stored = snapshot.to_dict()
            if stored is None:
                continue  # expired and deleted in between: create again
            if not advances(
                status.event_type,
                status.occurred_at,
                str(stored["event_type"]),
                _plain_utc(stored["occurred_at"]),
            ):
                return
            if self._update_unchanged(ref, snapshot, fields):
                return
        # Contention on one recipient's status: the event comes back from SQS and is retried.
        raise LedgerUnavailable("a recipient's status kept changing while it was written")

    def statuses(self, key: LedgerKey) -> list[RecipientStatus]:
        parent = self._collection.document(document_id(key)).collection(STATUSES_COLLECTION)
        now = self._clock()
        with self._unavailable("read statuses of", key):
            documents = [snapshot.to_dict() for snapshot in parent.stream(**self._call)]
        found = [
            RecipientStatus(
                message_id=str(data["message_id"]),
                recipient=str(data["recipient"]),
                event_type=str(data["event_type"]),
                occurred_at=_plain_utc(data["occurred_at"]),
                batch=data.get("batch"),
                detail=data.get("detail"),
            )
            for data in documents
            if data is not None and _epoch(data["expire_at"]) >= now
        ]
        return sorted(found, key=lambda s: (s.occurred_at, s.message_id, s.recipient))

    def get(self, key: LedgerKey) -> LedgerRecord | None:
        ref = self._collection.document(document_id(key))
        with self._unavailable("read", key):
            data = ref.get(**self._call).to_dict()
        if data is None or _epoch(data["expire_at"]) < self._clock():
            return None
        return _record(key, data)

    def add_pause(self, pause: Pause) -> Pause:
        ref = self._pauses.document(_pause_document_id(pause.scope))
        with self._unavailable_for("pause " + pause.scope):
            for _ in range(_CLAIM_ROUNDS):
                try:
                    ref.create(_pause_fields(pause), **self._call)
                    return pause
                except Conflict:
                    pass
                snapshot = ref.get(**self._call)
                data = snapshot.to_dict()
                if data is None:
                    continue  # resumed in between: create again
                stored = _pause_from(data)
                change = merged(stored, pause)
                if change is None:
                    return stored
                fields = {"saved_push_configs": _pause_fields(change)["saved_push_configs"]}
                if self._update_unchanged(ref, snapshot, fields):
                    return change
        raise LedgerUnavailable(f"the pause of {pause.scope} kept changing while it was written")

    def remove_pause(self, scope: str) -> Pause | None:
        ref = self._pauses.document(_pause_document_id(scope))
        with self._unavailable_for("resume " + scope):
            for _ in range(_CLAIM_ROUNDS):
                snapshot = ref.get(**self._call)
                data = snapshot.to_dict()
                if data is None:
                    return None
                # Only as read: a push configuration saved in between must not be lost.
                option = self._client.write_option(last_update_time=snapshot.update_time)
                try:
                    ref.delete(option=option, **self._call)
                except (FailedPrecondition, NotFound):
                    continue
                return _pause_from(data)
        raise LedgerUnavailable(f"the pause of {scope} kept changing while it was removed")

    def pauses(self) -> list[Pause]:
        with self._unavailable_for("read the pauses"):
            documents = [snapshot.to_dict() for snapshot in self._pauses.stream(**self._call)]
        found = [_pause_from(data) for data in documents if data is not None]
        return sorted(found, key=lambda pause: pause.scope)

    def close(self) -> None:
        self._client.close()

    # -- internals -------------------------------------------------------------------------

    def _fresh_claim(
        self, key: LedgerKey, owner: str, content_hash: str, now: float
    ) -> dict[str, Any]:
        return {
            "service_id": key.service_id,
            "request_id": key.request_id,
            "state": "claimed",
            "content_hash": content_hash,
            "owner": owner,
            "lease_until": utc(now + self._claim_lease_s),
            "takeovers": 0,
            "result": None,
            "created_at": utc(now),
            "updated_at": utc(now),
            # A Firestore timestamp, so the TTL policy on this field can delete the document.
            "expire_at": utc(now + self._retention_s),
        }

    def _update_unchanged(
        self,
        ref: DocumentReference,
        snapshot: DocumentSnapshot[DocumentReference],
        change: Mapping[str, Any],
    ) -> bool:
        """Apply ``change`` if the document is as ``snapshot`` saw it; False if it is not."""
        option = self._client.write_option(last_update_time=snapshot.update_time)
        try:
            ref.update(dict(change), option=option, **self._call)
        except (FailedPrecondition, NotFound):
            return False
        return True

    def _unavailable(self, action: str, key: LedgerKey) -> contextlib.AbstractContextManager[None]:
        return self._unavailable_for(f"{action} {key.service_id}/{key.request_id}")

    @contextlib.contextmanager
    def _unavailable_for(self, action: str) -> Iterator[None]:
        try:
            yield
        except GoogleAPIError as error:
            # Only the error's type: a server message may quote what was written.
            raise LedgerUnavailable(
                f"Firestore ledger could not {action}: {type(error).__name__}"
            ) from error


def _epoch(moment: datetime) -> float:
    return moment.timestamp()


def _optional_epoch(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def _plain_utc(moment: datetime) -> datetime:
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


def _found(data: Mapping[str, Any]) -> Found:
    return Found(
        state=data["state"],
        content_hash=data["content_hash"],
        owner=data.get("owner"),
        lease_until=_optional_epoch(data.get("lease_until")),
        expire_at=_epoch(data["expire_at"]),
        unsent=data["state"] == "done" and sent_nothing(_result(data)),
    )


def _result(data: Mapping[str, Any]) -> StoredResult | None:
    fields = data.get("result")
    return None if fields is None else result_from_fields(fields)


def _claim_without_write(verdict: Verdict, data: Mapping[str, Any]) -> Claim:
    if verdict is Verdict.CONFLICT:
        return Claim(ClaimState.CONFLICT)
    if verdict is Verdict.DONE:
        return Claim(ClaimState.DONE, _result(data))
    return Claim(ClaimState.BUSY)


def _record(key: LedgerKey, data: Mapping[str, Any]) -> LedgerRecord:
    lease_until = data.get("lease_until")
    return LedgerRecord(
        key=key,
        state=data["state"],
        content_hash=data["content_hash"],
        owner=data.get("owner"),
        lease_until=None if lease_until is None else _plain_utc(lease_until),
        takeovers=int(data.get("takeovers") or 0),
        result=_result(data),
        created_at=_plain_utc(data["created_at"]),
        updated_at=_plain_utc(data["updated_at"]),
        expire_at=_plain_utc(data["expire_at"]),
    )


def _pause_document_id(scope: str) -> str:
    return urllib.parse.quote(scope, safe="")


def _pause_fields(pause: Pause) -> dict[str, Any]:
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


def _pause_from(data: Mapping[str, Any]) -> Pause:
    return Pause(
        scope=str(data["scope"]),
        since=_plain_utc(data["since"]),
        by=str(data["by"]),
        reason=data.get("reason"),
        saved_push_configs={
            str(entry["subscription"]): str(entry["push_config"])
            for entry in data.get("saved_push_configs") or ()
        },
    )
