"""Which backend keeps a ledger's outcome counters (:mod:`worker.ledger.service_counts`).

* SQLite: a ``service_counts`` table beside the ledger's, one row per service and hour with a
  column per kind, written through the ledger's own connection and group commit; a read is a
  range of the primary key. Expired rows are deleted at most once an hour, by a write.
* Firestore: one document per service and hour (``service@hour``) in
  ``email-worker-service-counts``, each kind a field added with ``Increment``; a flush is one
  batched write, a read one ``get_all`` by id. The TTL policy on ``expire_at`` (terraform,
  which also exempts it from indexing) deletes old ones; the hour is only in the id, so no
  indexed field grows monotonically. Ids begin with the service, so one hour's writes do not
  crowd one stretch of the key space.
* Memory: a dictionary under the ledger's lock.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from worker.ledger.base import Ledger
from worker.ledger.service_counts import (
    KINDS,
    HourCounts,
    Increments,
    ServiceCountRecords,
    counter_document_id,
    expire_at,
)

__all__ = ["FIRESTORE_COLLECTION", "SQLITE_SCHEMA", "service_counts_of"]

FIRESTORE_COLLECTION = "email-worker-service-counts"
# Firestore's most writes in one batch.
_BATCH_WRITES = 500
_SWEEP_INTERVAL_S = 3600.0

# The columns are KINDS, spelled out (a test checks they agree).
SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS service_counts (
    service_id TEXT NOT NULL,
    hour       INTEGER NOT NULL,
    sent       INTEGER NOT NULL DEFAULT 0,
    recipients INTEGER NOT NULL DEFAULT 0,
    rejected   INTEGER NOT NULL DEFAULT 0,
    failed     INTEGER NOT NULL DEFAULT 0,
    bounced    INTEGER NOT NULL DEFAULT 0,
    complained INTEGER NOT NULL DEFAULT 0,
    expire_at  REAL NOT NULL,
    PRIMARY KEY (service_id, hour)
) WITHOUT ROWID;
"""
_SQLITE_ADD = """
INSERT INTO service_counts
    (service_id, hour, sent, recipients, rejected, failed, bounced, complained, expire_at)
VALUES (:service_id, :hour, :sent, :recipients, :rejected, :failed, :bounced, :complained,
    :expire_at)
ON CONFLICT (service_id, hour) DO UPDATE SET
    sent = sent + excluded.sent,
    recipients = recipients + excluded.recipients,
    rejected = rejected + excluded.rejected,
    failed = failed + excluded.failed,
    bounced = bounced + excluded.bounced,
    complained = complained + excluded.complained
"""
_SQLITE_READ = """
SELECT hour, sent, recipients, rejected, failed, bounced, complained FROM service_counts
WHERE service_id = :service_id AND hour BETWEEN :first AND :last AND expire_at >= :now
"""
_SQLITE_SWEEP = "DELETE FROM service_counts WHERE expire_at < :now"

_STORES: weakref.WeakKeyDictionary[Ledger, ServiceCountRecords] = weakref.WeakKeyDictionary()
_STORES_LOCK = threading.Lock()


def service_counts_of(ledger: Ledger) -> ServiceCountRecords:
    """``ledger``'s outcome counters: the same object for every caller, so that the memory
    backend's counters are shared like the ledger's own records."""
    with _STORES_LOCK:
        store = _STORES.get(ledger)
        if store is None:
            store = _STORES[ledger] = _store_for(ledger)
        return store


def _store_for(ledger: Ledger) -> ServiceCountRecords:
    # Imported here: each backend's module imports its own client library.
    from worker.ledger.firestore_ledger import FirestoreLedger
    from worker.ledger.memory_ledger import MemoryLedger
    from worker.ledger.sqlite_ledger import SqliteLedger

    if isinstance(ledger, SqliteLedger):
        return _SqliteCounts(ledger)
    if isinstance(ledger, FirestoreLedger):
        return _FirestoreCounts(ledger)
    if isinstance(ledger, MemoryLedger):
        return _MemoryCounts(ledger)
    raise TypeError(f"no outcome counters for {type(ledger).__name__}")


def _present(counts: dict[str, Any]) -> HourCounts:
    return {kind: int(counts.get(kind) or 0) for kind in KINDS if counts.get(kind)}


class _MemoryCounts(ServiceCountRecords):
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._counts: dict[tuple[str, int], dict[str, int]] = {}

    def add(self, increments: Increments) -> None:
        def add() -> None:
            for slot, kinds in increments.items():
                counts = self._counts.setdefault(slot, {})
                for kind, count in kinds.items():
                    counts[kind] = counts.get(kind, 0) + count

        self._ledger._writing("add outcome counts", add)

    def read(self, service_id: str, hours: range) -> dict[int, HourCounts]:
        now = self._ledger._clock()

        def read() -> dict[int, HourCounts]:
            kept = [hour for hour in hours if expire_at(hour) >= now]
            found = {hour: self._counts.get((service_id, hour)) for hour in kept}
            return {hour: _present(counts) for hour, counts in found.items() if counts}

        return self._ledger._reading("read outcome counts", read)


class _SqliteCounts(ServiceCountRecords):
    def __init__(self, ledger: Any) -> None:
        self._ledger = ledger
        self._next_sweep = 0.0
        conn = ledger._conn
        ledger._reading(
            "create the service_counts table", lambda: conn.executescript(SQLITE_SCHEMA)
        )

    def add(self, increments: Increments) -> None:
        if not increments:
            return
        rows = [
            {
                "service_id": service_id,
                "hour": hour,
                **{kind: kinds.get(kind, 0) for kind in KINDS},
                "expire_at": expire_at(hour),
            }
            for (service_id, hour), kinds in increments.items()
        ]
        conn = self._ledger._conn

        def add() -> None:
            now = self._ledger._clock()
            if now >= self._next_sweep:
                conn.execute(_SQLITE_SWEEP, {"now": now})
                self._next_sweep = now + _SWEEP_INTERVAL_S
            conn.executemany(_SQLITE_ADD, rows)

        self._ledger._writing("add outcome counts", add)

    def read(self, service_id: str, hours: range) -> dict[int, HourCounts]:
        if not hours:
            return {}
        params = {
            "service_id": service_id,
            "first": hours[0],
            "last": hours[-1],
            "now": self._ledger._clock(),
        }
        rows = self._ledger._reading(
            "read the outcome counts of " + service_id,
            lambda: self._ledger._conn.execute(_SQLITE_READ, params).fetchall(),
        )
        return {int(row["hour"]): _present(dict(row)) for row in rows if _present(dict(row))}


class _FirestoreCounts(ServiceCountRecords):
    def __init__(self, ledger: Any) -> None:
        self._ledger = ledger
        self._collection = ledger._client.collection(FIRESTORE_COLLECTION)

    def add(self, increments: Increments) -> None:
        from google.cloud import firestore

        from worker.ledger.shared import utc

        slots = list(increments.items())
        with self._ledger._unavailable_for("add outcome counts"):
            for start in range(0, len(slots), _BATCH_WRITES):
                batch = self._ledger._client.batch()
                for (service_id, hour), kinds in slots[start : start + _BATCH_WRITES]:
                    fields: dict[str, Any] = {
                        kind: firestore.Increment(count) for kind, count in kinds.items()
                    }
                    # The hour only in the id: an indexed field that only grows would make
                    # every instance's writes land on one end of its index.
                    fields.update(service_id=service_id, expire_at=utc(expire_at(hour)))
                    ref = self._collection.document(counter_document_id(service_id, hour))
                    batch.set(ref, fields, merge=True)
                batch.commit(**self._ledger._call)

    def read(self, service_id: str, hours: range) -> dict[int, HourCounts]:
        if not hours:
            return {}
        refs = [self._collection.document(counter_document_id(service_id, h)) for h in hours]
        now = self._ledger._clock()
        with self._ledger._unavailable_for("read the outcome counts of " + service_id):
            snapshots = list(self._ledger._client.get_all(refs, **self._ledger._call))
        found: dict[int, HourCounts] = {}
        for snapshot in snapshots:
            data = snapshot.to_dict() if snapshot.exists else None
            if data and data["expire_at"].timestamp() >= now and _present(data):
                found[int(snapshot.id.rpartition("@")[2])] = _present(data)
        return found
