"""SES's sending quota, enforced as SES documents it, for the SES stand-in.

An SES account may send at most ``MaxSendRate`` recipients per second and ``Max24HourSend``
recipients per rolling 24 hours (each recipient counts). A send over either is refused: SES's
API answers a throttling error, HTTP 400 with the code ``Throttling`` and one of the messages
"Maximum sending rate exceeded." or "Daily message quota exceeded." (the SES developer guide,
"Errors related to the sending quotas for your Amazon SES account"), and ``GetAccount``
answers the quota and what was sent in the last 24 hours.

:class:`SesQuota` decides each send: a token bucket of ``rate_per_s`` recipients that holds
one second's worth (at least one recipient), and the accepted recipients of the last 24 hours
by a clock the test controls. Both limits can change while it runs. It keeps what the
benchmark reads: accepted and throttled calls, and each second's accepted recipients.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["DAILY_QUOTA_EXCEEDED", "RATE_EXCEEDED", "Refusal", "SesQuota"]

RATE_EXCEEDED = "Maximum sending rate exceeded."
DAILY_QUOTA_EXCEEDED = "Daily message quota exceeded."
DAY_S = 24 * 3600.0


@dataclass(frozen=True)
class Refusal:
    """An SES error answer: HTTP status, error code and message."""

    status: int
    code: str
    message: str


class SesQuota:
    """The account's limits and what was sent against them; safe for the server's threads.

    ``clock``: monotonic seconds for the rate. ``day_clock``: seconds for the 24-hour window,
    which a test moves by hand. ``max_24_hour_send`` None: no daily limit (SES's -1).
    """

    def __init__(
        self,
        rate_per_s: float,
        *,
        max_24_hour_send: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        day_clock: Callable[[], float] = time.time,
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self.day_clock = day_clock
        self.rate_per_s = rate_per_s
        self.max_24_hour_send = max_24_hour_send
        self._tokens = max(rate_per_s, 1.0)
        self._updated = clock()
        self._window: collections.deque[tuple[float, int]] = collections.deque()
        self._in_window = 0
        self.accepted_calls = 0
        self.throttled_calls = 0
        self.daily_refusals = 0
        self.get_account_calls = 0
        #: Accepted recipients per whole second of ``clock``.
        self.accepted_by_second: collections.Counter[int] = collections.Counter()
        #: Throttled calls per whole second of ``clock``.
        self.throttled_by_second: collections.Counter[int] = collections.Counter()

    def set_rate(self, rate_per_s: float) -> None:
        """SES changes the maximum send rate, from now on."""
        with self._lock:
            self._refill()
            self.rate_per_s = rate_per_s
            self._tokens = min(self._tokens, max(rate_per_s, 1.0))

    def set_daily_cap(self, max_24_hour_send: float | None) -> None:
        with self._lock:
            self.max_24_hour_send = max_24_hour_send

    def admit(self, recipients: int) -> Refusal | None:
        """Take ``recipients`` for a send, or the refusal SES would answer."""
        with self._lock:
            now = self._clock()
            self._refill()
            sent = self._sent_last_24_hours()
            if self.max_24_hour_send is not None and sent + recipients > self.max_24_hour_send:
                self.daily_refusals += 1
                return Refusal(400, "Throttling", DAILY_QUOTA_EXCEEDED)
            if self._tokens < recipients:
                self.throttled_calls += 1
                self.throttled_by_second[int(now)] += 1
                return Refusal(400, "Throttling", RATE_EXCEEDED)
            self._tokens -= recipients
            self._window.append((self.day_clock(), recipients))
            self._in_window += recipients
            self.accepted_calls += 1
            self.accepted_by_second[int(now)] += recipients
            return None

    def send_quota(self) -> dict[str, float]:
        """``GetAccount``'s ``SendQuota``."""
        with self._lock:
            self.get_account_calls += 1
            return {
                "Max24HourSend": -1.0 if self.max_24_hour_send is None else self.max_24_hour_send,
                "MaxSendRate": float(self.rate_per_s),
                "SentLast24Hours": float(self._sent_last_24_hours()),
            }

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(now - self._updated, 0.0)
        capacity = max(self.rate_per_s, 1.0)  # one second's worth, and at least one send
        self._tokens = min(capacity, self._tokens + elapsed * self.rate_per_s)
        self._updated = now

    def _sent_last_24_hours(self) -> int:
        cutoff = self.day_clock() - DAY_S
        while self._window and self._window[0][0] <= cutoff:
            self._in_window -= self._window.popleft()[1]
        return self._in_window
