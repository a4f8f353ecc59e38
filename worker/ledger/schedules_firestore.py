"""Schedule records in Firestore (:mod:`worker.ledger.schedules`).

One document per scheduled request in the ``email-worker-schedules`` collection, named like
the request's own (:func:`~worker.ledger.firestore_documents.document_id`) and written with
the ledger's conditional calls. Each holds a ``shard`` (0 to :data:`SHARDS` - 1, from a hash
of its key): the range reads ask each shard for its records due before a time, so neither
the creation of many records nor the dispatchers' reads at one due time fall on a single
monotonically increasing stretch of the ``due_at`` index. They need the composite indexes
(shard, state, due_at) and (service_id, state, due_at), which the deployment creates; the
TTL policy on ``expire_at`` deletes records once their retention has passed.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from typing import Any

from google.cloud.firestore_v1.base_query import FieldFilter

from worker.ledger.firestore_documents import document_id, plain_utc
from worker.ledger.firestore_ledger import FirestoreLedger, _Documents
from worker.ledger.model import LedgerKey
from worker.ledger.schedules import Schedule, ScheduleRecords, ScheduleState
from worker.ledger.shared import utc

__all__ = ["COLLECTION", "SHARDS", "firestore_schedules", "shard_of"]

COLLECTION = "email-worker-schedules"
#: How many stretches of the due-time index the records are spread over.
SHARDS = 16
_SCHEDULED = ScheduleState.SCHEDULED.value


def shard_of(key: LedgerKey) -> int:
    """The shard of ``key``'s record: stable, and even over keys."""
    digest = hashlib.sha256(f"{key.service_id}\n{key.request_id}".encode()).digest()
    return digest[0] % SHARDS


class _Schedules(_Documents[LedgerKey, Schedule], ScheduleRecords):
    # A document holds at most 1 MiB, the other fields and their names included.
    max_data_bytes = 1_000_000

    def due(self, before: float, limit: int) -> list[LedgerKey]:
        # Every instance starts at a random shard, so that they do not all take the same
        # records first when more are due than one take holds.
        start = random.randrange(SHARDS)  # noqa: S311 - spreading load, not a secret
        keys: list[LedgerKey] = []
        for step in range(SHARDS):
            if len(keys) >= limit:
                break
            query = (
                self.collection.where(filter=FieldFilter("shard", "==", (start + step) % SHARDS))
                .where(filter=FieldFilter("state", "==", _SCHEDULED))
                .where(filter=FieldFilter("due_at", "<=", utc(before)))
                .order_by("due_at")
                .limit(limit - len(keys))
            )
            keys.extend(_key(s.to_dict() or {}) for s in query.stream(**self.calls._call))
        return keys

    def of_service(self, service_id: str, before: float | None, limit: int) -> list[Schedule]:
        query = self.collection.where(filter=FieldFilter("service_id", "==", service_id)).where(
            filter=FieldFilter("state", "==", _SCHEDULED)
        )
        if before is not None:
            query = query.where(filter=FieldFilter("due_at", "<=", utc(before)))
        found = query.order_by("due_at").limit(limit).stream(**self.calls._call)
        documents = [snapshot.to_dict() or {} for snapshot in found]
        return [_schedule(_key(data), data) for data in documents]


def firestore_schedules(ledger: FirestoreLedger) -> ScheduleRecords:
    """The schedule records in ``ledger``'s database."""
    collection = ledger._client.collection(COLLECTION)
    return _Schedules(ledger._calls, collection, document_id, _fields, _schedule)


def _key(data: Mapping[str, Any]) -> LedgerKey:
    return LedgerKey(str(data["service_id"]), str(data["request_id"]))


def _fields(schedule: Schedule) -> dict[str, Any]:
    lease_until = schedule.lease_until
    return {
        "service_id": schedule.key.service_id,
        "request_id": schedule.key.request_id,
        "shard": shard_of(schedule.key),
        "due_at": utc(schedule.due_at),
        "data": schedule.data,
        "message_id": schedule.message_id,
        "content_hash": schedule.content_hash,
        "state": schedule.state.value,
        "owner": schedule.owner,
        "lease_until": None if lease_until is None else utc(lease_until),
        "created_at": utc(schedule.created_at),
        "expire_at": utc(schedule.expire_at),
    }


def _schedule(key: LedgerKey, data: Mapping[str, Any]) -> Schedule:
    lease_until = data.get("lease_until")
    return Schedule(
        key=key,
        due_at=_epoch(data["due_at"]),
        data=bytes(data["data"]),
        message_id=str(data["message_id"]),
        content_hash=str(data["content_hash"]),
        state=ScheduleState(data["state"]),
        owner=data.get("owner"),
        lease_until=None if lease_until is None else _epoch(lease_until),
        created_at=_epoch(data["created_at"]),
        expire_at=_epoch(data["expire_at"]),
    )


def _epoch(moment: Any) -> float:
    return plain_utc(moment).timestamp()
