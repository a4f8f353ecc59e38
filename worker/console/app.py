"""The console's Starlette application: routes, guards and error pages."""

from __future__ import annotations

from google.api_core.exceptions import GoogleAPIError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from worker.client.pubsub_rpc import describe_error
from worker.config.logs import get_logger
from worker.console.iap import AccessDenied, IapVerifier
from worker.console.pages import Pages
from worker.console.security import Guard, identity_of
from worker.console.sources import Sources
from worker.ledger import LedgerUnavailable

__all__ = ["console_app"]

log = get_logger()


def console_app(sources: Sources, verifier: IapVerifier | None) -> Starlette:
    """The console over ``sources``; behind IAP when ``verifier`` is given."""
    pages = Pages(sources)
    return Starlette(
        routes=[
            Route("/", pages.home),
            Route("/request", pages.request_page),
            Route("/recipient", pages.recipient, methods=["GET", "POST"]),
            Route("/dead-letters", pages.dead_letters),
            Route("/services", pages.services),
            Route("/dead-letters/confirm", pages.confirm),
            Route("/dead-letters/replay", pages.replay, methods=["POST"]),
            Route("/dead-letters/purge", pages.purge, methods=["POST"]),
            Route("/jobs/{job_id}", pages.job),
            Mount("/static", StaticFiles(packages=[("worker.console", "static")])),
        ],
        middleware=[Middleware(Guard, verifier=verifier)],
        exception_handlers={
            AccessDenied: _denied,
            LedgerUnavailable: _unavailable,
            GoogleAPIError: _pubsub_error,
        },
    )


async def _denied(request: Request, error: Exception) -> Response:
    assert isinstance(error, AccessDenied)
    log.warning(
        "console action refused",
        who=identity_of(request).who,
        reason=error.reason,
        path=request.url.path,
    )
    return PlainTextResponse(f"Refused ({error.reason}).\n", status_code=error.status)


async def _unavailable(request: Request, error: Exception) -> Response:
    log.warning("console cannot read the ledger", path=request.url.path, error=str(error)[:200])
    return PlainTextResponse("The request ledger cannot be read now.\n", status_code=503)


async def _pubsub_error(request: Request, error: Exception) -> Response:
    detail = describe_error(error)
    log.warning("console cannot reach Pub/Sub", path=request.url.path, error=detail)
    return PlainTextResponse(f"Pub/Sub cannot be used now: {detail}\n", status_code=503)
