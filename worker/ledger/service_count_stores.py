"""Which backend keeps a ledger's outcome counters (:mod:`worker.ledger.service_counts`).

Each service and hour is ``SHARDS`` counters (:mod:`worker.ledger.send_counts`); a flush adds
to one, a read sums them all.

* SQLite: a ``service_counts`` table beside the ledger's, one row per service, hour and shard
  with a column per kind, written through the ledger's own connection and group commit; a
  read is one range of the primary key. Expired rows are deleted at most once an hour, by a
  write. A table made before sharding is rebuilt when first opened, its rows as shard 0.
* Firestore: one document per service, hour and shard (``service@hour`` for shard 0, the id
  of the counters before sharding, ``service@hour@shard`` for the others) in
  ``email-worker-service-counts``, each kind a field added with ``Increment``; a flush is one
  batched write, a read ``get_all`` by id in batches of ``READ_BATCH_KEYS``. The TTL policy
  on ``expire_at`` (terraform, which also exempts it from indexing) deletes old ones; the
  hour is only in the id, so no indexed field grows monotonically. Ids begin with the
  service, so one hour's writes do not crowd one stretch of the key space.
* Memory: a dictionary under the ledger's lock.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from worker.ledger.base import Ledger
from worker.ledger.send_counts import SHARDS, batches, check_shard, counter_document_id
from worker.ledger.service_counts import (
    KINDS,
    HourCounts,
    Increments,
    ServiceCountRecords,
    expire_at,
)
from worker.ledger.sqlite_schema import add_shard_key

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
    shard      INTEGER NOT NULL DEFAULT 0,
    sent       INTEGER NOT NULL DEFAULT 0,
    recipients INTEGER NOT NULL DEFAULT 0,
    rejected   INTEGER NOT NULL DEFAULT 0,
    failed     INTEGER NOT NULL DEFAULT 0,
    bounced    INTEGER NOT NULL DEFAULT 0,
    complained INTEGER NOT NULL DEFAULT 0,
    expire_at  REAL NOT NULL,
    PRIMARY KEY (service_id, hour, shard)
) WITHOUT ROWID;
"""
_SQLITE_ADD = """
INSERT INTO service_counts
    (service_id, hour, shard, sent, recipients, rejected, failed, bounced, complained,
    expire_at)
VALUES (:service_id, :hour, :shard, :sent, :recipients, :rejected, :failed, :bounced,
    :complained, :expire_at)
ON CONFLICT (service_id, hour, shard) DO UPDATE SET
    sent = sent + excluded.sent,
    recipients = recipients + excluded.recipients,
    rejected = rejected + excluded.rejected,
    failed = failed + excluded.failed,
    bounced = bounced + excluded.bounced,
    complained = complained + excluded.complained
"""
# One range of the primary key, every shard of each hour summed.
_SQLITE_READ = """
SELECT hour, SUM(sent) AS sent, SUM(recipients) AS recipients, SUM(rejected) AS rejected,
    SUM(failed) AS failed, SUM(bounced) AS bounced, SUM(complained) AS complained
FROM service_counts
WHERE service_id = :service_id AND hour BETWEEN :first AND :last AND expire_at >= :now
GROUP BY hour
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
        # Per (service id, hour, shard): counts by kind.
        self._counts: dict[tuple[str, int, int], dict[str, int]] = {}

    def add(self, increments: Increments, shard: int | None = None) -> None:
        shard = check_shard(shard)

        def add() -> None:
            for (service_id, hour), kinds in increments.items():
                counts = self._counts.setdefault((service_id, hour, shard), {})
                for kind, count in kinds.items():
                    counts[kind] = counts.get(kind, 0) + count

        self._ledger._writing("add outcome counts", add)

    def read(self, service_id: str, hours: range) -> dict[int, HourCounts]:
        now = self._ledger._clock()

        def read() -> dict[int, HourCounts]:
            found: dict[int, HourCounts] = {}
            for hour in hours:
                if expire_at(hour) >= now:
                    shards = [self._counts.get((service_id, hour, n)) for n in range(SHARDS)]
                    _sum_into(found, hour, [counts for counts in shards if counts])
            return found

        return self._ledger._reading("read outcome counts", read)


class _SqliteCounts(ServiceCountRecords):
    def __init__(self, ledger: Any) -> None:
        self._ledger = ledger
        self._next_sweep = 0.0
        conn = ledger._conn

        def create() -> None:
            conn.executescript(SQLITE_SCHEMA)
            add_shard_key(conn, "service_counts", SQLITE_SCHEMA)

        ledger._reading("create the service_counts table", create)

    def add(self, increments: Increments, shard: int | None = None) -> None:
        if not increments:
            return
        shard = check_shard(shard)
        rows = [
            {
                "service_id": service_id,
                "hour": hour,
                "shard": shard,
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

    def add(self, increments: Increments, shard: int | None = None) -> None:
        from google.cloud import firestore

        from worker.ledger.shared import utc

        shard = check_shard(shard)
        slots = list(increments.items())
        with self._ledger._unavailable_for("add outcome counts"):
            for batched in batches(slots, _BATCH_WRITES):
                batch = self._ledger._client.batch()
                for (service_id, hour), kinds in batched:
                    fields: dict[str, Any] = {
                        kind: firestore.Increment(count) for kind, count in kinds.items()
                    }
                    # The hour only in the id: an indexed field that only grows would make
                    # every instance's writes land on one end of its index.
                    fields.update(service_id=service_id, expire_at=utc(expire_at(hour)))
                    document_id = counter_document_id(service_id, hour, shard)
                    batch.set(self._collection.document(document_id), fields, merge=True)
                batch.commit(**self._ledger._call)

    def read(self, service_id: str, hours: range) -> dict[int, HourCounts]:
        hour_of_id = {
            counter_document_id(service_id, hour, shard): hour
            for hour in hours
            for shard in range(SHARDS)
        }
        refs = [self._collection.document(document_id) for document_id in hour_of_id]
        now = self._ledger._clock()
        shards: dict[int, list[dict[str, Any]]] = {}
        with self._ledger._unavailable_for("read the outcome counts of " + service_id):
            for batch in batches(refs):
                for snapshot in self._ledger._client.get_all(batch, **self._ledger._call):
                    data = snapshot.to_dict() if snapshot.exists else None
                    if data and data["expire_at"].timestamp() >= now:
                        shards.setdefault(hour_of_id[snapshot.id], []).append(data)
        found: dict[int, HourCounts] = {}
        for hour, counts in shards.items():
            _sum_into(found, hour, counts)
        return found


def _sum_into(found: dict[int, HourCounts], hour: int, shards: list[Any]) -> None:
    """Put the kinds of ``shards`` (an hour's counters, by kind) summed in ``found[hour]``,
    unless all are zero."""
    total = _present({kind: sum(int(s.get(kind) or 0) for s in shards) for kind in KINDS})
    if total:
        found[hour] = total
