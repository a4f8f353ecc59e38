"""The outcome counter a worker or events reader keeps in memory and flushes to the ledger's
hourly counters (:mod:`worker.ledger.service_counts`): adding a count is an addition under a
lock, and a flush every few seconds writes one increment per service and hour."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

from worker.ledger.base import Ledger
from worker.ledger.flushed_counts import FlushedCounts
from worker.ledger.model import LedgerUnavailable
from worker.ledger.send_counts import hour_of
from worker.ledger.service_count_stores import service_counts_of

__all__ = ["FLUSH_INTERVAL_S", "ServiceCounter"]

#: How often a counter writes what it counted, unless told otherwise.
FLUSH_INTERVAL_S = 5.0


class ServiceCounter(FlushedCounts):
    """Counts outcomes in memory and adds them to ``ledger``'s counters every
    ``flush_interval_s``, from a background thread started by the first count."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        clock: Callable[[], float] = time.time,
        flush_interval_s: float = FLUSH_INTERVAL_S,
    ) -> None:
        super().__init__(
            ledger,
            flush_interval_s=flush_interval_s,
            kind="outcome counts",
            thread_name="service-counts",
        )
        self._records = service_counts_of(ledger)
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: Counter[tuple[str, int, str]] = Counter()

    def add(self, service_id: str, kind: str, count: int = 1) -> None:
        """Count ``count`` of ``kind`` (one of :data:`KINDS`) for ``service_id`` now."""
        if count <= 0:
            return
        hour = hour_of(self._clock())
        with self._lock:
            self._pending[(service_id, hour, kind)] += count
            self._start_flushing()

    def _write_pending(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, Counter()
        if not pending:
            return
        increments: dict[tuple[str, int], dict[str, int]] = {}
        for (service_id, hour, kind), count in pending.items():
            increments.setdefault((service_id, hour), {})[kind] = count
        try:
            self._records.add(increments)
        except LedgerUnavailable:
            with self._lock:
                self._pending.update(pending)
            raise
