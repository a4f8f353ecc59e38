"""uvicorn, configured once: the settings every HTTP server of the worker shares, and the
health/metrics server ``pull`` and ``events`` run beside their main loop, in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import uvicorn
from starlette.types import ASGIApp

from worker.config.logs import get_logger
from worker.config.settings import Settings
from worker.processing.metrics import Metrics
from worker.transports.http_app import create_app

__all__ = ["BackgroundServer", "health_server", "uvicorn_config"]

log = get_logger()


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


class BackgroundServer:
    """An app served by uvicorn in a daemon thread (no signal handling: the owner stops it)."""

    def __init__(self, app: ASGIApp, *, host: str, port: int, shutdown_timeout_s: float) -> None:
        config = uvicorn_config(app, host=host, port=port, shutdown_timeout_s=shutdown_timeout_s)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="http-server", daemon=True)
        self.host = host
        self.port = port

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


def health_server(
    settings: Settings, metrics: Metrics, *, ready: Callable[[], bool]
) -> BackgroundServer | None:
    """/healthz, /readyz (``ready()``) and /metrics on $PORT, not started yet; None without
    PORT. It stops within 2 s: it only answers probes and scrapes."""
    if settings.http.port is None:
        return None
    return BackgroundServer(
        create_app(metrics=metrics, ready=ready),
        host=settings.http.host,
        port=settings.http.port,
        shutdown_timeout_s=min(settings.process.shutdown_timeout_s, 2.0),
    )
