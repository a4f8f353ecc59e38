"""What a reader of the hourly counters remembers: the totals of hours that can no longer change.

A reader of the counters (:mod:`worker.ledger.send_counts`, :mod:`worker.ledger.service_counts`)
sums every shard of every hour it needs, and reads the same hours again and again: the daily
cap a capped service's last 25 hours every few seconds, the console's services page a
service's last week at each view. Most of those hours are over and their counters can no
longer move, so :class:`FinalHours` keeps their totals and reads again only the others.

An hour keeps receiving increments after it ends, until every instance has flushed what it
counted in it: a worker counts into the hour of the moment it counts, and flushes every
``flush_interval_s`` (5 s for both kinds of counters). An hour is taken as final once its end
is :func:`settle_margin_s` in the past: the flush interval plus :data:`SAFETY_MARGIN_S`, five
minutes, for what can hold a flush back a little longer (a write's retries, a failed flush
retried at the next interval, a worker's last flush as it stops, the clocks of instances
disagreeing by some seconds). Every hour not yet final is read each time, so a late increment
within the margin is always counted. The price of the margin is small: the hour before the
current one is read again for the first five minutes of each hour. What a flush adds to an
hour after the margin (a ledger out of reach for longer than that, the flush kept for later)
is missed by a reader that already holds the hour, until the hour leaves its window; the
counts were approximate by that much already.

The totals are kept per service, only for hours in the window last asked for (older ones are
dropped at each read), and for at most ``max_services`` services, the least recently read
dropped first: a bounded size whatever a process reads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

from worker.ledger.send_counts import HOUR_S

__all__ = ["DEFAULT_MAX_SERVICES", "SAFETY_MARGIN_S", "FinalHours", "settle_margin_s"]

#: What an hour waits beyond the writers' flush interval before it is final.
SAFETY_MARGIN_S = 300.0
#: Services whose final hours one reader keeps, unless told otherwise.
DEFAULT_MAX_SERVICES = 256

V = TypeVar("V")


def settle_margin_s(flush_interval_s: float) -> float:
    """How long after its end an hour flushed into every ``flush_interval_s`` is final."""
    return flush_interval_s + SAFETY_MARGIN_S


class FinalHours(Generic[V]):
    """The counter totals (``V``) of final hours, by service and hour; safe across threads."""

    def __init__(self, settle_s: float, *, max_services: int = DEFAULT_MAX_SERVICES) -> None:
        if max_services < 1:
            raise ValueError(f"max_services must be at least 1, not {max_services}")
        self._settle_s = settle_s
        self._max_services = max_services
        self._lock = threading.Lock()
        # Per service, least recently read first: hour -> its total (None: no counter).
        self._services: OrderedDict[str, dict[int, V | None]] = OrderedDict()

    def is_final(self, hour: int, now: float) -> bool:
        """Whether ``hour``'s counters can no longer change at ``now``."""
        return (hour + 1) * HOUR_S + self._settle_s <= now

    def read(
        self,
        service_id: str,
        hours: range,
        now: float,
        fetch: Callable[[str, range], Mapping[int, V]],
    ) -> dict[int, V]:
        """``service_id``'s totals of ``hours`` (those with a counter): the final hours kept,
        and the rest from ``fetch`` (a read of the ledger: a service and a range of hours),
        one call from the first hour not kept to the last. Totals returned are shared: do
        not change them."""
        found, first_unknown = self._kept(service_id, hours)
        unknown = range(first_unknown, hours.stop)
        if unknown:
            fresh = fetch(service_id, unknown)
            found.update(fresh)
            self._keep(service_id, unknown, fresh, now)
        return found

    def services(self) -> int:
        """How many services have hours kept."""
        with self._lock:
            return len(self._services)

    def hours_kept(self, service_id: str) -> list[int]:
        """The hours of ``service_id`` kept, in order."""
        with self._lock:
            return sorted(self._services.get(service_id, {}))

    def _kept(self, service_id: str, hours: range) -> tuple[dict[int, V], int]:
        """The kept totals of the hours at the start of ``hours``, and the first hour not
        kept; drops the service's hours older than ``hours``."""
        found: dict[int, V] = {}
        with self._lock:
            kept = self._services.get(service_id)
            if kept is None:
                return found, hours.start
            self._services.move_to_end(service_id)
            for hour in [h for h in kept if h < hours.start]:
                del kept[hour]
            for hour in hours:
                if hour not in kept:
                    return found, hour
                total = kept[hour]
                if total is not None:
                    found[hour] = total
        return found, hours.stop

    def _keep(self, service_id: str, hours: range, fresh: Mapping[int, V], now: float) -> None:
        final = [hour for hour in hours if self.is_final(hour, now)]
        if not final:
            return
        with self._lock:
            kept = self._services.setdefault(service_id, {})
            self._services.move_to_end(service_id)
            for hour in final:
                kept[hour] = fresh.get(hour)
            while len(self._services) > self._max_services:
                self._services.popitem(last=False)
