"""The reputation breaker: pause a service whose bounce or complaint rate endangers the account.

SES judges an account (or, with tenants, a tenant) by its bounce and complaint rates. Its
documented thresholds: a bounce rate of 5% or a complaint rate of 0.1% puts the account under
review; 10% or 0.5% may pause its sending, every service's at once. The events reader sees
the same events first, per service (the worker's tags name it), so it can stop the one service
that is causing trouble before SES stops everyone.

For each service, :class:`ReputationBreaker` counts, in per-minute buckets held in memory, the
recipients sent to (Send events), hard-bounced (Bounce events of type ``Permanent``: SES's
bounce rate counts no others) and complaining (Complaint events) over the last ``window_s``.
Counting is an addition to an in-memory bucket: no write per email. After each batch the
reader asks :meth:`ReputationBreaker.check`, which judges the services whose counts moved: once
a service has sent to ``min_sends`` recipients in the window, a rate at or over its threshold
pauses it, through the operators' own pause (a record in the request ledger, by
``reputation-breaker``, whose reason names the rates), and logs a warning that the log-based
alert ``reputation_breaker_tripped`` watches. Only an operator's ``email-worker resume`` ends
the pause; the service's counts start again from nothing after the trip.

The counts are this process's: a restarted reader starts with none, and several readers each
judge the share of events they read. Both only make the breaker trip later, never wrongly.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from worker.config.logs import get_logger
from worker.formats.event import EmailEvent, EventType

__all__ = ["BREAKER_AUTHOR", "ReputationBreaker", "Tally", "Thresholds"]

log = get_logger()

#: The ``by`` of the pauses the breaker records.
BREAKER_AUTHOR = "reputation-breaker"
_BUCKET_S = 60.0


@dataclass(frozen=True)
class Thresholds:
    """When the breaker trips: rates in percent of recipients sent to, within ``window_s``."""

    window_s: float = 3600.0
    #: Recipients sent to in the window before the rates count; 0: the breaker is off.
    min_sends: int = 500
    bounce_percent: float = 4.0
    complaint_percent: float = 0.2


@dataclass
class Tally:
    """Counts of one service in one minute (or, summed, in a window)."""

    sends: int = 0
    bounces: int = 0
    complaints: int = 0

    def add(self, other: Tally) -> None:
        self.sends += other.sends
        self.bounces += other.bounces
        self.complaints += other.complaints

    def percent(self, count: int) -> float:
        return 100.0 * count / self.sends if self.sends else 0.0


@dataclass
class _Service:
    #: (minute, its tally), oldest first.
    buckets: deque[tuple[int, Tally]] = field(default_factory=deque)


class ReputationBreaker:
    """Per-service bounce and complaint rates from SES's events, and the pause they call for.

    ``pause(service_id, reason)`` records the pause (the caller wires it to
    :func:`worker.ops.pausing.pause`, with ``by`` = :data:`BREAKER_AUTHOR`); it may raise,
    and the service is then judged again after the next batch.
    """

    def __init__(
        self,
        thresholds: Thresholds,
        pause: Callable[[str, str], object],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.thresholds = thresholds
        self._pause = pause
        self._clock = clock
        self._services: dict[str, _Service] = {}
        self._moved: set[str] = set()
        self._lock = threading.Lock()
        #: How many times the breaker has paused a service.
        self.trips = 0

    @property
    def enabled(self) -> bool:
        return self.thresholds.min_sends > 0

    def count(self, event: EmailEvent) -> None:
        """Count ``event``'s recipients for its service (cheap: no I/O)."""
        tally = _tally_of(event)
        if tally is None or not self.enabled:
            return
        minute = int(self._clock() // _BUCKET_S)
        with self._lock:
            service = self._services.setdefault(event.service_id, _Service())
            if not service.buckets or service.buckets[-1][0] != minute:
                service.buckets.append((minute, Tally()))
            service.buckets[-1][1].add(tally)
            self._moved.add(event.service_id)

    def totals(self, service_id: str) -> Tally:
        """``service_id``'s counts within the window now."""
        with self._lock:
            return self._window_tally(service_id)

    def check(self) -> list[str]:
        """Judge the services whose counts moved since the last check; pause those over a
        threshold. Returns the services paused now."""
        with self._lock:
            moved, self._moved = self._moved, set()
            tallies = [(service, self._window_tally(service)) for service in sorted(moved)]
        over = [(service, tally) for service, tally in tallies if self._over(tally)]
        return [service for service, tally in over if self._trip(service, tally)]

    def _window_tally(self, service_id: str) -> Tally:
        service = self._services.get(service_id)
        total = Tally()
        if service is None:
            return total
        oldest = int((self._clock() - self.thresholds.window_s) // _BUCKET_S) + 1
        while service.buckets and service.buckets[0][0] < oldest:
            service.buckets.popleft()
        for _, tally in service.buckets:
            total.add(tally)
        return total

    def _over(self, tally: Tally) -> bool:
        limits = self.thresholds
        if tally.sends < limits.min_sends:
            return False
        return (
            tally.percent(tally.bounces) >= limits.bounce_percent
            or tally.percent(tally.complaints) >= limits.complaint_percent
        )

    def _trip(self, service_id: str, tally: Tally) -> bool:
        reason = _reason(tally, self.thresholds)
        try:
            self._pause(service_id, reason)
        except Exception as error:  # judged again after the next batch
            log.error(
                "reputation breaker could not pause the service",
                service_id=service_id,
                error=type(error).__name__,
                detail=str(error)[:300],
            )
            with self._lock:
                self._moved.add(service_id)
            return False
        with self._lock:
            self._services.pop(service_id, None)  # after a resume, it starts afresh
        self.trips += 1
        log.warning(
            "reputation breaker tripped: service paused",
            service_id=service_id,
            by=BREAKER_AUTHOR,
            sends=tally.sends,
            hard_bounces=tally.bounces,
            complaints=tally.complaints,
            bounce_percent=round(tally.percent(tally.bounces), 3),
            complaint_percent=round(tally.percent(tally.complaints), 3),
            window_s=self.thresholds.window_s,
        )
        return True


def _tally_of(event: EmailEvent) -> Tally | None:
    recipients = len(event.recipients)
    if event.event_type is EventType.SEND:
        return Tally(sends=recipients)
    if event.event_type is EventType.BOUNCE and event.bounce_type == "Permanent":
        return Tally(bounces=recipients)
    if event.event_type is EventType.COMPLAINT:
        return Tally(complaints=recipients)
    return None


def _reason(tally: Tally, limits: Thresholds) -> str:
    """The pause's reason: the breaker, the rates, and what they were judged against."""
    return (
        f"reputation breaker: hard bounces {tally.percent(tally.bounces):.2f}% "
        f"({tally.bounces}/{tally.sends}), complaints {tally.percent(tally.complaints):.2f}% "
        f"({tally.complaints}/{tally.sends}) in the last {limits.window_s:g} s; limits "
        f"{limits.bounce_percent:g}% and {limits.complaint_percent:g}%"
    )
