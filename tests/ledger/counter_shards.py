"""What the counter tests look at inside each backend: which shards hold a counter, and how a
read reached the storage (by key, in how many batches, or by a scan)."""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from worker.ledger import FirestoreLedger, Ledger, MemoryLedger, SqliteLedger
from worker.ledger.send_counts import SHARDS, counter_document_id
from worker.ledger.service_count_stores import FIRESTORE_COLLECTION, service_counts_of
from worker.ledger.service_counts import KINDS


def send_count_shards(ledger: Ledger, service_id: str, hour: int) -> dict[int, int]:
    """The recipients each shard of ``service_id``'s counter of ``hour`` holds."""
    if isinstance(ledger, MemoryLedger):
        kept = ledger._send_counts.items()
        return {s: n for (sid, h, s), n in kept if (sid, h) == (service_id, hour)}
    if isinstance(ledger, SqliteLedger):
        rows = ledger._conn.execute(
            "SELECT shard, recipients FROM send_counts WHERE service_id = ? AND hour = ?",
            (service_id, hour),
        ).fetchall()
        return {int(row[0]): int(row[1]) for row in rows}
    assert isinstance(ledger, FirestoreLedger)
    found = _firestore_shards(ledger, ledger._counts, service_id, hour)
    return {shard: int(data["recipients"]) for shard, data in found.items()}


def service_count_shards(ledger: Ledger, service_id: str, hour: int) -> dict[int, dict[str, int]]:
    """The counts by kind each shard of ``service_id``'s outcome counter of ``hour`` holds
    (kinds at zero left out)."""
    if isinstance(ledger, MemoryLedger):
        counts: dict[tuple[str, int, int], dict[str, int]] = _store_counts(ledger)
        return {s: dict(c) for (sid, h, s), c in counts.items() if (sid, h) == (service_id, hour)}
    if isinstance(ledger, SqliteLedger):
        rows = ledger._conn.execute(
            "SELECT * FROM service_counts WHERE service_id = ? AND hour = ?", (service_id, hour)
        ).fetchall()
        return {int(row["shard"]): _kinds(dict(row)) for row in rows}
    assert isinstance(ledger, FirestoreLedger)
    collection = ledger._client.collection(FIRESTORE_COLLECTION)
    found = _firestore_shards(ledger, collection, service_id, hour)
    return {shard: _kinds(data) for shard, data in found.items()}


@dataclass
class ReadLog:
    """How reads reached the storage while watched."""

    #: Requests to the storage (memory: none; SQLite: statements; Firestore: get_all calls).
    batches: int = 0
    #: Keys asked for by those requests (memory: dictionary lookups; SQLite: every shard of
    #: the hours in the statements' ranges).
    keys: int = 0
    #: Reads that went through a whole table or collection.
    scans: int = 0
    #: SQLite: the query plans of the statements.
    plans: list[str] = field(default_factory=list)


@contextlib.contextmanager
def watching_reads(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch, *, outcome_counts: bool
) -> Iterator[ReadLog]:
    """Watch the reads of the send counters (or, with ``outcome_counts``, the outcome
    counters) of ``ledger`` within the block."""
    log = ReadLog()
    if isinstance(ledger, MemoryLedger):
        if outcome_counts:
            store = service_counts_of(ledger)
            monkeypatch.setattr(store, "_counts", _KeyReads(log, _store_counts(ledger)))
        else:
            monkeypatch.setattr(ledger, "_send_counts", _KeyReads(log, ledger._send_counts))
        yield log
    elif isinstance(ledger, SqliteLedger):
        statements: list[str] = []
        ledger._conn.set_trace_callback(statements.append)
        try:
            yield log
        finally:
            ledger._conn.set_trace_callback(None)
        _explain(ledger._conn, statements, log)
    else:
        assert isinstance(ledger, FirestoreLedger)
        get_all = ledger._client.get_all

        def counted(references: list[Any], **kwargs: Any) -> Any:
            log.batches += 1
            log.keys += len(references)
            return get_all(references, **kwargs)

        monkeypatch.setattr(ledger._client, "get_all", counted)
        try:
            yield log
        finally:  # reads after the block are not this log's
            monkeypatch.setattr(ledger._client, "get_all", get_all)


class _KeyReads(dict[Any, Any]):
    """A dictionary that counts lookups by key and calls any walk through it a scan."""

    def __init__(self, log: ReadLog, contents: dict[Any, Any]) -> None:
        super().__init__(contents)
        self._log = log

    def get(self, key: Any, default: Any = None) -> Any:
        self._log.keys += 1
        return super().get(key, default)

    def __iter__(self) -> Iterator[Any]:
        self._log.scans += 1
        return super().__iter__()

    def items(self) -> Any:
        self._log.scans += 1
        return super().items()

    def values(self) -> Any:
        self._log.scans += 1
        return super().values()


# The range of hours in a traced (parameters filled in) read of the counters.
_HOUR_RANGE = re.compile(r"hour BETWEEN (-?\d+) AND (-?\d+)")


def _explain(conn: sqlite3.Connection, statements: list[str], log: ReadLog) -> None:
    for statement in statements:
        if statement.lstrip().upper().startswith("SELECT"):
            log.batches += 1
            plan = " ".join(str(row[3]) for row in conn.execute("EXPLAIN QUERY PLAN " + statement))
            log.plans.append(plan)
            log.scans += "SCAN" in plan
            for first, last in _HOUR_RANGE.findall(statement):
                log.keys += (int(last) - int(first) + 1) * SHARDS


def _store_counts(ledger: MemoryLedger) -> Any:
    return vars(service_counts_of(ledger))["_counts"]


def _firestore_shards(
    ledger: FirestoreLedger, collection: Any, service_id: str, hour: int
) -> dict[int, dict[str, Any]]:
    found = {}
    for shard in range(SHARDS):
        snapshot = collection.document(counter_document_id(service_id, hour, shard)).get()
        if snapshot.exists:
            found[shard] = snapshot.to_dict()
    return found


def _kinds(data: dict[str, Any]) -> dict[str, int]:
    return {kind: int(data[kind]) for kind in KINDS if data.get(kind)}
