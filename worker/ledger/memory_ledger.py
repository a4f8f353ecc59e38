"""The ledger in this process's memory, for tests and single-process demos.

It keeps the whole contract (claims, results, expiry, statuses, pauses) in dictionaries behind
one lock, and forgets everything when the process ends. Not for a deployment: the records
are private to one process, so two instances (or a worker and its restart, or the operators'
commands) would each send the same request. Use it where a test wants a real ledger without a
file or an emulator, as one uses a stub broker.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar, Unpack

from worker.ledger.base import Ledger, LedgerTerms
from worker.ledger.heartbeats import Heartbeat, HeartbeatKey
from worker.ledger.model import LedgerKey
from worker.ledger.pauses import Pause
from worker.ledger.records import K, R, Records, Version
from worker.ledger.send_counts import SHARDS, Increments, check_shard
from worker.ledger.shared import Entry
from worker.ledger.statuses import RecipientStatus, advances

__all__ = ["MemoryLedger"]

_T = TypeVar("_T")


class MemoryLedger(Ledger):
    """A :class:`Ledger` in dictionaries; the arguments are :class:`Ledger`'s."""

    def __init__(self, **terms: Unpack[LedgerTerms]) -> None:
        super().__init__(**terms)
        # Every operation runs whole under this lock, so a version is only ever checked
        # against a record no other thread can change in between.
        self._lock = threading.Lock()
        self._requests = _Table[LedgerKey, Entry]()
        self._paused: _Table[str, Pause] = _Table()
        self._heartbeats: _Table[HeartbeatKey, Heartbeat] = _Table()
        # Per key: (message id, recipient) -> the status and when it expires.
        self._statuses: dict[LedgerKey, dict[tuple[str, str], tuple[RecipientStatus, float]]] = {}
        # Per (service id, hour, shard): recipients.
        self._send_counts: dict[tuple[str, int, int], int] = {}

    def __repr__(self) -> str:
        return "MemoryLedger()"

    def record_statuses(self, key: LedgerKey, statuses: Sequence[RecipientStatus]) -> None:
        expire_at = self._clock() + self._retention_s
        with self._lock:
            kept = self._statuses.setdefault(key, {})
            for status in statuses:
                slot = (status.message_id, status.recipient)
                old = kept.get(slot)
                if old is None or advances(
                    status.event_type, status.occurred_at, old[0].event_type, old[0].occurred_at
                ):
                    kept[slot] = (status, expire_at)

    def statuses(self, key: LedgerKey) -> list[RecipientStatus]:
        now = self._clock()
        with self._lock:
            kept = list(self._statuses.get(key, {}).values())
        found = [status for status, expire_at in kept if expire_at >= now]
        return sorted(found, key=lambda s: (s.occurred_at, s.message_id, s.recipient))

    def sent_to(
        self, recipient: str, since: datetime, *, limit: int = 200
    ) -> list[tuple[LedgerKey, RecipientStatus]]:
        now = self._clock()
        with self._lock:
            found = [
                (key, status)
                for key, kept in self._statuses.items()
                for status, expire_at in kept.values()
                if status.recipient == recipient
                and status.occurred_at >= since
                and expire_at >= now
            ]
        found.sort(key=lambda entry: entry[1].occurred_at, reverse=True)
        return found[:limit]

    def pauses(self) -> list[Pause]:
        with self._lock:
            return [pause for _, (pause, _) in sorted(self._paused.rows.items())]

    def heartbeats(self, group: str) -> list[Heartbeat]:
        now = self._clock()
        with self._lock:
            found = [beat for beat, _ in self._heartbeats.rows.values() if beat.group == group]
        return sorted((b for b in found if b.live_at(now)), key=lambda b: b.instance)

    def add_send_counts(self, increments: Increments, shard: int | None = None) -> None:
        shard = check_shard(shard)
        with self._lock:
            for (service_id, hour), recipients in increments.items():
                slot = (service_id, hour, shard)
                self._send_counts[slot] = self._send_counts.get(slot, 0) + recipients

    def sent_by_hour(self, service_id: str, hours: range) -> dict[int, int]:
        found: dict[int, int] = {}
        with self._lock:
            for hour in hours:
                shards = [self._send_counts.get((service_id, hour, n)) for n in range(SHARDS)]
                if any(n is not None for n in shards):
                    found[hour] = sum(n or 0 for n in shards)
        return found

    def close(self) -> None:
        """Nothing to release; the records stay readable until the object is dropped."""
        self._closed = True

    # -- storage ---------------------------------------------------------------------------

    def _writing(self, action: str, work: Callable[[], _T]) -> _T:
        with self._lock:
            return work()

    _reading = _writing


class _Table(Records[K, R]):
    """Records in a dictionary, each with the number of the write that stored it."""

    def __init__(self) -> None:
        self.rows: dict[K, tuple[R, int]] = {}
        self._writes = itertools.count(1)

    def insert_if_absent(self, key: K, record: R) -> bool:
        return self.rows.setdefault(key, (record, next(self._writes)))[0] is record

    def read(self, key: K) -> tuple[R, Version] | None:
        return self.rows.get(key)

    def write_if_version(self, key: K, record: R, version: Version) -> bool:
        if self._version(key) != version:
            return False
        self.rows[key] = (record, next(self._writes))
        return True

    def delete_if_version(self, key: K, version: Version) -> bool:
        if self._version(key) != version:
            return False
        del self.rows[key]
        return True

    def _version(self, key: K) -> int | None:
        stored = self.rows.get(key)
        return None if stored is None else stored[1]
