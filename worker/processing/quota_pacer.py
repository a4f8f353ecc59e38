"""Pacing from SES's live quota: this instance's share of its account's send rate, and the
24-hour cap.

Every few seconds the pacer (:meth:`QuotaPacer.tick`, from its own thread):

* reads the quota of each AWS account and region the worker's services send through
  (``GetAccount``, every ``EMAIL_WORKER_QUOTA_REFRESH_S``; :mod:`worker.sending.quota`);
* writes this instance's heartbeat in the ledger and counts the live instances of the same
  account and region (every ``EMAIL_WORKER_INSTANCE_HEARTBEAT_S``; a heartbeat expires after
  three of those; :mod:`worker.ledger.heartbeats`);
* sets the worker's :class:`~worker.processing.send_rate.SendRateLimiter` to
  ``share x factor``, where ``share`` is ``EMAIL_WORKER_QUOTA_FRACTION x MaxSendRate /
  live instances`` (the smallest over the accounts, if the services use several), capped by
  ``EMAIL_WORKER_SEND_RATE_PER_S`` when that is set.

``factor`` is the AIMD part: SES answering "Maximum sending rate exceeded" (:meth:`throttled`)
cuts it by :data:`DECREASE` (at most once per :data:`CUT_COOLDOWN_S`, so one burst of
throttled calls in flight counts once); each second it grows back by :data:`INCREASE_PER_S`,
up to 1. A share that changes (quota, instance count) applies at once, and the factor starts
again at 1: the change explains the throttling seen before it (and throttled answers to calls
made before it are ignored for two cooldowns).

The daily cap: the account is counted full when ``SentLast24Hours`` plus what this instance
sent since that read, times the live instances (each sends about its share), reaches
``Max24HourSend``, or when SES answered "Daily message quota exceeded"; until a later read
shows room, :meth:`daily_cap_reached` is true and requests wait in Pub/Sub (held).

The module runs over 300 lines: the whole of the pacing reads in one place; where the quotas
come from is in :mod:`worker.processing.quota_sources`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from worker.config.logs import get_logger
from worker.ledger import Ledger, LedgerUnavailable
from worker.processing.send_rate import SendRateLimiter
from worker.sending.errors import EmailError, ThrottledError
from worker.sending.quota import QuotaGroup, SendQuota

__all__ = [
    "CUT_COOLDOWN_S",
    "DECREASE",
    "INCREASE_PER_S",
    "UNLIMITED_PER_S",
    "PacerTerms",
    "QuotaPacer",
    "QuotaSources",
]

log = get_logger()

#: How much a throttling episode cuts the factor (multiplicative decrease).
DECREASE = 0.7
#: How much the factor grows back each second, up to 1 (additive increase).
INCREASE_PER_S = 0.05
#: The factor never falls below this: some sends keep going to learn when SES allows more.
MIN_FACTOR = 0.05
#: Throttled answers closer together than this are one episode (calls already in flight).
CUT_COOLDOWN_S = 1.0
#: The limiter's rate when nothing limits it (no quota known, no upper bound set).
UNLIMITED_PER_S = 1_000_000.0
#: How often the pacer's thread ticks.
TICK_S = 0.25
# SES's words for a throttled send over the 24-hour quota ("Daily message quota exceeded").
_DAILY_QUOTA = "daily message quota"

#: The accounts and regions the worker's services send through, each with how to read its
#: quota; asked at every quota refresh.
QuotaSources = Callable[[], Mapping[QuotaGroup, Callable[[], SendQuota]]]


@dataclass(frozen=True)
class PacerTerms:
    """The settings the pacer runs on (``settings.quota``, and the sending upper bound)."""

    fraction: float = 0.98
    upper_bound_per_s: float | None = None
    refresh_s: float = 5.0
    heartbeat_s: float = 5.0


@dataclass
class _Group:
    """What the pacer knows of one account and region."""

    quota: SendQuota | None = None
    instances: int = 1
    sent_since_read: int = 0
    #: SES said the daily quota is used up; until a read shows room.
    exhausted: bool = False

    def share_per_s(self, fraction: float) -> float | None:
        if self.quota is None:
            return None
        return fraction * self.quota.max_send_rate_per_s / max(self.instances, 1)

    def cap_reached(self) -> bool:
        if self.exhausted:
            return True
        if self.quota is None or self.quota.max_24_hour_send is None:
            return False
        sent = self.quota.sent_last_24_hours + self.sent_since_read * max(self.instances, 1)
        return sent >= self.quota.max_24_hour_send


class QuotaPacer:
    """Keeps ``limiter`` at this instance's share of the quota (see the module's text).

    ``sources``: the accounts to pace for and how to read their quotas. ``ledger``: where the
    heartbeats are (None: this instance counts itself alone). ``instance``: this process's
    id. ``clock``: monotonic seconds, replaced in tests.
    """

    def __init__(
        self,
        limiter: SendRateLimiter,
        sources: QuotaSources,
        *,
        ledger: Ledger | None,
        instance: str,
        terms: PacerTerms,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limiter = limiter
        self.instance = instance
        self._sources = sources
        self._ledger = ledger
        self._terms = terms
        self._clock = clock
        self._lock = threading.Lock()
        self._groups: dict[QuotaGroup, _Group] = {}
        self._readers: Mapping[QuotaGroup, Callable[[], SendQuota]] = {}
        self._factor = 1.0
        self._cut_at = float("-inf")
        self._ticked_at = clock()
        self._next_refresh = self._next_beat = float("-inf")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._target: float | None = None
        self._applied: float | None = None

    # -- what the pipeline tells and asks ---------------------------------------------------

    def throttled(self) -> None:
        """SES answered "Maximum sending rate exceeded": cut the factor (once per episode)."""
        with self._lock:
            now = self._clock()
            if now - self._cut_at < CUT_COOLDOWN_S:
                return
            self._cut_at = now
            self._factor = max(self._factor * DECREASE, MIN_FACTOR)
        self._apply()

    def throttled_by(self, error: ThrottledError) -> None:
        """SES throttled a send: for its daily quota, or (any other wording) its rate."""
        if _DAILY_QUOTA in error.message.lower():
            self.daily_quota_exceeded()
        else:
            self.throttled()

    def daily_quota_exceeded(self) -> None:
        """SES answered "Daily message quota exceeded": hold until a read shows room."""
        with self._lock:
            for group in self._groups.values():
                group.exhausted = True
        log.warning("SES's 24-hour sending quota is used up: requests wait in Pub/Sub")

    def sent(self, recipients: int) -> None:
        """Count ``recipients`` sent, towards the daily cap until the next quota read."""
        with self._lock:
            for group in self._groups.values():
                group.sent_since_read += recipients

    def daily_cap_reached(self) -> bool:
        """Whether the 24-hour cap holds new sends back (see the module's text)."""
        with self._lock:
            return any(group.cap_reached() for group in self._groups.values())

    def seconds_until_recheck(self) -> float:
        """How long a request held by the daily cap waits before asking again: until the
        next quota read, which is what can show room."""
        return max(self._next_refresh - self._clock(), TICK_S)

    @property
    def share_per_s(self) -> float | None:
        """This instance's share before AIMD (None: unlimited)."""
        return self._target

    @property
    def factor(self) -> float:
        """The AIMD factor, in (0, 1]."""
        return self._factor

    @property
    def instances(self) -> int:
        """The most live instances counted in any of the accounts (1: alone)."""
        with self._lock:
            counts = [g.instances for g in self._groups.values()]
        return max(counts, default=1)

    @property
    def rate_per_s(self) -> float | None:
        """The rate last given to the limiter."""
        return self._applied

    # -- the periodic work -----------------------------------------------------------------

    def tick(self) -> None:
        """Read the quota and beat when due, grow the factor back, and set the limiter."""
        now = self._clock()
        if now >= self._next_refresh:
            self._next_refresh = now + self._terms.refresh_s
            self._refresh_quotas()
        if now >= self._next_beat:
            self._next_beat = now + self._terms.heartbeat_s
            self._count_instances()
        with self._lock:
            elapsed = max(now - self._ticked_at, 0.0)
            self._ticked_at = now
            self._factor = min(1.0, self._factor + INCREASE_PER_S * elapsed)
        self._apply()

    def start(self) -> None:
        """Tick once now (the first sends are paced too), then every :data:`TICK_S` in a
        thread of its own until :meth:`stop`."""
        self.tick()
        self._thread = threading.Thread(target=self._run, name="quota-pacer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop ticking and remove this instance's heartbeats: the others take its share at
        their next count."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._ledger is None:
            return
        for group in list(self._groups):
            try:
                self._ledger.end_heartbeat(str(group), self.instance)
            except LedgerUnavailable as error:
                log.warning("could not remove the heartbeat", detail=str(error)[:300])

    def _run(self) -> None:
        while not self._stop.wait(TICK_S):
            try:
                self.tick()
            except Exception as error:  # a bug here must not stop the pacing for good
                log.error("quota pacer tick failed", error=type(error).__name__)

    def _refresh_quotas(self) -> None:
        try:
            self._readers = dict(self._sources())
        except EmailError as error:
            log.warning("cannot tell the services' SES accounts", error_code=error.code)
        for group, read in self._readers.items():
            try:
                quota = read()
            except EmailError as error:
                log.warning(
                    "cannot read the SES sending quota; keeping the last known",
                    quota_group=str(group),
                    error_code=error.code,
                    provider_code=error.provider_code,
                )
                continue
            with self._lock:
                state = self._groups.setdefault(group, _Group())
                state.quota, state.sent_since_read = quota, 0
                if state.exhausted and not state.cap_reached():
                    log.info("SES's 24-hour sending quota has room again", quota_group=str(group))
                state.exhausted = False

    def _count_instances(self) -> None:
        if self._ledger is None:
            return
        expire_after_s = 3 * self._terms.heartbeat_s
        for group in list(self._readers):
            try:
                self._ledger.beat(str(group), self.instance, expire_after_s=expire_after_s)
                live = len(self._ledger.heartbeats(str(group)))
            except LedgerUnavailable as error:
                log.warning("cannot count the live instances", detail=str(error)[:300])
                continue
            with self._lock:
                self._groups.setdefault(group, _Group()).instances = max(live, 1)

    def _apply(self) -> None:
        """Set the limiter to the share times the factor; say when the share changes."""
        with self._lock:
            shares = [
                s for g in self._groups.values() if (s := g.share_per_s(self._terms.fraction))
            ]
            bound = self._terms.upper_bound_per_s
            target = min([*shares, *([bound] if bound is not None else [])], default=None)
            changed = target != self._target
            if changed and self._target is not None:
                # The new quota or count explains the throttling seen before it: start afresh,
                # and let the answers to calls made before the change go unheeded a while.
                self._factor = 1.0
                self._cut_at = self._clock() + CUT_COOLDOWN_S
            self._target = target
            rate = UNLIMITED_PER_S if target is None else max(target * self._factor, 0.01)
            instances = {str(g): s.instances for g, s in self._groups.items()}
            apply = rate != self._applied
            self._applied = rate
        if changed:
            log.info("send rate share", share_per_s=target, instances=instances)
        if apply:
            self.limiter.set_rate_per_s(rate)
