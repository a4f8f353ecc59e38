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
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from worker.ledger.base import Ledger, Version
from worker.ledger.model import DEFAULT_RETENTION_S, LedgerKey
from worker.ledger.pauses import Pause
from worker.ledger.shared import Entry
from worker.ledger.statuses import RecipientStatus, advances

__all__ = ["MemoryLedger"]

_T = TypeVar("_T")


class MemoryLedger(Ledger):
    """A :class:`Ledger` in dictionaries; the arguments are :class:`Ledger`'s."""

    def __init__(
        self,
        *,
        claim_lease_s: float,
        retention_s: float = DEFAULT_RETENTION_S,
        takeover_wait_s: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(claim_lease_s, retention_s, takeover_wait_s, clock)
        # Every operation runs whole under this lock, so a version is only ever checked
        # against a record no other thread can change in between.
        self._lock = threading.Lock()
        self._entries: dict[LedgerKey, tuple[Entry, int]] = {}
        self._pauses: dict[str, tuple[Pause, int]] = {}
        # Per key: (message id, recipient) -> the status and when it expires.
        self._statuses: dict[LedgerKey, dict[tuple[str, str], tuple[RecipientStatus, float]]] = {}
        self._versions = itertools.count(1)  # a new one for every write

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

    def pauses(self) -> list[Pause]:
        with self._lock:
            return [pause for _, (pause, _) in sorted(self._pauses.items())]

    def close(self) -> None:
        """Nothing to release; the records stay readable until the object is dropped."""

    # -- storage primitives ----------------------------------------------------------------

    def _writing(self, action: str, work: Callable[[], _T]) -> _T:
        with self._lock:
            return work()

    def _reading(self, action: str, work: Callable[[], _T]) -> _T:
        with self._lock:
            return work()

    def _insert_if_absent(self, entry: Entry) -> bool:
        return self._entries.setdefault(entry.key, (entry, next(self._versions)))[0] is entry

    def _read(self, key: LedgerKey) -> tuple[Entry, Version] | None:
        return self._entries.get(key)

    def _write_if_version(self, entry: Entry, version: Version) -> bool:
        return _replace_if(self._entries, entry.key, entry, version, next(self._versions))

    def _insert_pause_if_absent(self, pause: Pause) -> bool:
        return self._pauses.setdefault(pause.scope, (pause, next(self._versions)))[0] is pause

    def _read_pause(self, scope: str) -> tuple[Pause, Version] | None:
        return self._pauses.get(scope)

    def _write_pause_if_version(self, pause: Pause, version: Version) -> bool:
        return _replace_if(self._pauses, pause.scope, pause, version, next(self._versions))

    def _delete_pause_if_version(self, scope: str, version: Version) -> bool:
        stored = self._pauses.get(scope)
        if stored is None or stored[1] != version:
            return False
        del self._pauses[scope]
        return True


_K = TypeVar("_K")
_V = TypeVar("_V")


def _replace_if(
    table: dict[_K, tuple[_V, int]], key: _K, value: _V, version: Version, new_version: int
) -> bool:
    """Put ``value`` at ``key`` if what is there has ``version``."""
    stored = table.get(key)
    if stored is None or stored[1] != version:
        return False
    table[key] = (value, new_version)
    return True
