"""``email-worker pull``: streaming pull from the worker's subscriptions, run by the shared
lifecycle (:func:`~worker.app.lifecycle.run_until_signalled`), with health, readiness and
metrics on $PORT when it is set.

The pull worker applies the shutdown timeout itself: at a stop it hands back what has not
begun, lets the rest finish until the timeout, then hands back what is still unfinished
(claims released); those deliveries' threads may be blocked in SES calls, so the process
leaves without waiting for them.
"""

from __future__ import annotations

import threading

from worker.app.http_server import health_server
from worker.app.lifecycle import EXIT_FAILURE, HAND_BACK_S, opened_or_logged, run_until_signalled
from worker.app.runtime import build_runtime
from worker.app.startup import warn_if_redelivery_unchecked
from worker.config.settings import Settings
from worker.transports.pull import PullWorker

__all__ = ["run_pull"]


def run_pull(settings: Settings) -> int:
    """Pull and send until SIGTERM or SIGINT; return the exit code. The caller has checked
    the settings and what they name (:func:`~worker.app.check_command.check_before_start`)."""
    warn_if_redelivery_unchecked(settings)
    runtime = opened_or_logged(lambda: build_runtime(settings))
    if runtime is None:
        return EXIT_FAILURE
    stopping = runtime.handler.stopping
    runtime.start_schedule_dispatch()
    return run_until_signalled(
        _Pulling(PullWorker(settings, runtime.handler, runtime.subscriber), stopping),
        runtime,
        shutdown_timeout_s=settings.process.shutdown_timeout_s,
        http=health_server(settings, runtime.metrics, ready=lambda: not stopping.is_set()),
        settle_s=HAND_BACK_S,
    )


class _Pulling:
    """The pull worker as the command's main loop. A stop also sets the handler's
    ``stopping`` event at once, in the signal handler: deliveries not yet inside their SES
    call hand themselves back from then on, not only once the worker's own thread has
    noticed the stop."""

    def __init__(self, worker: PullWorker, stopping: threading.Event) -> None:
        self._worker = worker
        self._stopping = stopping

    @property
    def abandoned(self) -> int:
        return self._worker.abandoned

    def stop(self) -> None:
        self._worker.stop()
        self._stopping.set()

    def run(self) -> int:
        return self._worker.run()
