"""The console's guards: who is asking, what the browser may run, and forged form posts.

* **Who**: behind IAP every request's assertion is verified (:mod:`worker.console.iap`)
  before any page runs; 401/403 otherwise. Without IAP (loopback only) everyone is the local
  operator.
* **What the browser may run**: every answer carries a Content-Security-Policy that allows
  scripts, styles and images from the console itself only (no inline script or style, no
  framing), and headers against sniffing, referrers and caching.
* **Forged posts (CSRF)**: double-submit. Every answer sets a random token in a cookie
  (``SameSite=Strict``, ``HttpOnly``; ``__Host-`` and ``Secure`` behind IAP) and every form
  carries the same token; :func:`checked_form` refuses a POST whose form field (or
  ``X-CSRF-Token`` header) does not equal the cookie, or whose ``Origin`` is another site.
  (``Referrer-Policy: same-origin`` lets the browser send the console's own origin.)
"""

from __future__ import annotations

import hmac
import secrets
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from worker.config.logs import OncePerInterval, get_logger
from worker.console.iap import AccessDenied, IapVerifier, Identity, Role

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "CSRF_FIELD",
    "Guard",
    "checked_form",
    "identity_of",
    "require",
]

log = get_logger()

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
CSRF_FIELD = "csrf"
_CSRF_HEADER = "x-csrf-token"
_MAX_FORM_BYTES = 1024 * 1024
_MAX_FORM_FIELDS = 10_000
LOCAL = Identity("local", Role.OPERATOR)


def identity_of(request: Request) -> Identity:
    identity: Identity = request.state.identity
    return identity


def require(request: Request, role: Role) -> None:
    """Raise 403 unless the user has ``role``."""
    if identity_of(request).role < role:
        raise AccessDenied(403, "operators_only")


async def read_form(request: Request) -> dict[str, list[str]]:
    """A URL-encoded form (what the console's forms post), at most ``_MAX_FORM_BYTES``."""
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise AccessDenied(415, "not_a_form")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM_BYTES:
            raise AccessDenied(413, "form_too_large")
    try:
        return urllib.parse.parse_qs(body.decode("ascii"), max_num_fields=_MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise AccessDenied(400, "malformed_form") from None


async def checked_form(request: Request) -> dict[str, list[str]]:
    """The POST's form, once its CSRF token and origin are checked (else 403)."""
    form = await read_form(request)
    sent = (form.get(CSRF_FIELD) or [""])[0] or request.headers.get(_CSRF_HEADER) or ""
    cookie = request.cookies.get(request.state.csrf_cookie, "")
    if not (isinstance(sent, str) and cookie and hmac.compare_digest(sent, cookie)):
        raise AccessDenied(403, "csrf_token_mismatch")
    origin = request.headers.get("origin")
    # "null" comes from privacy settings and sandboxed documents: the token decides then.
    if (
        origin
        and origin != "null"
        and urllib.parse.urlsplit(origin).netloc != request.headers.get("host")
    ):
        raise AccessDenied(403, "cross_origin_post")
    return form


class Guard(BaseHTTPMiddleware):
    """Identifies the user, hands out the CSRF token, and sets the security headers."""

    def __init__(self, app: Any, verifier: IapVerifier | None) -> None:
        super().__init__(app)
        self._verifier = verifier
        self._cookie = "__Host-csrf" if verifier is not None else "csrf"
        self._refusals = OncePerInterval(60.0)

    async def dispatch(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        try:
            request.state.identity = await self._identify(request)
        except AccessDenied as denied:
            return secured(self.refuse(request, denied))
        token = request.cookies.get(self._cookie) or secrets.token_urlsafe(32)
        request.state.csrf_cookie = self._cookie
        request.state.csrf = token
        response = secured(await call_next(request))
        if request.cookies.get(self._cookie) != token:
            response.set_cookie(
                self._cookie,
                token,
                httponly=True,
                samesite="strict",
                secure=self._verifier is not None,
                path="/",
            )
        return response

    async def _identify(self, request: Request) -> Identity:
        if self._verifier is None:
            return LOCAL
        return await run_in_threadpool(self._verifier.identify, request.headers)

    def refuse(self, request: Request, denied: AccessDenied) -> Response:
        held = self._refusals.admit(denied.reason)
        if held is not None:
            log.warning(
                "console request refused",
                status=denied.status,
                reason=denied.reason,
                path=request.url.path,
                held_back=held,
            )
        word = "Not signed in" if denied.status == 401 else "Not allowed"
        return PlainTextResponse(f"{word} ({denied.reason}).\n", status_code=denied.status)


def secured(response: Response) -> Response:
    for name, value in _HEADERS.items():
        response.headers[name] = value
    return response
