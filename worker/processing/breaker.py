"""The outage breaker: stop taking work while SES, STS or the ledger fail for everyone.

Every call the pipeline makes downstream reports here: a transient failure (SES or STS
unavailable or throttling, the ledger unreachable) or an answer (a send, or a permanent refusal,
which proves the downstream is up). The breaker keeps the reports of the last ``window_s``
seconds and trips when all of these hold:

* at least ``min_calls`` reports,
* a share of at least ``failure_ratio`` of them are transient failures,
* the failures come from two services or more, or from every service seen in the window (so a
  worker serving one service can trip, but one service's own trouble beside others' successes
  cannot).

A per-service refusal (one role's AccessDenied, one unverified identity) is permanent, so it
counts as an answer and never trips the breaker.

While open (``holding``), :meth:`OutageBreaker.admit` refuses new deliveries; after
``probe_interval_s`` it admits one (half-open) as a probe. The first report after that settles
it: an answer closes the breaker and forgets the window, a failure opens it for another
interval. A probe that ends without reaching the downstream frees its place for the next one
(:meth:`OutageBreaker.end_probe`). The clock is injected for tests.
"""

from __future__ import annotations

import enum
import threading
import time
from collections import deque
from collections.abc import Callable

from worker.config.logs import get_logger

__all__ = ["BreakerState", "OutageBreaker"]

log = get_logger()


class BreakerState(enum.StrEnum):
    CLOSED = "closed"  # taking work
    OPEN = "open"  # holding: no new work until the probe interval has passed
    HALF_OPEN = "half_open"  # holding, with one probe admitted


class OutageBreaker:
    """A circuit breaker over a sliding window of downstream calls, across services."""

    def __init__(
        self,
        *,
        window_s: float,
        min_calls: int,
        failure_ratio: float,
        probe_interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._window_s = window_s
        self._min_calls = min_calls
        self._failure_ratio = failure_ratio
        self._probe_interval_s = probe_interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._calls: deque[tuple[float, str, bool]] = deque()  # (when, service, failed)
        self._state = BreakerState.CLOSED
        self._opened_at = 0.0
        self._probe_thread: int | None = None
        self._listeners: list[Callable[[BreakerState, BreakerState], None]] = []
        #: How often the breaker has tripped (closed to open).
        self.trips = 0

    @property
    def state(self) -> BreakerState:
        return self._state

    @property
    def holding(self) -> bool:
        """Whether the worker is holding work back (open or half-open)."""
        return self._state is not BreakerState.CLOSED

    def add_listener(self, listener: Callable[[BreakerState, BreakerState], None]) -> None:
        """Call ``listener(old, new)`` on every change of state (for metrics)."""
        self._listeners.append(listener)

    def record(self, service_id: str | None, *, failed: bool) -> None:
        """Report one downstream call: ``failed`` for a transient failure, else an answer."""
        with self._lock:
            now = self._clock()
            if self._state is BreakerState.HALF_OPEN:
                # The first report after the probe was admitted settles the probe.
                self._probe_thread = None
                self._move(BreakerState.OPEN if failed else BreakerState.CLOSED, now)
                return
            if self._state is BreakerState.OPEN:
                return  # stragglers from before the trip say nothing new
            self._calls.append((now, service_id or "", failed))
            self._forget_before(now - self._window_s)
            if failed and self._should_trip():
                self.trips += 1
                self._move(BreakerState.OPEN, now)

    def admit(self) -> bool:
        """Whether a delivery may start now; in the half-open state, the first one asking
        becomes the probe (call :meth:`end_probe` from the same thread when it is done)."""
        with self._lock:
            if self._state is BreakerState.CLOSED:
                return True
            if self._state is BreakerState.HALF_OPEN:
                return False
            now = self._clock()
            if now - self._opened_at < self._probe_interval_s:
                return False
            self._move(BreakerState.HALF_OPEN, now)
            self._probe_thread = threading.get_ident()
            return True

    def end_probe(self) -> None:
        """The delivery admitted on this thread is done: if it was the probe and never reached
        the downstream, let the next delivery probe instead."""
        with self._lock:
            if self._probe_thread == threading.get_ident():
                self._probe_thread = None
                if self._state is BreakerState.HALF_OPEN:
                    self._opened_at = self._clock() - self._probe_interval_s
                    self._move(BreakerState.OPEN, self._opened_at)

    def seconds_until_probe(self) -> float:
        """How long until a delivery may be admitted again (0: now, or possibly now)."""
        with self._lock:
            if self._state is not BreakerState.OPEN:
                return 0.0
            return max(0.0, self._opened_at + self._probe_interval_s - self._clock())

    def _forget_before(self, cutoff: float) -> None:
        while self._calls and self._calls[0][0] < cutoff:
            self._calls.popleft()

    def _should_trip(self) -> bool:
        calls = len(self._calls)
        if calls < self._min_calls:
            return False
        failing = {service for _, service, failed in self._calls if failed}
        if sum(1 for *_, failed in self._calls if failed) < self._failure_ratio * calls:
            return False
        active = {service for _, service, _ in self._calls}
        return len(failing) >= 2 or failing == active

    def _move(self, new: BreakerState, now: float) -> None:
        """Change state (under the lock), log it and tell the listeners."""
        old, self._state = self._state, new
        if old is new:
            return
        if new is BreakerState.OPEN:
            self._opened_at = now
        if new is BreakerState.CLOSED:
            self._calls.clear()
        if old is BreakerState.CLOSED:
            log.warning(
                "outage: downstream calls are failing for every service; holding new work",
                window_s=self._window_s,
                probe_interval_s=self._probe_interval_s,
            )
        elif new is BreakerState.CLOSED:
            log.info("outage over: the probe succeeded; taking work again")
        elif new is BreakerState.HALF_OPEN:
            log.info("outage: probing the downstream with one delivery")
        elif old is BreakerState.HALF_OPEN:
            log.info("outage: still holding; the probe did not get through")
        for listener in self._listeners:
            listener(old, new)
