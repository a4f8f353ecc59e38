"""Outcome counters: what became of each service's email, by the hour, over every instance.

The console's services page (:mod:`worker.console.services_view`) charts them. One record
per service and hour, never one per email: the worker and the events reader add their
outcomes in memory (:class:`ServiceCounter`, an addition under a lock) and write them every
few seconds, one increment per service and hour holding every kind that moved, which each
backend applies atomically (SQLite's upsert, Firestore's ``Increment``, memory under its
lock), so instances never overwrite each other's counts. Reading a service's last week is
:data:`WEEK_HOURS` reads by key. Counters expire :data:`RETENTION_S` after their hour.

The kinds (:data:`KINDS`):

* ``sent``, ``rejected``, ``failed``: requests, as the worker finished them (a result
  replayed from the ledger is not counted again);
* ``recipients``: the recipients of the ``sent`` requests, the rates' denominator;
* ``bounced``, ``complained``: recipients SES reported hard-bounced (``Permanent``, the only
  bounces SES's bounce rate counts) or complaining, as the events reader publishes them.

Counts are approximate where their sources are: an SES event SQS delivers twice is counted
twice, and what an instance counted in its last seconds before a crash is lost.
"""

from __future__ import annotations

import abc
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping

from worker.config.logs import get_logger
from worker.ledger.base import Ledger
from worker.ledger.model import LedgerUnavailable
from worker.ledger.send_counts import HOUR_S, hour_of

__all__ = [
    "KINDS",
    "RETENTION_S",
    "WEEK_HOURS",
    "HourCounts",
    "Increments",
    "ServiceCounter",
    "ServiceCountRecords",
    "counter_document_id",
    "expire_at",
    "hour_of",
]

log = get_logger()

KINDS = ("sent", "recipients", "rejected", "failed", "bounced", "complained")
#: Hours of the services page's longest chart: seven days.
WEEK_HOURS = 7 * 24
#: How long a counter is kept after its hour began: the week charted, and a day to spare.
RETENTION_S = 8 * 24 * HOUR_S

#: Counts of one service in one hour, by kind (kinds that did not move are left out).
HourCounts = dict[str, int]
#: What to add, by (service id, hour).
Increments = Mapping[tuple[str, int], Mapping[str, int]]


def counter_document_id(service_id: str, hour: int) -> str:
    """Firestore's document id of a counter (service ids are ``[a-z0-9_-]``)."""
    return f"{service_id}@{hour}"


def expire_at(hour: int) -> float:
    """When the counter of ``hour`` may be deleted (epoch seconds)."""
    return hour * HOUR_S + RETENTION_S


class ServiceCountRecords(abc.ABC):
    """The counters in one backend (:mod:`worker.ledger.service_count_stores`). Both methods
    raise :class:`LedgerUnavailable` when the store fails."""

    @abc.abstractmethod
    def add(self, increments: Increments) -> None:
        """Add ``increments``, atomically against other instances' additions."""

    @abc.abstractmethod
    def read(self, service_id: str, hours: range) -> dict[int, HourCounts]:
        """``service_id``'s counters of ``hours`` (by key), by hour; hours without one are
        left out."""


class ServiceCounter:
    """Counts outcomes in memory and adds them to ``ledger``'s counters every
    ``flush_interval_s``, from a background thread started by the first count."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        clock: Callable[[], float] = time.time,
        flush_interval_s: float = 5.0,
    ) -> None:
        from worker.ledger.service_count_stores import service_counts_of

        self._records = service_counts_of(ledger)
        self._clock = clock
        self._flush_interval_s = flush_interval_s
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._pending: Counter[tuple[str, int, str]] = Counter()
        self._closed = threading.Event()
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
        when the ledger cannot be reached)."""
        with self._flushing:
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
                log.warning("could not add the outcome counts to the ledger", error=str(error)[:300])
                with self._lock:
                    self._pending.update(pending)

    def close(self) -> None:
        """Stop the background flushes and flush what is left."""
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()

    def _flush_regularly(self) -> None:
        while not self._closed.wait(self._flush_interval_s):
            self.flush()
