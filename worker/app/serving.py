"""Running the HTTP apps with uvicorn: ``email-worker serve`` in the foreground, and the
health/metrics server of ``email-worker pull`` in a background thread.

Shutdown on SIGTERM (Cloud Run's stop signal) or SIGINT: the runtime's ``stopping`` event is
set at once, so ``/readyz`` turns 503, new pushes are answered 503, and deliveries not yet
inside their SES call are handed back (503, their ledger claims released); uvicorn stops
accepting connections and lets in-flight requests finish for up to
EMAIL_WORKER_SHUTDOWN_TIMEOUT_S. Requests still running then are abandoned, with the claims
of those whose SES call has not begun released; pending publishes are flushed and the
process exits 0.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType

import uvicorn
from starlette.types import ASGIApp

from worker.app.runtime import Runtime, build_runtime
from worker.config.logs import get_logger
from worker.config.settings import Settings
from worker.transports.http_app import create_app
from worker.transports.push import authenticator_for, push_app

__all__ = ["DEFAULT_PORT", "BackgroundServer", "run_serve", "uvicorn_config"]

log = get_logger()

DEFAULT_PORT = 8080


def uvicorn_config(
    app: ASGIApp, *, host: str, port: int, shutdown_timeout_s: float
) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="off",
        # Our own JSON logs: uvicorn's warnings and errors reach them through stdlib logging.
        log_config=None,
        access_log=False,
        server_header=False,
        # After a stop signal in-flight requests get this long, then they are cancelled
        # (uvicorn annotates it int; it is handed to asyncio.wait_for, which takes a float).
        timeout_graceful_shutdown=shutdown_timeout_s,  # type: ignore[arg-type]
    )


class _Server(uvicorn.Server):
    """A uvicorn server that also tells the worker to stop when a stop signal arrives."""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self.should_exit:
            log.info("signal received", signal=signal.Signals(sig).name)
        self._on_exit()
        super().handle_exit(sig, frame)


def run_serve(settings: Settings) -> int:
    """``email-worker serve``: the push endpoint until SIGTERM; return the exit code.

    The caller has checked the settings (project, allowed services, push authentication).
    """
    # A push answered after the ack deadline is delivered again while it may still be
    # sending: refuse to start when one delivery may outlast it (worker/config/budget.py).
    from worker.config.budget import push_budget_problem, push_budget_s

    if settings.push.ack_deadline_s is None:
        log.warning(
            "EMAIL_WORKER_PUSH_ACK_DEADLINE_S is not set: cannot check that the push "
            "subscription's ack deadline covers one delivery",
            needed_s=push_budget_s(
                send_deadline_s=settings.sending.deadline_s,
                publish_timeout_s=settings.process.publish_timeout_s,
                send_rate_limited=settings.sending.rate_per_s is not None,
            ),
        )
    else:
        problem = push_budget_problem(
            ack_deadline_s=settings.push.ack_deadline_s,
            send_deadline_s=settings.sending.deadline_s,
            publish_timeout_s=settings.process.publish_timeout_s,
            send_rate_limited=settings.sending.rate_per_s is not None,
        )
        if problem is not None:
            log.error("cannot start", detail=problem)
            print(f"email-worker: invalid settings:\n  {problem}", file=sys.stderr)
            return 2  # as for any other invalid setting
    from worker.app.startup import warn_if_redelivery_unchecked

    warn_if_redelivery_unchecked(settings)
    authenticator = authenticator_for(settings)
    if authenticator is None:
        log.warning(
            "push authentication is OFF (EMAIL_WORKER_PUSH_AUTH=off): anyone who can reach "
            "this endpoint can send email; use this only with the emulator or locally"
        )
    try:
        runtime = build_runtime(settings, subscription_readable=False)
    except Exception as error:
        log.error("cannot start", error=type(error).__name__, detail=str(error)[:500])
        return 1
    stopping = runtime.handler.stopping
    port = settings.http.port or DEFAULT_PORT
    app = push_app(runtime.handler, authenticator, settings=settings)
    config = uvicorn_config(
        app,
        host=settings.http.host,
        port=port,
        shutdown_timeout_s=settings.process.shutdown_timeout_s,
    )
    server = _Server(config, on_exit=stopping.set)
    # uvicorn re-raises the stop signal once it has shut down; with these handlers in place
    # that is a no-op and the process exits with its own code.
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGTERM, signal.SIGINT)}
    log.info(
        "serving",
        host=settings.http.host,
        port=port,
        push_auth="on" if authenticator else "off",
        max_delivery_attempts=runtime.handler.max_delivery_attempts,
    )
    try:
        server.run()
    finally:
        stopping.set()
        unfinished = app.state.push_endpoint.busy()
        # Before the ledger closes: the claims of abandoned deliveries whose SES call has not
        # begun are given back, so that Pub/Sub's next delivery need not wait them out.
        released = runtime.handler.release_unsent_claims() if unfinished else 0
        runtime.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not server.started:
        log.error("cannot listen", host=settings.http.host, port=port)
        return 1
    if unfinished:
        log.warning(
            "shutdown timeout: unfinished deliveries abandoned; Pub/Sub delivers them again",
            count=unfinished,
            claims_released=released,
        )
    log.info("stopped", exit_code=0)
    if unfinished:
        # Their requests were cancelled unanswered, so Pub/Sub delivers them again; their
        # threads (blocked in SES) must not hold the process past the shutdown timeout.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


class BackgroundServer:
    """An app served by uvicorn in a daemon thread (no signal handling: the owner stops it)."""

    def __init__(self, app: ASGIApp, *, host: str, port: int, shutdown_timeout_s: float) -> None:
        config = uvicorn_config(app, host=host, port=port, shutdown_timeout_s=shutdown_timeout_s)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="http-server", daemon=True)
        self.host = host
        self.port = port

    @classmethod
    def for_pull(cls, runtime: Runtime) -> BackgroundServer | None:
        """Health, readiness and metrics of a pull worker on $PORT, or None without PORT."""
        settings = runtime.settings
        if settings.http.port is None:
            return None
        stopping = runtime.handler.stopping
        app = create_app(metrics=runtime.metrics, ready=lambda: not stopping.is_set())
        return cls(
            app,
            host=settings.http.host,
            port=settings.http.port,
            shutdown_timeout_s=min(settings.process.shutdown_timeout_s, 2.0),
        ).start()

    def start(self, timeout_s: float = 10.0) -> BackgroundServer:
        """Start listening; RuntimeError if the server cannot (e.g. the port is taken)."""
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"cannot serve HTTP on {self.host}:{self.port}")
            time.sleep(0.02)
        log.info("serving health and metrics", host=self.host, port=self.port)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=timeout_s)
