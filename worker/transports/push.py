"""Pub/Sub push transport: an ASGI app whose ``POST /pubsub/push`` runs the shared handler.

Pub/Sub sends each message as a JSON envelope::

    {"message": {"data": "<base64>", "attributes": {...}, "messageId": "..."},
     "subscription": "projects/P/subscriptions/S", "deliveryAttempt": 3}

(decoded by :mod:`worker.transports.push_envelope`) and treats 2xx answers as acks and
anything else as nacks (redelivered with backoff). So the handler's ack becomes ``204 No
Content`` and its nack ``503`` (``429`` when SES throttled), exactly the decisions the pull
transport carries out (see :mod:`worker.processing.decisions`).
A request held by a daily cap or a paused SES tenant, which pull would keep leased, is
deferred into the ledger's schedule records and acked (:mod:`worker.processing.deferral`).

Requests are refused before anything is processed: a bad or missing token gets 401/403, a
content type other than JSON 415, a body larger than Pub/Sub can send 413, an envelope
Pub/Sub would not send 400, and a push for a service an operator paused 503. The blocking
work (token verification, which may fetch certificates, and the handler, which calls SES)
runs in worker threads, never on the event loop; at most ``concurrency`` deliveries are
processed at once.

The app around the endpoint also serves ``/healthz``, ``/readyz`` and ``/metrics`` (see
:mod:`worker.transports.http_app`, which the pull transport's health server shares).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from worker.config.logs import OncePerInterval, get_logger
from worker.config.settings import Settings
from worker.formats.error_codes import ErrorCode
from worker.processing.handling import Handler
from worker.processing.pipeline import Status
from worker.processing.tenancy import SHARED, Source, subscription_sources
from worker.transports.http_app import create_app
from worker.transports.push_auth import (
    AuthFailure,
    CertsCache,
    CertsUnavailable,
    PushAuthenticator,
)
from worker.transports.push_envelope import EnvelopeError, PushEnvelope, parse_envelope

__all__ = [
    "MAX_BODY_BYTES",
    "PUSH_PATH",
    "EnvelopeError",
    "PushEndpoint",
    "PushEnvelope",
    "authenticator_for",
    "parse_envelope",
    "push_app",
]

log = get_logger()

PUSH_PATH = "/pubsub/push"
#: Pub/Sub messages carry at most 10 MB of data: 13.4 MiB in base64, plus up to 100
#: attributes (256-byte keys, 1024-byte values, JSON-escaped) and the envelope's fields.
MAX_BODY_BYTES = 16 * 1024 * 1024
# Refused pushes are logged at most this often per status and reason (see docs/push.md).
_REFUSAL_LOG_INTERVAL_S = 60.0


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _is_json(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


class PushEndpoint:
    """``POST /pubsub/push``: authenticate, check, parse, handle, answer."""

    def __init__(
        self,
        handler: Handler,
        authenticator: PushAuthenticator | None,
        *,
        concurrency: int,
        max_body_bytes: int = MAX_BODY_BYTES,
        subscription: str | None = None,
        sources: Mapping[str, Source] | None = None,
    ) -> None:
        self._handler = handler
        # EMAIL_WORKER_PUSH_SUBSCRIPTION: when set, the only subscription pushes may come from.
        self._subscription = subscription
        # Per-service tenancy: the subscriptions pushes may come from, and whom each
        # authenticates. None: shared tenancy.
        self._sources = sources
        self._metrics = handler.metrics
        self._authenticator = authenticator
        self._concurrency = concurrency
        self._max_body_bytes = max_body_bytes
        self._limiter: anyio.CapacityLimiter | None = None
        self._busy = 0
        self._busy_lock = threading.Lock()
        self._refusals = OncePerInterval(_REFUSAL_LOG_INTERVAL_S)

    def route(self) -> Route:
        """``POST /pubsub/push``, for :func:`~worker.transports.http_app.create_app`."""
        return Route(PUSH_PATH, self.handle, methods=["POST"])

    def busy(self) -> int:
        """Deliveries whose processing has not finished (abandoned ones included)."""
        with self._busy_lock:
            return self._busy

    async def handle(self, request: Request) -> Response:
        response = await self._respond(request)
        self._metrics.push_responses.labels(str(response.status_code)).inc()
        return response

    async def _respond(self, request: Request) -> Response:
        claims: Mapping[str, Any] = {}
        if self._authenticator is not None:
            verified = await self._authenticate(request.headers.get("authorization"))
            if isinstance(verified, Response):
                return verified
            claims = verified
        if not _is_json(request.headers.get("content-type", "")):
            return _error(415, "the body must be a Pub/Sub push envelope (application/json)")
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                return _error(400, "invalid Content-Length")
            if int(declared) > self._max_body_bytes:
                return _error(413, "the body is larger than a Pub/Sub push request can be")
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > self._max_body_bytes:
                    return _error(413, "the body is larger than a Pub/Sub push request can be")
                chunks.append(chunk)
        except ClientDisconnect:
            return _error(400, "the client went away before sending the whole body")
        if self._handler.stopping.is_set():
            return _error(503, "shutting down; Pub/Sub will deliver this message again")
        if self._limiter is None:  # created here: it belongs to the running event loop
            self._limiter = anyio.CapacityLimiter(self._concurrency)
        # Cancelled (shutdown timeout): the answer is dropped and the thread left to finish;
        # without a 2xx Pub/Sub delivers the message again.
        return await anyio.to_thread.run_sync(
            self._process, b"".join(chunks), claims, limiter=self._limiter, abandon_on_cancel=True
        )

    async def _authenticate(self, authorization: str | None) -> Mapping[str, Any] | Response:
        """The token's verified claims, or the answer refusing the request."""
        assert self._authenticator is not None
        try:
            return await anyio.to_thread.run_sync(
                self._authenticator.verify, authorization, abandon_on_cancel=True
            )
        except AuthFailure as failure:
            return self._refused(failure)
        except CertsUnavailable:
            return _error(503, "cannot verify tokens right now; Pub/Sub will retry")

    def _refused(self, failure: AuthFailure) -> Response:
        """Count and (rate-limited) log an authentication failure; the answer to give."""
        self._metrics.push_auth_failures.labels(failure.reason).inc()
        held_back = self._refusals.admit((failure.status, failure.reason))
        if held_back is not None:
            log.warning(
                "push request refused",
                status=failure.status,
                reason=failure.reason,
                not_logged_since=held_back,
            )
        if failure.status == 401:
            return _error(
                401,
                "a valid Pub/Sub OIDC token is required",
                {"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        if failure.reason == "wrong_subscription_audience":
            return _error(403, "the token was not issued for the subscription the push names")
        return _error(403, "the token was not issued to the expected service account")

    def _process(self, body: bytes, claims: Mapping[str, Any]) -> Response:
        """Runs in a worker thread: parse the envelope and hand the delivery to the handler."""
        with self._busy_lock:
            self._busy += 1
        try:
            return self._process_envelope(body, claims)
        finally:
            with self._busy_lock:
                self._busy -= 1

    def _process_envelope(self, body: bytes, claims: Mapping[str, Any]) -> Response:
        try:
            envelope = parse_envelope(body)
        except EnvelopeError as error:
            log.warning("malformed push envelope", detail=str(error))
            return _error(400, str(error))
        if self._authenticator is not None:
            try:
                # A per-subscription audience binds the token to the envelope's subscription.
                self._authenticator.check_subscription(claims, envelope.subscription)
            except AuthFailure as failure:
                return self._refused(failure)
        source = self._source_of(envelope.subscription)
        if source is None:
            # Another push subscription signed by the same service account must not feed this
            # worker (with per-service tenancy the subscription is what names the publishing
            # service). Not 2xx, so nothing is lost: that subscription retries and
            # dead-letters the message itself.
            if self._refusals.admit((403, "wrong_subscription")) is not None:
                log.warning("push from another subscription refused")
            return _error(403, "the push came from a subscription this worker does not serve")
        pauses = self._handler.pauses
        if pauses is not None and pauses.holds_now(source):
            # A push that raced `email-worker pause` turning the subscription into a pull one
            # (or, on a push subscription nobody converted, every push): not processed, and
            # not 2xx, so Pub/Sub keeps it.
            if self._refusals.admit((503, "paused")) is not None:
                log.warning("push refused: sending is paused for its service")
            return _error(503, "sending is paused for this service; Pub/Sub will retry")
        answers: list[bool] = []
        try:
            outcome = self._handler(
                replace(envelope.delivery, source=source, defer_held=True),
                ack=lambda: answers.append(True),
                nack=lambda: answers.append(False),
            )
        except Exception:  # a bug: hand the message back rather than answer 500
            log.exception("push delivery failed unexpectedly")
            return _error(503, "the worker failed unexpectedly; Pub/Sub will retry")
        if answers == [True]:
            return Response(status_code=204)
        throttled = outcome.status is Status.RETRY and outcome.error_code == ErrorCode.THROTTLED
        return JSONResponse(
            {"outcome": outcome.status.value, "error_code": outcome.error_code},
            status_code=429 if throttled else 503,
        )

    def _source_of(self, subscription: str | None) -> Source | None:
        """Whom a push from ``subscription`` comes from; None when it is not ours."""
        if self._subscription is not None and subscription != self._subscription:
            return None
        if self._sources is not None:
            return self._sources.get(subscription or "")
        return SHARED


def authenticator_for(settings: Settings) -> PushAuthenticator | None:
    """The token check ``settings`` ask for; None only with EMAIL_WORKER_PUSH_AUTH=off."""
    if not settings.push.auth:
        return None
    settings.require_push_auth()
    assert settings.push.audience is not None
    assert settings.push.service_account is not None
    return PushAuthenticator(
        audience=settings.push.audience,
        service_account=settings.push.service_account,
        certs=CertsCache(settings.push.certs_url),
    )


def push_app(
    handler: Handler, authenticator: PushAuthenticator | None, *, settings: Settings
) -> Starlette:
    """The push endpoint with health and metrics around ``handler``.

    The endpoint is kept as ``app.state.push_endpoint`` (for its :meth:`~PushEndpoint.busy`).
    """
    endpoint = PushEndpoint(
        handler,
        authenticator,
        concurrency=settings.process.concurrency,
        subscription=settings.push_subscription_path(),
        sources=subscription_sources(settings) if settings.services.per_service else None,
    )
    app = create_app(
        metrics=handler.metrics,
        ready=lambda: not handler.stopping.is_set(),
        routes=[endpoint.route()],
    )
    app.state.push_endpoint = endpoint
    return app
