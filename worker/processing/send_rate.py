"""The worker's own limit on how fast it sends to SES, shared by all its threads and services.

SES enforces a maximum sending rate per account and region, counted in recipients per
second, and answers anything above it with throttling errors. Left alone, a worker drains a
backlog as fast as it can, most sends are throttled, and the retries and redeliveries they
cost can end in ``throttled`` results and dead letters for requests that were fine. With a
limit set, the worker paces itself instead: a send waits for its turn, and a pull worker's
flow control leaves the rest of the backlog in Pub/Sub, where waiting costs no delivery
attempt.

The turn is fair between services (:mod:`worker.processing.fair_queue`): sends wait in a
queue ordered by each service's ``weight``, so one service's backlog takes only the rate the
others leave unused. And each service may hold only so many of the worker's threads in here
at once (its "places", :class:`~worker.processing.fair_queue.Places`): a pull worker keeps the
rest of a busy service's messages leased, outside, so they do not occupy every thread while
another service's sends wait for one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from worker.processing.fair_queue import FairQueue, Places, Ticket

__all__ = ["SendRateLimiter", "Ticket"]

# The longest a waiting send sleeps before it looks again: how soon it notices a stop, or a
# rate raised by set_rate_per_s.
_MAX_NAP_S = 0.25


def _nap(seconds: float, stopping: threading.Event | None) -> None:
    if stopping is None:
        time.sleep(seconds)
    else:
        stopping.wait(seconds)


class SendRateLimiter:
    """A token bucket of recipients, refilled at ``rate_per_s`` and holding one second's
    worth, and a fair queue of the sends waiting for it.

    The send at the head of the queue goes as soon as the bucket holds no debt, and takes its
    recipients from it (its own recipients become the debt of the next). So a message with
    more recipients than one second's worth is not held back by its own size, and over any
    long stretch no more than ``rate_per_s`` recipients a second go out (plus the one-second
    burst and the last message's size).

    ``clock`` gives seconds; ``wait(seconds, stopping)`` sleeps (tests pass one that moves
    their clock); ``places`` is how many threads may wait here at once (None: no bound).
    """

    def __init__(
        self,
        rate_per_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        places: int | None = None,
        wait: Callable[[float, threading.Event | None], object] = _nap,
    ) -> None:
        if rate_per_s <= 0:
            raise ValueError("the send rate must be positive")
        self._rate_per_s = rate_per_s
        self._capacity = max(rate_per_s, 1.0)
        self._clock = clock
        self._wait = wait
        self._lock = threading.Lock()
        self._tokens = self._capacity
        self._updated = clock()
        self._queue = FairQueue()
        self._places = Places(places) if places is not None else None
        self._weights: dict[str, float] = {}

    @property
    def rate_per_s(self) -> float:
        return self._rate_per_s

    def set_rate_per_s(self, rate_per_s: float) -> None:
        """Refill at ``rate_per_s`` from now on (what was refilled until now stays)."""
        if rate_per_s <= 0:
            raise ValueError("the send rate must be positive")
        with self._lock:
            self._refill()
            self._rate_per_s = rate_per_s
            self._capacity = max(rate_per_s, 1.0)
            self._tokens = min(self._tokens, self._capacity)

    # -- places ----------------------------------------------------------------------------

    def enter(self, service_id: str) -> bool:
        """Take one of ``service_id``'s places; False when it holds its share already (the
        delivery should wait outside, in Pub/Sub). Give it back with :meth:`leave`."""
        if self._places is None:
            return True
        with self._lock:
            return self._places.take(service_id, self._weights)

    def leave(self, service_id: str) -> None:
        if self._places is not None:
            with self._lock:
                self._places.give_back(service_id)

    # -- turns -----------------------------------------------------------------------------

    def request(
        self,
        recipients: int,
        *,
        max_wait_s: float,
        service_id: str = "",
        weight: float = 1.0,
        high: bool = False,
    ) -> Ticket | None:
        """Queue a send of ``recipients``; None (nothing queued) when its turn is expected
        later than ``max_wait_s`` from now: the caller should hand the request back."""
        with self._lock:
            self._weights[service_id] = weight
            ticket = self._queue.add(service_id, recipients, weight=weight, high=high)
            self._refill()  # the expected wait counts what the bucket holds now
            if self._expected_wait_s(ticket) > max_wait_s:
                self._queue.remove(ticket)
                return None
            self._dispatch()
            return ticket

    def poll(self, ticket: Ticket) -> float:
        """0.0 when ``ticket`` may send now; otherwise the seconds until it should ask again."""
        with self._lock:
            self._dispatch()
            return 0.0 if ticket.granted else max(self._expected_wait_s(ticket), 1e-3)

    def withdraw(self, ticket: Ticket) -> None:
        """Take a send that stops waiting out of the queue."""
        with self._lock:
            self._queue.remove(ticket)

    def reserve(
        self,
        recipients: int,
        *,
        max_wait_s: float,
        service_id: str = "",
        weight: float = 1.0,
        high: bool = False,
        stopping: threading.Event | None = None,
    ) -> float | None:
        """Wait for the turn of a send of ``recipients`` and return the seconds waited.

        None, having waited for nothing or given up its place in the queue, when the wait
        is or becomes longer than ``max_wait_s``: hand the request back instead. When
        ``stopping`` is set meanwhile it gives up its place too and returns; the caller sees
        ``stopping`` and must not send.
        """
        ticket = self.request(
            recipients, max_wait_s=max_wait_s, service_id=service_id, weight=weight, high=high
        )
        if ticket is None:
            return None
        started = self._clock()
        while True:
            wait_s = self.poll(ticket)
            waited_s = self._clock() - started
            if wait_s == 0.0:
                return waited_s
            if waited_s + wait_s > max_wait_s or (stopping is not None and stopping.is_set()):
                self.withdraw(ticket)
                return waited_s if stopping is not None and stopping.is_set() else None
            self._wait(min(wait_s, _MAX_NAP_S), stopping)

    # -- under the lock --------------------------------------------------------------------

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(now - self._updated, 0.0)
        self._tokens = min(self._capacity, self._tokens + elapsed * self._rate_per_s)
        self._updated = now

    def _dispatch(self) -> None:
        """Let the sends at the head of the queue go while the bucket holds no debt."""
        self._refill()
        # A debt of a billionth of a recipient is rounding, not debt.
        while self._tokens >= -1e-9 and (head := self._queue.head()) is not None:
            self._queue.pop()
            head.granted = True
            self._tokens -= head.recipients

    def _expected_wait_s(self, ticket: Ticket) -> float:
        """When ``ticket`` goes if no other send overtakes it: once the bucket has paid the
        debt and the recipients of the sends before it."""
        if ticket.granted:
            return 0.0
        ahead = self._queue.recipients_ahead(ticket) - ticket.recipients
        return max(ahead - self._tokens, 0.0) / self._rate_per_s
