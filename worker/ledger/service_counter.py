"""The outcome counter a worker or events reader keeps in memory and flushes to the ledger's
hourly counters (:mod:`worker.ledger.service_counts`): adding a count is an addition under a
lock, and a flush every few seconds writes one increment per service and hour."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

from worker.config.logs import get_logger
from worker.ledger.base import Ledger
from worker.ledger.model import LedgerUnavailable
from worker.ledger.send_counts import hour_of
from worker.ledger.service_count_stores import service_counts_of

__all__ = ["FLUSH_INTERVAL_S", "ServiceCounter"]

log = get_logger()

#: How often a counter writes what it counted, unless told otherwise.
FLUSH_INTERVAL_S = 5.0


class ServiceCounter:
    """Counts outcomes in memory and adds them to ``ledger``'s counters every
    ``flush_interval_s``, from a background thread started by the first count."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        clock: Callable[[], float] = time.time,
        flush_interval_s: float = FLUSH_INTERVAL_S,
    ) -> None:
        self._ledger = ledger
        self._records = service_counts_of(ledger)
        self._clock = clock
        self._flush_interval_s = flush_interval_s
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._pending: Counter[tuple[str, int, str]] = Counter()
        self._closed = threading.Event()  # no more background flushes
        self._finished = False  # no more writes at all (under _flushing)
        self._thread: threading.Thread | None = None

    def add(self, service_id: str, kind: str, count: int = 1) -> None:
        """Count ``count`` of ``kind`` (one of :data:`KINDS`) for ``service_id`` now."""
        if count <= 0:
            return
        hour = hour_of(self._clock())
        with self._lock:
            self._pending[(service_id, hour, kind)] += count
            if self._thread is None and not self._closed.is_set():
                self._thread = threading.Thread(
                    target=self._flush_regularly, name="service-counts", daemon=True
                )
                self._thread.start()

    def flush(self) -> None:
        """Add what was counted since the last flush to the ledger (kept for the next flush
        when the ledger cannot be reached). Nothing once closed."""
        with self._flushing:
            if not self._finished:
                self._write_pending()

    def close(self) -> None:
        """Stop the background flushes and flush what is left; nothing is written after."""
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._flushing:
            if not self._finished:
                self._write_pending()
            self._finished = True

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
        except LedgerUnavailable as error:
            if self._ledger.closed:
                self._stop_for_the_closed_ledger(len(increments))
                return
            log.warning("could not add the outcome counts to the ledger", error=str(error)[:300])
            with self._lock:
                self._pending.update(pending)

    def _stop_for_the_closed_ledger(self, slots: int) -> None:
        """The ledger was closed under these counts (the process is stopping): no write can
        work again, so the flushes stop, and say so once."""
        self._finished = True
        self._closed.set()
        log.info("the ledger is closed: outcome counts no longer written", slots=slots)

    def _flush_regularly(self) -> None:
        while not self._closed.wait(self._flush_interval_s):
            self.flush()
