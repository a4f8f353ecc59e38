"""Each service's recipients sent in the last day, over every instance: its ``max_per_day``.

:class:`DailyCounts` counts a worker's sends in memory and adds them to the ledger's hourly
counters (:mod:`worker.ledger.send_counts`) every ``flush_interval_s``, in one increment per
service and hour, from a background thread: no ledger write per email. What a service sent
is the ledger's sum over the last day, read again at most every ``refresh_s``, plus what this
worker has counted since, plus the sends it has under way. So one instance never goes past a
cap; other instances' sends show up within about ``flush_interval_s + refresh_s``, and
several instances can together overshoot a cap by what they send in that time. The hourly
counters make the window reopen an hour at a time. A refresh reads only the hours that can still
change: the totals of final hours are kept (:mod:`worker.ledger.final_hours`), so it is
usually the current hour's shards, not the whole day's.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

from worker.ledger import Ledger, LedgerUnavailable
from worker.ledger.final_hours import FinalHours, settle_margin_s
from worker.ledger.flushed_counts import FlushedCounts
from worker.ledger.send_counts import HOUR_S, hour_of, window_hours

__all__ = ["DailyCounts"]


class DailyCounts(FlushedCounts):
    """Recipients sent per service in the last day, shared through ``ledger``."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        clock: Callable[[], float] = time.time,
        flush_interval_s: float = 5.0,
        refresh_s: float = 5.0,
    ) -> None:
        super().__init__(
            ledger,
            flush_interval_s=flush_interval_s,
            kind="send counts",
            thread_name="daily-counts",
        )
        self._final = FinalHours[int](settle_margin_s(flush_interval_s))  # the ledger's sums
        self._clock = clock
        self._refresh_s = refresh_s
        self._lock = threading.Lock()
        self._pending: Counter[tuple[str, int]] = Counter()
        # Recipients of sends under way, per service (set aside by take).
        self._sending: Counter[str] = Counter()
        # Per service: (hour read in, when read, the ledger's sum then plus flushes since).
        self._known: dict[str, tuple[int, float, int]] = {}

    def take(self, service_id: str, recipients: int, cap: int | None) -> int | None:
        """Set ``recipients`` aside for a send of ``service_id`` if they fit in ``cap`` (any
        number fits in None) with what it sent and is sending; then None, and the send must
        be :meth:`settle`d. Otherwise what the service sent and is sending, and nothing is
        set aside. Raises LedgerUnavailable as :meth:`sent` does."""
        if cap is None:  # nothing to read: a service without a cap is only counted
            with self._lock:
                self._sending[service_id] += recipients
            return None
        sent = self.sent(service_id)
        with self._lock:
            total = sent + self._sending[service_id]
            if total + recipients > cap:
                return total
            self._sending[service_id] += recipients
            return None

    def settle(self, service_id: str, recipients: int, *, sent: bool) -> None:
        """End a send :meth:`take` set ``recipients`` aside for: counted if ``sent``."""
        with self._lock:
            self._sending[service_id] -= recipients
        if sent:
            self.add(service_id, recipients)

    def add(self, service_id: str, recipients: int) -> None:
        """Count ``recipients`` sent by ``service_id`` now."""
        with self._lock:
            self._pending[(service_id, hour_of(self._clock()))] += recipients
            self._start_flushing()

    def sent(self, service_id: str) -> int:
        """What ``service_id`` sent in the last day, as far as this worker knows. Raises
        LedgerUnavailable when the ledger must be read and cannot be."""
        now = self._clock()
        with self._lock:
            known = self._known.get(service_id)
        if known is None or known[0] != hour_of(now) or now - known[1] >= self._refresh_s:
            hours = self._final.read(service_id, window_hours(now), now, self._ledger.sent_by_hour)
            total = sum(hours.values())
            known = (hour_of(now), now, total)
            with self._lock:
                self._known[service_id] = known
        with self._lock:
            window = window_hours(now)
            pending = sum(
                n for (s, hour), n in self._pending.items() if s == service_id and hour in window
            )
        return known[2] + pending

    def seconds_until_the_window_moves(self) -> float:
        """Until the oldest hour of the window drops out of it."""
        return HOUR_S - self._clock() % HOUR_S

    def _write_pending(self) -> None:
        with self._lock:
            increments, self._pending = self._pending, Counter()
        if not increments:
            return
        try:
            self._ledger.add_send_counts(dict(increments))
        except LedgerUnavailable:
            with self._lock:
                self._pending.update(increments)
            raise
        with self._lock:
            for (service_id, _hour), recipients in increments.items():
                known = self._known.get(service_id)
                if known is not None:
                    self._known[service_id] = (known[0], known[1], known[2] + recipients)
