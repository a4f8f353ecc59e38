"""What the operators' pauses (``email-worker pause``) mean to this worker, read from the ledger.

The pause records live in the request ledger, which every worker instance shares. A
:class:`PauseWatch` reads them at most every ``EMAIL_WORKER_PAUSE_POLL_S`` and answers, for a
subscription's :class:`~worker.processing.tenancy.Source`, whether deliveries from it are on
hold: a service's own subscription when that service or every service is paused; the replay
and the shared subscriptions, which carry every service's requests, only when every service
is. The transports act on the answer (the pull transport stops leasing, the push endpoint
answers 503); nothing here touches Pub/Sub.

When the ledger cannot be read, the last answer stands (a worker that never read it starts
with nothing paused): an unreachable ledger already stops every send, as no claim succeeds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection

from worker.config.logs import get_logger
from worker.ledger import ALL_SERVICES, Ledger, LedgerUnavailable
from worker.processing.metrics import Metrics
from worker.processing.tenancy import Source, SourceKind

__all__ = ["PauseWatch"]

log = get_logger()


class PauseWatch:
    """The paused scopes in ``ledger``, refreshed when older than ``poll_s``.

    ``services``: the services this worker sends for, for the paused-services gauge.
    Safe to call from many threads; one of them reads the ledger while the others use the
    answer they had.
    """

    def __init__(
        self,
        ledger: Ledger,
        *,
        poll_s: float,
        services: Collection[str],
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ledger = ledger
        self._poll_s = poll_s
        self._services = frozenset(services)
        self._metrics = metrics
        self._clock = clock
        self._scopes: frozenset[str] = frozenset()
        self._read_at: float | None = None
        self._lock = threading.Lock()

    def holds(self, source: Source) -> bool:
        """Whether deliveries from ``source`` must wait: its service, or all, is paused."""
        return _held(self.scopes(), source)

    def holds_now(self, source: Source) -> bool:
        """Like :meth:`holds`, but a hold is confirmed by reading the ledger again at once.

        For a delivery that cannot wait unanswered (a push): ``resume`` removes the pause
        record before it turns push back on, so a fresh read never refuses a push that the
        resume let through, whatever the poll interval. Only deliveries that the last
        answer holds cost a read.
        """
        if not self.holds(source):
            return False
        with self._lock:
            self._refresh(self._clock(), fresh=True)
        return _held(self._scopes, source)

    def scopes(self) -> frozenset[str]:
        """The paused scopes (service ids, or ``*`` for all), read again when stale."""
        now = self._clock()
        stale = self._read_at is None or now - self._read_at >= self._poll_s
        # Only the first read makes others wait; later, whoever finds the lock taken goes on
        # with the answer it has.
        if stale and self._lock.acquire(blocking=self._read_at is None):
            try:
                self._refresh(now)
            finally:
                self._lock.release()
        return self._scopes

    def _refresh(self, now: float, *, fresh: bool = False) -> None:
        if not fresh and self._read_at is not None and now - self._read_at < self._poll_s:
            return  # another thread has just read them
        try:
            scopes = frozenset(pause.scope for pause in self._ledger.pauses())
        except LedgerUnavailable as error:
            log.warning("cannot read the pauses; keeping the last known", detail=str(error))
            scopes = self._scopes
        self._read_at = now
        if scopes != self._scopes:
            self._announce(scopes)
        self._scopes = scopes

    def _announce(self, scopes: frozenset[str]) -> None:
        paused = self._services if ALL_SERVICES in scopes else self._services & scopes
        self._metrics.paused_services.set(len(paused))
        resumed = sorted(self._scopes - scopes)
        if resumed:
            log.info("sending resumed", scopes=resumed)
        if scopes - self._scopes:
            log.warning(
                "sending paused",
                scopes=sorted(scopes),
                all_services=ALL_SERVICES in scopes,
                paused_services=sorted(paused),
            )


def _held(scopes: frozenset[str], source: Source) -> bool:
    if ALL_SERVICES in scopes:
        return True
    return source.kind is SourceKind.SERVICE and source.service_id in scopes
