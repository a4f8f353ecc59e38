"""Streaming-pull transport: Pub/Sub messages in, through the shared handler, acked or nacked.

The transport only turns a Pub/Sub message into a :class:`~worker.processing.pipeline.Delivery`
and hands it to the :class:`~worker.processing.handling.Handler`; it owns flow control,
supervision of the stream, graceful shutdown, and closing the stream of a subscription an
operator paused (``email-worker pause``) until it is resumed.

The module runs over 300 lines: it is one :class:`PullWorker`, whose stream supervision,
pause handling, rechecks of leased messages and shutdown share its streams, its executor and
the messages it holds; decoding and everything after it live in the pipeline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1
from google.cloud.pubsub_v1.subscriber.scheduler import ThreadScheduler

from worker.config.logs import get_logger
from worker.config.settings import Settings
from worker.processing.handling import Handler
from worker.processing.pipeline import Delivery, Outcome, Status
from worker.processing.tenancy import Source, subscription_sources
from worker.transports.ack_batches import gather_acks

__all__ = ["PullWorker", "flow_control"]

log = get_logger()

# Errors after which pulling again cannot help: the subscription is gone or forbidden.
_FATAL = (gexc.NotFound, gexc.PermissionDenied, gexc.Unauthenticated, gexc.InvalidArgument)

# Waits between reopening streams that end on their own: doubling from the first to the cap.
_FIRST_BACKOFF_S = 1.0
_MAX_BACKOFF_S = 30.0
# A stream that stayed open this long was working, even if no message came.
_HEALTHY_STREAM_S = 30.0
# How often a message whose request another delivery is sending is looked at again. It stays
# leased meanwhile: a nack would have it redelivered at once, and each redelivery counts
# against the subscription's delivery attempts before the claim is finished or expires.
_RECHECK_IN_PROGRESS_S = 2.0
# How often a message held through an outage asks again whether it may start.
_HOLD_POLL_S = 0.5


def flow_control(settings: Settings) -> pubsub_v1.types.FlowControl:
    """The subscriber's flow control and leases: see docs/scaling.md, "Leases".

    Every held message gets the same fixed ack deadline, renewed by the client library before
    90% of it has passed. The same value is the stream's ack deadline, which covers messages
    Pub/Sub has sent but the client has not read yet (held back by flow control). A fixed
    deadline, rather than the library's adaptive one, bounds how long a crashed worker's
    messages stay away; ``max_messages`` well above the thread count keeps the stream read.
    """
    return pubsub_v1.types.FlowControl(
        max_messages=settings.pull.max_messages,
        max_bytes=settings.pull.max_bytes,
        min_duration_per_lease_extension=settings.pull.ack_deadline_s,
        max_duration_per_lease_extension=settings.pull.ack_deadline_s,
    )


class PullWorker:
    """Pulls from every subscription the settings name (see
    :func:`~worker.processing.tenancy.subscription_sources`) until :meth:`stop` is called.

    Each subscription has its own stream, supervised in its own thread and with its own pool
    of ``concurrency`` threads (the client library's scheduler must not be shared between
    streams); a semaphore keeps the deliveries processed at once, over all streams, to
    ``concurrency``.
    """

    def __init__(
        self,
        settings: Settings,
        handler: Handler,
        subscriber: Any,
        *,
        wait: Callable[[float], object] | None = None,
        sources: Mapping[str, Source] | None = None,
    ) -> None:
        self._settings = settings
        self._handler = handler
        self._subscriber = subscriber
        self._sources = dict(sources if sources is not None else subscription_sources(settings))
        self._stop = threading.Event()
        # Set once deferred messages are handed back: only then may the streams close.
        self._streams_may_close = threading.Event()
        # How to wait between streams; returns early on stop. Tests record instead.
        self._wait = wait or self._stop.wait
        self._slots = threading.BoundedSemaphore(settings.process.concurrency)
        self._received = 0
        self._in_flight: dict[str, Any] = {}
        self._in_flight_lock = threading.Lock()
        # Messages waiting for another delivery of their request to finish, by ack id.
        self._deferred: dict[str, tuple[Any, Source, threading.Timer]] = {}
        # Deferred messages being processed again, in their timers' threads (not the streams').
        self._rechecking = 0
        self._rechecked = threading.Condition(self._in_flight_lock)
        # When the shutdown timeout runs out (monotonic); set once stopping.
        self._deadline = float("inf")
        self._exit_code = 0
        #: Messages still being processed when the shutdown timeout ran out (handed back).
        self.abandoned = 0

    def stop(self) -> None:
        """Ask the worker to stop pulling and wind down (safe from a signal handler)."""
        self._stop.set()

    def _callback_for(self, source: Source) -> Callable[[Any], None]:
        return lambda message: self._callback(message, source)

    def _callback(self, message: Any, source: Source) -> None:
        with self._in_flight_lock:
            self._in_flight[message.ack_id] = message
            self._received += 1
        try:
            delivery = Delivery(
                data=bytes(message.data),
                attributes=dict(message.attributes),
                message_id=message.message_id,
                delivery_attempt=message.delivery_attempt,
                source=source,
                may_hold=True,
            )
            handed_back: list[bool] = []
            held: list[bool] = []
            while True:
                held.clear()
                with self._slots:
                    outcome = self._handler(
                        delivery,
                        ack=message.ack,
                        nack=lambda: handed_back.append(True),
                        hold=lambda: held.append(True),
                    )
                if not held:
                    break
                if not self._wait_out_outage(outcome):
                    handed_back.append(True)  # stopping: hand it back
                    break
            if handed_back:
                if outcome.status is Status.IN_PROGRESS and not self._stop.is_set():
                    self._defer(message, source)
                else:
                    message.nack()
        finally:
            with self._in_flight_lock:
                self._in_flight.pop(message.ack_id, None)

    def _wait_out_outage(self, held: Outcome) -> bool:
        """Wait, keeping the message leased, until the outage breaker (or, for a paused SES
        tenant's request, that tenant's next probe) may let it start, and at least the
        outcome's own ``hold_s`` (its service's turn or daily cap); False when the worker stops
        meanwhile. The client library keeps renewing the lease, and while every thread waits
        here flow control stops leasing more: the rest of the backlog stays in Pub/Sub, with no
        delivery attempt used."""
        wait_s = max(self._handler.seconds_until_admission(held), held.hold_s, _HOLD_POLL_S)
        return not self._stop.wait(wait_s)

    def _defer(self, message: Any, source: Source) -> None:
        """Look at ``message`` again shortly, keeping it leased until then."""
        timer = threading.Timer(_RECHECK_IN_PROGRESS_S, self._recheck, args=(message,))
        timer.daemon = True
        with self._in_flight_lock:
            self._deferred[message.ack_id] = (message, source, timer)
        timer.start()

    def _recheck(self, message: Any) -> None:
        with self._in_flight_lock:
            deferred = self._deferred.pop(message.ack_id, None)
            stopping = self._stop.is_set()
            if deferred is not None and not stopping:
                self._rechecking += 1  # the shutdown waits for it (_wait_for_rechecks)
        if deferred is None:
            return  # the shutdown handed it back already
        if stopping:
            message.nack()
            return
        try:
            self._callback(message, deferred[1])
        finally:
            with self._rechecked:
                self._rechecking -= 1
                self._rechecked.notify_all()

    def _wait_for_rechecks(self) -> None:
        """Let rechecks under way settle their messages while the streams are still open."""
        with self._rechecked:
            self._rechecked.wait_for(
                lambda: self._rechecking == 0, timeout=max(0.0, self._deadline - time.monotonic())
            )

    def _hand_back_deferred(self, source: Source | None = None) -> None:
        """Nack the deferred messages (of ``source`` only, when given)."""
        with self._in_flight_lock:
            deferred = [entry for entry in self._deferred.values() if source in (None, entry[1])]
            for message, _source, _timer in deferred:
                del self._deferred[message.ack_id]
        for message, _source, timer in deferred:
            timer.cancel()
            message.nack()

    def run(self) -> int:
        """Pull until stopped; return the process exit code (1 when a subscription cannot be
        pulled from at all)."""
        gather_acks()
        threads = [
            threading.Thread(
                target=self._pull, args=(path, source), name=f"pull-{source.kind}", daemon=True
            )
            for path, source in self._sources.items()
        ]
        for thread in threads:
            thread.start()
        while not self._stop.wait(0.5):  # a timeout, so that signal handlers get to run
            pass
        log.info(
            "stopping: no new messages; finishing in-flight work",
            timeout_s=self._settings.process.shutdown_timeout_s,
        )
        self._deadline = time.monotonic() + self._settings.process.shutdown_timeout_s
        self._handler.stopping.set()
        # Before the streams close: a nack sent after them may be lost.
        self._hand_back_deferred()
        self._wait_for_rechecks()
        self._streams_may_close.set()
        for thread in threads:
            thread.join()
        with self._in_flight_lock:
            unfinished = bool(self._in_flight)
        if unfinished:  # a recheck outlasted the timeout (the streams' callbacks are done)
            self._abandon_unfinished()
        return self._exit_code

    def _pull(self, path: str, source: Source) -> None:
        """Keep one subscription's stream open until stopped (the run loop of one stream)."""
        backoff_s = _FIRST_BACKOFF_S
        while not self._stop.is_set():
            if self._held(source):
                self._wait_while_held(path, source)
                continue
            opened_at, received_before = time.monotonic(), self._received
            executor = ThreadPoolExecutor(
                max_workers=self._settings.process.concurrency, thread_name_prefix="email-worker"
            )
            future = self._subscriber.subscribe(
                path,
                callback=self._callback_for(source),
                flow_control=flow_control(self._settings),
                scheduler=ThreadScheduler(executor),
                await_callbacks_on_shutdown=True,
            )
            log.info("pulling", subscription=path, source=source.kind.value)
            while not self._stop.wait(0.5):
                if future.done() or self._held(source):
                    break
            if self._stop.is_set():
                self._streams_may_close.wait()
                self._shutdown(future)
                return
            if not future.done():  # paused by an operator
                self._close_for_pause(path, source, future)
                backoff_s = _FIRST_BACKOFF_S
                continue
            error = future.exception()
            if isinstance(error, _FATAL):
                log.error(
                    "cannot pull from subscription",
                    subscription=path,
                    error=type(error).__name__,
                    detail=str(error)[:300],
                )
                self._exit_code = 1
                self.stop()
                return
            # A stream that worked (delivered messages, or lasted) ended one run of failures:
            # the next failure starts the backoff again, instead of waiting the cap for good.
            if (
                self._received > received_before
                or time.monotonic() - opened_at >= _HEALTHY_STREAM_S
            ):
                backoff_s = _FIRST_BACKOFF_S
            log.warning(
                "stream ended; pulling again",
                subscription=path,
                error=type(error).__name__,
                backoff_s=backoff_s,
            )
            self._wait(backoff_s)
            backoff_s = min(backoff_s * 2, _MAX_BACKOFF_S)

    def _held(self, source: Source) -> bool:
        pauses = self._handler.pauses
        return pauses is not None and pauses.holds(source)

    def _wait_while_held(self, path: str, source: Source) -> None:
        log.warning("paused: not pulling", subscription=path, source=source.kind.value)
        while self._held(source) and not self._stop.wait(0.5):
            pass

    def _close_for_pause(self, path: str, source: Source, future: Any) -> None:
        """Stop leasing from a paused subscription: what is being processed finishes; what
        was received but not started, or waits for another delivery, goes back to Pub/Sub."""
        log.warning("paused: closing the stream", subscription=path, source=source.kind.value)
        self._hand_back_deferred(source)
        future.cancel()
        while True:
            try:
                future.result(timeout=0.5)
                return
            except FutureTimeout:
                if self._stop.is_set():  # stopped meanwhile: within the shutdown timeout
                    self._streams_may_close.wait()
                    self._shutdown(future)
                    return
            except Exception as error:  # the stream may have failed meanwhile; it is closed
                log.warning("stream ended with an error while pausing", error=type(error).__name__)
                return

    def _shutdown(self, future: Any) -> None:
        future.cancel()
        try:
            future.result(timeout=max(0.0, self._deadline - time.monotonic()))
        except FutureTimeout:
            self._abandon_unfinished()
        except Exception as error:  # the stream may already have failed; nothing to wind down
            log.warning("stream ended with an error during shutdown", error=type(error).__name__)

    def _abandon_unfinished(self) -> None:
        """At the shutdown timeout: hand back every message still being processed, and give
        back the claims of those whose SES call has not begun (the process exits next)."""
        with self._in_flight_lock:
            unfinished = list(self._in_flight.values())
            self._in_flight.clear()
        for message in unfinished:
            message.nack()
        released = self._handler.release_unsent_claims()
        if not unfinished and not released:
            return  # another stream's timeout handed everything back already
        with self._in_flight_lock:
            self.abandoned += len(unfinished)
        log.warning(
            "shutdown timeout: handed back unfinished messages",
            count=len(unfinished),
            claims_released=released,
        )
