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

A little over 300 lines: the storage primitives, the statuses and their recipient lookup (one
collection group query, on the index terraform/ledger.tf declares) and the pauses belong to
the one client and retry policy kept here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, Unpack

from google.api_core.exceptions import Conflict, FailedPrecondition, GoogleAPIError, NotFound
from google.api_core.retry import Retry, if_transient_error
from google.cloud import firestore
from google.cloud.firestore import CollectionReference, DocumentReference
from google.cloud.firestore_v1.base_query import FieldFilter

from worker.ledger import send_counts as counts
from worker.ledger.base import CLAIM_ROUNDS, Ledger, LedgerTerms, naming
from worker.ledger.firestore_documents import (
    document_id,
    heartbeat_document_id,
    heartbeat_fields,
    heartbeat_from,
    pause_document_id,
    pause_fields,
    pause_from,
    plain_utc,
    status_document_id,
    status_from,
)
from worker.ledger.heartbeats import Heartbeat
from worker.ledger.model import LedgerKey, LedgerUnavailable
from worker.ledger.pauses import Pause
from worker.ledger.records import K, R, Records, Version
from worker.ledger.send_counts import Increments
from worker.ledger.shared import Entry, result_fields, result_from_fields, utc
from worker.ledger.statuses import RecipientStatus, advances

__all__ = [
    "COUNTS_COLLECTION",
    "DEFAULT_COLLECTION",
    "HEARTBEATS_COLLECTION",
    "PAUSES_COLLECTION",
    "STATUSES_COLLECTION",
    "FirestoreLedger",
    "document_id",
    "status_document_id",
]

_T = TypeVar("_T")

DEFAULT_COLLECTION = "email-worker-requests"
#: Collection of the pause records, one document per scope (no TTL: a pause stays until
#: resumed).
PAUSES_COLLECTION = "email-worker-pauses"
#: Collection of the instances' heartbeats (the TTL policy on ``expire_at`` deletes them).
HEARTBEATS_COLLECTION = "email-worker-instances"
#: Collection of the services' hourly send counters (worker.ledger.send_counts), which the
#: TTL policy on ``expire_at`` removes two days after their hour.
COUNTS_COLLECTION = "email-worker-send-counts"
#: Subcollection of a request's document holding its recipients' statuses (one document each;
#: the deployment's TTL policy on ``expire_at`` covers this collection group too).
STATUSES_COLLECTION = "statuses"
# Firestore's name for the database a project gets first (what the client uses given None).
_DEFAULT_DATABASE = "(default)"


class FirestoreLedger(Ledger):
    """A :class:`Ledger` in a Firestore collection.

    ``project`` and ``database`` default to the environment's project and the (default)
    database; ``FIRESTORE_EMULATOR_HOST``, when set, points the client at an emulator.
    ``timeout_s``: the most one operation may take, retries of transient errors included,
    before the ledger counts as unavailable. The other keyword arguments are :class:`Ledger`'s.
    """

    def __init__(
        self,
        *,
        project: str | None = None,
        database: str | None = None,
        collection: str = DEFAULT_COLLECTION,
        pauses_collection: str = PAUSES_COLLECTION,
        heartbeats_collection: str = HEARTBEATS_COLLECTION,
        counts_collection: str = COUNTS_COLLECTION,
        timeout_s: float = 10.0,
        **terms: Unpack[LedgerTerms],
    ) -> None:
        self._client = firestore.Client(project=project, database=database)
        super().__init__(**terms)
        self.database = database or _DEFAULT_DATABASE
        self.collection = collection
        self._collection = self._client.collection(collection)
        self._pauses = self._client.collection(pauses_collection)
        self._instances = self._client.collection(heartbeats_collection)
        self._counts = self._client.collection(counts_collection)
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
        self._calls = _Calls(self._call)
        self._requests: _Documents[LedgerKey, Entry] = _Documents(
            self._calls, self._collection, document_id, _entry_fields, _entry
        )
        self._paused = _Documents(
            self._calls, self._pauses, pause_document_id, pause_fields, _pause_from
        )
        self._heartbeats = _Documents(
            self._calls, self._instances, heartbeat_document_id, heartbeat_fields, heartbeat_from
        )

    def __repr__(self) -> str:
        return f"FirestoreLedger(database={self.database!r}, collection={self.collection!r})"

    def record_statuses(self, key: LedgerKey, statuses: Sequence[RecipientStatus]) -> None:
        # Each recipient's status is a document of its own under the request's (which need not
        # exist), so the events reader never contends with the deliveries' claim writes.
        parent = self._requests.ref(key).collection(STATUSES_COLLECTION)
        with self._unavailable_for(naming("record statuses of", key)):
            for status in statuses:
                self._advance(parent.document(status_document_id(status)), status, key)

    def _advance(self, ref: DocumentReference, status: RecipientStatus, key: LedgerKey) -> None:
        fields = {
            # Which ledger and request: the recipient lookup (sent_to) finds status documents
            # by a collection group query, and these fields name their request.
            "ledger": self.collection,
            "service_id": key.service_id,
            "request_id": key.request_id,
            "message_id": status.message_id,
            "recipient": status.recipient,
            "event_type": status.event_type,
            "occurred_at": status.occurred_at,
            "batch": status.batch,
            "detail": status.detail,
            "expire_at": utc(self._clock() + self._retention_s),
        }
        for _ in range(CLAIM_ROUNDS):
            if self._calls.create(ref, fields):
                return
            read = self._calls.get(ref)
            if read is None:
                continue  # expired and deleted in between: create again
            stored, version = read
            if not advances(
                status.event_type,
                status.occurred_at,
                str(stored["event_type"]),
                plain_utc(stored["occurred_at"]),
            ):
                return
            if self._calls.update_if(ref, fields, version):
                return
        # Contention on one recipient's status: the event comes back from SQS and is retried.
        raise LedgerUnavailable("a recipient's status kept changing while it was written")

    def statuses(self, key: LedgerKey) -> list[RecipientStatus]:
        parent = self._requests.ref(key).collection(STATUSES_COLLECTION)
        now = self._clock()
        with self._unavailable_for(naming("read statuses of", key)):
            documents = [snapshot.to_dict() for snapshot in parent.stream(**self._call)]
        found = [
            status_from(data)
            for data in documents
            if data is not None and _epoch(data["expire_at"]) >= now
        ]
        return sorted(found, key=lambda s: (s.occurred_at, s.message_id, s.recipient))

    def sent_to(
        self, recipient: str, since: datetime, *, limit: int = 200
    ) -> list[tuple[LedgerKey, RecipientStatus]]:
        # One indexed query (ledger, recipient, occurred_at descending; terraform declares
        # the collection group index), never a scan.
        query = (
            self._client.collection_group(STATUSES_COLLECTION)
            .where(filter=FieldFilter("ledger", "==", self.collection))
            .where(filter=FieldFilter("recipient", "==", recipient))
            .where(filter=FieldFilter("occurred_at", ">=", since))
            .order_by("occurred_at", direction=firestore.Query.DESCENDING)
            .limit(limit)
        )
        now = self._clock()
        with self._unavailable_for("look up a recipient"):
            documents = [snapshot.to_dict() for snapshot in query.stream(**self._call)]
        return [
            (LedgerKey(str(data["service_id"]), str(data["request_id"])), status_from(data))
            for data in documents
            if data is not None and _epoch(data["expire_at"]) >= now
        ]

    def pauses(self) -> list[Pause]:
        with self._unavailable_for("read the pauses"):
            documents = [snapshot.to_dict() for snapshot in self._pauses.stream(**self._call)]
        found = [pause_from(data) for data in documents if data is not None]
        return sorted(found, key=lambda pause: pause.scope)

    def heartbeats(self, group: str) -> list[Heartbeat]:
        query = self._instances.where(filter=FieldFilter("group", "==", group))
        with self._unavailable_for("read the heartbeats"):
            documents = [snapshot.to_dict() for snapshot in query.stream(**self._call)]
        now = self._clock()
        found = [heartbeat_from((group, str(d["instance"])), d) for d in documents if d]
        return sorted((b for b in found if b.live_at(now)), key=lambda b: b.instance)

    def add_send_counts(self, increments: Increments, shard: int | None = None) -> None:
        shard = counts.check_shard(shard)
        with self._unavailable_for("add send counts"):
            for (service_id, hour), recipients in increments.items():
                fields = {
                    "service_id": service_id,
                    "hour": hour,
                    "recipients": firestore.Increment(recipients),
                    "expire_at": utc(hour * counts.HOUR_S + counts.COUNTER_RETENTION_S),
                }
                document_id = counts.counter_document_id(service_id, hour, shard)
                self._counts.document(document_id).set(fields, merge=True, **self._call)

    def sent_by_hour(self, service_id: str, hours: range) -> dict[int, int]:
        hour_of_id = {
            counts.counter_document_id(service_id, hour, shard): hour
            for hour in hours
            for shard in range(counts.SHARDS)
        }
        refs = [self._counts.document(document_id) for document_id in hour_of_id]
        found: dict[int, int] = {}
        with self._unavailable_for("read the send counts of " + service_id):
            for batch in counts.batches(refs):
                for snapshot in self._client.get_all(batch, **self._call):
                    if snapshot.exists:
                        hour = hour_of_id[snapshot.id]
                        recipients = int((snapshot.to_dict() or {}).get("recipients", 0))
                        found[hour] = found.get(hour, 0) + recipients
        return found

    def close(self) -> None:
        self._closed = True
        self._client.close()

    # -- storage ---------------------------------------------------------------------------

    def _writing(self, action: str, work: Callable[[], _T]) -> _T:
        with self._unavailable_for(action):
            return work()

    _reading = _writing

    @contextlib.contextmanager
    def _unavailable_for(self, action: str) -> Iterator[None]:
        try:
            yield
        except GoogleAPIError as error:
            # Only the error's type: a server message may quote what was written.
            raise LedgerUnavailable(
                f"Firestore ledger could not {action}: {type(error).__name__}"
            ) from error


class _Calls:
    """Conditional calls on single documents, each bounded by the ledger's retry and timeout.
    A document's version is its update time."""

    def __init__(self, call: Mapping[str, Any]) -> None:
        self._call = dict(call)

    def create(self, ref: DocumentReference, fields: Mapping[str, Any]) -> bool:
        """Create the document; False if it exists (Firestore refuses a second create)."""
        try:
            ref.create(dict(fields), **self._call)
        except Conflict:
            return False
        return True

    def get(self, ref: DocumentReference) -> tuple[dict[str, Any], Version] | None:
        """The document's fields and its version, or None."""
        snapshot = ref.get(**self._call)
        data = snapshot.to_dict()
        return None if data is None else (data, snapshot.update_time)

    def update_if(
        self, ref: DocumentReference, fields: Mapping[str, Any], version: Version
    ) -> bool:
        """Write ``fields`` if the document still has ``version``."""
        try:
            ref.update(dict(fields), option=_as_read(version), **self._call)
        except (FailedPrecondition, NotFound):
            return False
        return True

    def delete_if(self, ref: DocumentReference, version: Version) -> bool:
        """Delete the document if it still has ``version``."""
        try:
            ref.delete(option=_as_read(version), **self._call)
        except (FailedPrecondition, NotFound):
            return False
        return True


@dataclass(frozen=True)
class _Documents(Records[K, R]):
    """Records as the documents of ``collection``, named by ``name``."""

    calls: _Calls
    collection: CollectionReference
    name: Callable[[K], str]
    fields: Callable[[R], dict[str, Any]]
    decode: Callable[[K, Mapping[str, Any]], R]

    def ref(self, key: K) -> DocumentReference:
        return self.collection.document(self.name(key))

    def insert_if_absent(self, key: K, record: R) -> bool:
        return self.calls.create(self.ref(key), self.fields(record))

    def read(self, key: K) -> tuple[R, Version] | None:
        read = self.calls.get(self.ref(key))
        return None if read is None else (self.decode(key, read[0]), read[1])

    def write_if_version(self, key: K, record: R, version: Version) -> bool:
        return self.calls.update_if(self.ref(key), self.fields(record), version)

    def delete_if_version(self, key: K, version: Version) -> bool:
        return self.calls.delete_if(self.ref(key), version)


def _as_read(version: Version) -> Any:
    """The precondition that the document still has ``version``."""
    return firestore.Client.write_option(last_update_time=version)


def _epoch(moment: datetime) -> float:
    return moment.timestamp()


def _entry_fields(entry: Entry) -> dict[str, Any]:
    return {
        "service_id": entry.key.service_id,
        "request_id": entry.key.request_id,
        "state": entry.state,
        "content_hash": entry.content_hash,
        "owner": entry.owner,
        "lease_until": utc(entry.lease_until) if entry.lease_until is not None else None,
        "takeovers": entry.takeovers,
        "result": None if entry.result is None else result_fields(entry.result),
        "created_at": utc(entry.created_at),
        "updated_at": utc(entry.updated_at),
        # A Firestore timestamp, so the TTL policy on this field can delete the document.
        "expire_at": utc(entry.expire_at),
        "attachment_generations": _generations_field(entry.attachment_generations),
        "template_version": entry.template_version,
    }


def _generations_field(generations: tuple[int, ...] | None) -> list[str] | None:
    # As strings: a generation (microseconds since the epoch) can exceed a double's precision
    # in clients that read Firestore integers as floats.
    return None if generations is None else [str(g) for g in generations]


def _entry(key: LedgerKey, data: Mapping[str, Any]) -> Entry:
    lease_until = data.get("lease_until")
    result = data.get("result")
    return Entry(
        key=key,
        state=data["state"],
        content_hash=data["content_hash"],
        owner=data.get("owner"),
        lease_until=None if lease_until is None else _epoch(lease_until),
        takeovers=int(data.get("takeovers") or 0),
        result=None if result is None else result_from_fields(result),
        created_at=_epoch(data["created_at"]),
        updated_at=_epoch(data["updated_at"]),
        expire_at=_epoch(data["expire_at"]),
        attachment_generations=_generations(data.get("attachment_generations")),
        template_version=data.get("template_version"),
    )


def _generations(value: Any) -> tuple[int, ...] | None:
    return None if value is None else tuple(int(g) for g in value)


def _pause_from(scope: str, data: Mapping[str, Any]) -> Pause:
    return pause_from(data)
