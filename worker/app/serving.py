"""``email-worker serve``: the push endpoint under uvicorn, run by the shared lifecycle
(:func:`~worker.app.lifecycle.run_until_signalled`).

Shutdown on SIGTERM (Cloud Run's stop signal) or SIGINT: the runtime's ``stopping`` event is
set at once, so ``/readyz`` turns 503, new pushes are answered 503, and deliveries not yet
inside their SES call are handed back (503, their ledger claims released); uvicorn stops
accepting connections and lets in-flight requests finish for up to
EMAIL_WORKER_SHUTDOWN_TIMEOUT_S. Requests still running then are abandoned, with the claims
of those whose SES call has not begun released; pending publishes are flushed and the
process exits 0.
"""

from __future__ import annotations

import contextlib

import uvicorn
from starlette.types import ASGIApp

from worker.app.http_server import uvicorn_config
from worker.app.lifecycle import (
    EXIT_FAILURE,
    EXIT_OK,
    HAND_BACK_S,
    opened_or_logged,
    run_until_signalled,
)
from worker.app.runtime import Runtime, build_runtime
from worker.app.startup import warn_if_push_budget_unchecked, warn_if_redelivery_unchecked
from worker.config.logs import get_logger
from worker.config.settings import Settings
from worker.transports.push import authenticator_for, push_app

__all__ = ["DEFAULT_PORT", "run_serve"]

log = get_logger()

DEFAULT_PORT = 8080


def run_serve(settings: Settings) -> int:
    """``email-worker serve``: the push endpoint until SIGTERM; return the exit code.

    The caller has checked the settings (project, allowed services, push authentication,
    the push budget: :func:`~worker.app.checks.settings_problems`).
    """
    warn_if_push_budget_unchecked(settings)
    warn_if_redelivery_unchecked(settings)
    authenticator = authenticator_for(settings)
    if authenticator is None:
        log.warning(
            "push authentication is OFF (EMAIL_WORKER_PUSH_AUTH=off): anyone who can reach "
            "this endpoint can send email; use this only with the emulator or locally"
        )
    runtime = opened_or_logged(lambda: build_runtime(settings, subscription_readable=False))
    if runtime is None:
        return EXIT_FAILURE
    port = settings.http.port or DEFAULT_PORT
    app = push_app(runtime.handler, authenticator, settings=settings)
    server = _PushServer(runtime, app, host=settings.http.host, port=port)
    runtime.start_schedule_dispatch()
    log.info(
        "serving",
        host=settings.http.host,
        port=port,
        push_auth="on" if authenticator else "off",
        max_delivery_attempts=runtime.handler.max_delivery_attempts,
    )
    return run_until_signalled(
        server,
        runtime,
        shutdown_timeout_s=settings.process.shutdown_timeout_s,
        settle_s=HAND_BACK_S,
    )


class _PushServer:
    """The push endpoint under uvicorn, as the command's main loop.

    A stop sets the runtime's ``stopping`` event at once (``/readyz`` 503, new pushes 503,
    deliveries not yet inside their SES call handed back), then uvicorn stops accepting
    connections and gives in-flight requests the shutdown timeout.
    """

    def __init__(self, runtime: Runtime, app: ASGIApp, *, host: str, port: int) -> None:
        config = uvicorn_config(
            app,
            host=host,
            port=port,
            shutdown_timeout_s=runtime.settings.process.shutdown_timeout_s,
        )
        self._server = uvicorn.Server(config)
        self._runtime = runtime
        self._endpoint = app.state.push_endpoint  # type: ignore[attr-defined]
        self._host, self._port = host, port
        self.abandoned = 0

    def stop(self) -> None:
        self._runtime.handler.stopping.set()
        self._server.should_exit = True

    def run(self) -> int:
        with contextlib.suppress(SystemExit):  # uvicorn's way of saying it cannot listen
            self._server.run()
        self.stop()
        if not self._server.started:
            log.error("cannot listen", host=self._host, port=self._port)
            return EXIT_FAILURE
        self.abandoned = self._endpoint.busy()
        if self.abandoned:
            # Before the ledger closes: the claims of abandoned deliveries whose SES call has
            # not begun are given back, so that Pub/Sub's next delivery need not wait them
            # out. Their requests were cancelled unanswered: Pub/Sub delivers them again.
            released = self._runtime.handler.release_unsent_claims()
            log.warning(
                "shutdown timeout: unfinished deliveries abandoned; Pub/Sub delivers them again",
                count=self.abandoned,
                claims_released=released,
            )
        return EXIT_OK
