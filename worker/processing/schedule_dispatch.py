"""The dispatcher: scheduled requests that have fallen due, sent through the one handler.

Every ``EMAIL_WORKER_SCHEDULE_POLL_S`` (at once again after a full batch) a
:class:`ScheduleDispatcher` takes up to ``EMAIL_WORKER_SCHEDULE_BATCH`` due schedule records
with a lease (:meth:`~worker.ledger.schedules.Schedules.take_due`) and hands each, as a
:class:`~worker.processing.delivery.Delivery` from its service (``scheduled``: send now), to
the same :class:`~worker.processing.handling.Handler` the transports call: tenancy, the outage
breaker, the send rate and the ledger's claim apply as to any delivery, and its result is
published as any other. A record whose delivery was acked is finished. One held by a cap or a
paused tenant is deferred: due again when the hold may lift
(:func:`~worker.processing.deferral.hold_lifts_in`), which also keeps it out of the due reads
meanwhile. One that was nacked or otherwise held keeps its lease, which runs out in
``EMAIL_WORKER_SCHEDULE_LEASE_S``: then it is taken again (the backoff). One that a stopping
worker handed back is given back at once; one of a paused service is due again after
``EMAIL_WORKER_PAUSE_POLL_S``. The records of held push deliveries
(:mod:`worker.processing.deferral`) are dispatched the same way.

Several instances (and clocks that disagree) may dispatch the same record: its lease can run
out under a slow instance, or look run out to a fast clock. The send is once all the same,
because the dispatched request is claimed in the ledger like any redelivery.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

from worker.config.logs import get_logger
from worker.config.settings import Settings
from worker.formats.result import ErrorCode
from worker.ledger import Ledger, LedgerKey, LedgerUnavailable
from worker.ledger.schedule_stores import schedules_of
from worker.ledger.schedules import Schedule
from worker.processing.deferral import hold_lifts_in
from worker.processing.delivery import Delivery, Outcome
from worker.processing.handling import Handler
from worker.processing.tenancy import SHARED, Source

__all__ = ["ScheduleDispatcher"]

log = get_logger()


class ScheduleDispatcher:
    """Sends ``ledger``'s due scheduled requests through ``handler`` (module docstring)."""

    def __init__(self, handler: Handler, ledger: Ledger, settings: Settings) -> None:
        self._handler = handler
        self._book = schedules_of(ledger)
        self._settings = settings
        group = settings.schedule
        self._poll_s, self._lease_s, self._batch = group.poll_s, group.lease_s, group.batch
        self._pool = ThreadPoolExecutor(group.threads, thread_name_prefix="schedule")
        self._owner = f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Dispatch in a thread of its own until the handler's ``stopping`` is set."""
        self._thread = threading.Thread(target=self.run, name="schedule-dispatch", daemon=True)
        self._thread.start()

    def run(self) -> None:
        stopping = self._handler.stopping
        while not stopping.is_set():
            try:
                if self.dispatch_due() >= self._batch:
                    continue  # more may be due: take them at once, not after a poll
            except LedgerUnavailable as error:
                log.warning("cannot take the due scheduled requests", error=str(error)[:300])
            except Exception as error:  # a bug must not end the dispatching for good
                log.error("dispatching scheduled requests failed", error=type(error).__name__)
            stopping.wait(self._poll_s)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def dispatch_due(self) -> int:
        """Take the records due now and send each; return how many were taken. Raises
        LedgerUnavailable when the records cannot be read."""
        taken = self._book.take_due(owner=self._owner, lease_s=self._lease_s, limit=self._batch)
        if taken:
            log.info("scheduled requests due", count=len(taken))
        list(self._pool.map(self._dispatch, taken))
        return len(taken)

    def _dispatch(self, schedule: Schedule) -> None:
        key = schedule.key
        source = self._source(key.service_id)
        try:
            pauses = self._handler.pauses
            if pauses is not None and pauses.holds(source):
                # Due again after the next read of the pauses: behind the records due now, so
                # a paused service's many deferred requests never crowd them out.
                due_at = self._book.clock() + self._settings.ledger.pause_poll_s
                self._book.defer(key, owner=self._owner, due_at=due_at)
                return
            settled: list[bool] = []
            delivery = Delivery(
                data=schedule.data,
                attributes={},
                message_id=schedule.message_id,
                source=source,
                scheduled=True,
            )
            outcome = self._handler(
                delivery,
                ack=lambda: settled.append(True),
                nack=lambda: settled.append(False),
                hold=lambda: settled.append(False),
            )
            if settled == [True]:
                self._book.finish(key, owner=self._owner)
            elif outcome.error_code == ErrorCode.WORKER_STOPPED:
                self._book.release(key, owner=self._owner)  # for another instance at once
            else:
                self._defer_if_held(key, outcome)
        except LedgerUnavailable as error:
            # The lease runs out, and the record is taken again.
            log.warning("a scheduled request's record could not be updated", error=str(error)[:300])

    def _defer_if_held(self, key: LedgerKey, outcome: Outcome) -> None:
        """Make a record whose request a cap or a paused tenant holds due again when the hold
        may lift; any other stays leased until its lease runs out."""
        wait_s = hold_lifts_in(outcome, self._handler.deps)
        if wait_s is not None:
            due_at = self._book.clock() + max(wait_s, self._poll_s)
            self._book.defer(key, owner=self._owner, due_at=due_at)

    def _source(self, service_id: str) -> Source:
        """Who published it: the service, whose own topic carried it when it arrived."""
        return Source.service(service_id) if self._settings.services.per_service else SHARED
