"""Verification of the OIDC token Pub/Sub attaches to every push request.

A push subscription configured with a service account signs each request with a Google ID
token: ``Authorization: Bearer <JWT>``. The token is accepted only when

* its header says ``alg: RS256`` and names a key id (``alg: none``, HS256 and ES256 are
  refused before any verification is attempted),
* its signature verifies against Google's published certificates (google-auth's
  :func:`google.auth.jwt.decode`, which also checks ``iat``/``exp`` and ``aud``),
* ``iss`` is Google's, ``aud`` is the configured audience, and
* ``email`` is the configured service account with ``email_verified`` true.

An audience with ``{subscription}`` in it is per subscription: each push subscription's
token carries the audience with the subscription's short name filled in, and
:meth:`PushAuthenticator.check_subscription` refuses a push whose envelope names another
subscription than the token was issued for. So a token captured from one subscription's push
cannot be replayed with an envelope naming another (with per-service tenancy, another
service's). With one audience for every subscription, which still works, a valid token vouches
for the signer only, and any subscription name in the envelope is believed.

The certificates are fetched once and cached for as long as Google's ``Cache-Control`` allows;
a token naming a key not in the cache triggers at most one refetch per
``refetch_interval_s`` (Google rotates keys), so forged key ids cannot hammer the endpoint.

Everything here blocks (the certificate fetch is HTTP): call it from a worker thread.
Nothing here logs or returns the token or its claims' values.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import google.auth.transport.requests
from google.auth import jwt

from worker.config.logs import get_logger

__all__ = [
    "GOOGLE_ISSUERS",
    "SUBSCRIPTION_PLACEHOLDER",
    "AuthFailure",
    "CertsCache",
    "CertsUnavailable",
    "PushAuthenticator",
]

log = get_logger()

GOOGLE_ISSUERS = frozenset({"https://accounts.google.com", "accounts.google.com"})
_MAX_AGE = re.compile(r"max-age\s*=\s*(\d+)", re.IGNORECASE)
_MAX_TOKEN_LENGTH = 8192  # Google ID tokens are about 1 KB
#: In EMAIL_WORKER_PUSH_AUDIENCE: the short name of the subscription the push came from.
SUBSCRIPTION_PLACEHOLDER = "{subscription}"
# A subscription's short name, as Pub/Sub allows it.
_SUBSCRIPTION_NAME = r"[A-Za-z][\w.~+%-]{2,254}"


@dataclass(frozen=True)
class AuthFailure(Exception):
    """The request is refused: 401 (not authenticated) or 403 (not the expected sender).

    ``reason`` is one of a small fixed set, safe for logs and metric labels.
    """

    status: int
    reason: str

    def __str__(self) -> str:
        return f"{self.status} {self.reason}"


class CertsUnavailable(Exception):
    """The certificates could not be fetched and none are cached: nothing can be verified."""


class CertsCache:
    """Google's ``{key id: PEM certificate}`` document, fetched lazily and cached."""

    def __init__(
        self,
        url: str,
        request: google.auth.transport.Request | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        default_ttl_s: float = 3600.0,
        min_ttl_s: float = 60.0,
        max_ttl_s: float = 6 * 3600.0,
        refetch_interval_s: float = 30.0,
        timeout_s: float = 10.0,
    ) -> None:
        self.url = url
        self._request = request or google.auth.transport.requests.Request()
        self._clock = clock
        self._default_ttl_s = default_ttl_s
        self._min_ttl_s = min_ttl_s
        self._max_ttl_s = max_ttl_s
        self._refetch_interval_s = refetch_interval_s
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._certs: dict[str, str] | None = None
        self._expires_at = 0.0
        self._fetched_at = -float("inf")

    def get(self, key_id: str) -> Mapping[str, str]:
        """The certificates, refreshed when stale or when ``key_id`` is unknown (rate-limited).

        Raises :class:`CertsUnavailable` when none could ever be fetched. When a refresh fails
        the cached certificates are used a while longer.
        """
        with self._lock:
            now = self._clock()
            stale = self._certs is None or now >= self._expires_at
            unknown = self._certs is not None and key_id not in self._certs
            if stale or (unknown and now - self._fetched_at >= self._refetch_interval_s):
                self._refresh(now)
            if self._certs is None:
                raise CertsUnavailable(self.url)
            return self._certs

    def _refresh(self, now: float) -> None:
        self._fetched_at = now
        try:
            response = self._request(self.url, method="GET", timeout=self._timeout_s)
            if response.status != 200:
                raise ValueError(f"HTTP {response.status}")
            document = json.loads(response.data)
            if not isinstance(document, dict) or "keys" in document:
                raise ValueError("not a {key id: PEM certificate} document")
            certs = {str(k): str(v) for k, v in document.items()}
        except Exception as error:
            # Try again soon, but not on every request; meanwhile keep the certificates we
            # have. With none at all every push is refused, so try again within a second.
            self._expires_at = now + (1.0 if self._certs is None else self._refetch_interval_s)
            log.warning(
                "cannot fetch the push token certificates",
                certs_url=self.url,
                error=type(error).__name__,
                detail=str(error)[:200],
                cached=self._certs is not None,
            )
            return
        self._certs = certs
        self._expires_at = now + self._ttl(response.headers)

    def _ttl(self, headers: Mapping[str, str]) -> float:
        cache_control = next((v for k, v in headers.items() if k.lower() == "cache-control"), "")
        match = _MAX_AGE.search(cache_control)
        ttl = float(match.group(1)) if match else self._default_ttl_s
        return min(max(ttl, self._min_ttl_s), self._max_ttl_s)


class PushAuthenticator:
    """Checks ``Authorization`` headers of push requests (see the module documentation)."""

    def __init__(
        self,
        *,
        audience: str,
        service_account: str,
        certs: CertsCache,
        clock_skew_s: int = 10,
    ) -> None:
        self.audience = audience
        self.service_account = service_account.lower()
        self._certs = certs
        self._clock_skew_s = clock_skew_s
        # Per subscription: the audiences of all subscriptions, to refuse any other early.
        self._audiences: re.Pattern[str] | None = None
        if SUBSCRIPTION_PLACEHOLDER in audience:
            before, _, after = audience.partition(SUBSCRIPTION_PLACEHOLDER)
            self._audiences = re.compile(
                re.escape(before) + _SUBSCRIPTION_NAME + re.escape(after), re.ASCII
            )

    def verify(self, authorization: str | None) -> Mapping[str, Any]:
        """The verified claims; raises :class:`AuthFailure` or :class:`CertsUnavailable`."""
        token = _bearer_token(authorization)
        try:
            header = jwt.decode_header(token)
        except Exception:
            raise AuthFailure(401, "malformed_token") from None
        if not isinstance(header, Mapping) or header.get("alg") != "RS256":
            raise AuthFailure(401, "unsupported_algorithm")
        key_id = header.get("kid")
        if not isinstance(key_id, str) or not key_id:
            raise AuthFailure(401, "unknown_key")
        certs = self._certs.get(key_id)
        if key_id not in certs:
            raise AuthFailure(401, "unknown_key")
        try:
            claims: Mapping[str, Any] = jwt.decode(
                token,
                certs={key_id: certs[key_id]},
                # Per subscription: checked below against the pattern, and against the
                # envelope's subscription by check_subscription.
                audience=None if self._audiences is not None else self.audience,
                clock_skew_in_seconds=self._clock_skew_s,
            )
        except Exception as error:  # google-auth's messages may quote the token: not logged
            raise AuthFailure(401, _reason(error)) from None
        audience = claims.get("aud")
        if self._audiences is not None and not (
            isinstance(audience, str) and self._audiences.fullmatch(audience)
        ):
            raise AuthFailure(401, "wrong_audience")
        if claims.get("iss") not in GOOGLE_ISSUERS:
            raise AuthFailure(401, "wrong_issuer")
        email = claims.get("email")
        if not isinstance(email, str) or email.lower() != self.service_account:
            raise AuthFailure(403, "wrong_email")
        if claims.get("email_verified") is not True:
            raise AuthFailure(403, "email_not_verified")
        return claims

    def check_subscription(self, claims: Mapping[str, Any], subscription: str | None) -> None:
        """With a per-subscription audience: raise :class:`AuthFailure` (403) unless the
        verified ``claims`` were issued for pushes of ``subscription`` (the envelope's,
        ``projects/P/subscriptions/NAME``; its short name fills the placeholder)."""
        if self._audiences is None:
            return
        name = (subscription or "").rpartition("/")[2]
        expected = self.audience.replace(SUBSCRIPTION_PLACEHOLDER, name)
        if not name or claims.get("aud") != expected:
            raise AuthFailure(403, "wrong_subscription_audience")


def _bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise AuthFailure(401, "missing_token")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthFailure(401, "missing_token")
    if len(token) > _MAX_TOKEN_LENGTH or token.count(".") != 2:
        raise AuthFailure(401, "malformed_token")
    return token


def _reason(error: Exception) -> str:
    text = str(error)
    if "signature" in text:
        return "invalid_signature"
    if "expired" in text or "too early" in text:
        return "expired"
    if "audience" in text:
        return "wrong_audience"
    return "invalid_token"
