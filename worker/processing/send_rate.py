"""The worker's own limit on how fast it sends to SES, shared by all its threads.

SES enforces a maximum sending rate per account and region, counted in recipients per
second, and answers anything above it with throttling errors. Left alone, a worker drains a
backlog as fast as it can, most sends are throttled, and the retries and redeliveries they
cost can end in ``throttled`` results and dead letters for requests that were fine. With a
limit set, the worker paces itself instead: a send waits for its turn, and a pull worker's
flow control leaves the rest of the backlog in Pub/Sub, where waiting costs no delivery
attempt.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["SendRateLimiter"]


class SendRateLimiter:
    """A token bucket of recipients, refilled at ``rate_per_s`` and holding one second's worth.

    A send takes its recipients from the bucket when it asks, and is told how long to wait:
    until the debt left by the sends before it has been paid back. Its own recipients become
    the debt of the next. So a message with more recipients than one second's worth is not
    held back by its own size, and over any long stretch no more than ``rate_per_s``
    recipients a second go out (plus the one-second burst and the last message's size).
    """

    def __init__(self, rate_per_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if rate_per_s <= 0:
            raise ValueError("the send rate must be positive")
        self.rate_per_s = rate_per_s
        self._capacity = max(rate_per_s, 1.0)
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = self._capacity
        self._updated = clock()

    def set_rate_per_s(self, rate_per_s: float) -> None:
        """Refill at ``rate_per_s`` from now on (what was refilled until now stays)."""
        if rate_per_s <= 0:
            raise ValueError("the send rate must be positive")
        with self._lock:
            now = self._clock()
            elapsed = max(now - self._updated, 0.0)
            self._tokens = min(self._capacity, self._tokens + elapsed * self.rate_per_s)
            self._updated = now
            self.rate_per_s = rate_per_s
            self._capacity = max(rate_per_s, 1.0)
            self._tokens = min(self._tokens, self._capacity)

    def reserve(self, recipients: int, *, max_wait_s: float) -> float | None:
        """Take ``recipients`` and return the seconds to wait before sending.

        If the wait would be longer than ``max_wait_s``, nothing is taken and None is
        returned: the caller should hand the request back for later instead of waiting.
        """
        with self._lock:
            now = self._clock()
            elapsed = max(now - self._updated, 0.0)
            self._tokens = min(self._capacity, self._tokens + elapsed * self.rate_per_s)
            self._updated = now
            wait_s = max(-self._tokens, 0.0) / self.rate_per_s
            if wait_s > max_wait_s:
                return None
            self._tokens -= recipients
            return wait_s
