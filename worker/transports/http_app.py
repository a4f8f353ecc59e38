"""The worker's HTTP app: ``/healthz``, ``/readyz`` and ``/metrics``, plus a transport's routes.

Shared by both transports: ``email-worker serve`` adds the push route
(:func:`worker.transports.push.push_app`), and ``email-worker pull`` serves the app as it is
on $PORT for Cloud Run's probes and Prometheus.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from worker.processing.metrics import CONTENT_TYPE_LATEST, Metrics

__all__ = ["create_app"]


def create_app(
    *, metrics: Metrics, ready: Callable[[], bool], routes: Sequence[BaseRoute] = ()
) -> Starlette:
    """``/healthz``, ``/readyz`` (503 once ``ready`` says no), ``/metrics`` and ``routes``."""

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        if ready():
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "not ready"}, status_code=503)

    async def metrics_text(_: Request) -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_text, methods=["GET"]),
            *routes,
        ]
    )
