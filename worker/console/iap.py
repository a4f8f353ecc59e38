"""Who is asking: Identity-Aware Proxy's signed header, verified, and the console role it gives.

Behind IAP every request carries ``x-goog-iap-jwt-assertion``, an ES256 JWT IAP signs. It is
accepted only when google-auth's :func:`google.oauth2.id_token.verify_token` verifies its
signature against IAP's public keys (``EMAIL_WORKER_CONSOLE_IAP_CERTS_URL``), its audience
(the backend's) and its expiry, and its issuer is IAP's. The address it names then gets a role
from the settings: operator, viewer, or none (403).

The keys are fetched through a small cache (:class:`CachedCertsRequest`): verify_token asks for
them on every call, and IAP rotates them rarely. Nothing here logs or returns the assertion.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import google.auth.transport.requests
from google.oauth2 import id_token

__all__ = [
    "IAP_HEADER",
    "IAP_ISSUER",
    "AccessDenied",
    "CachedCertsRequest",
    "IapVerifier",
    "Identity",
    "Role",
    "role_of",
]

IAP_HEADER = "x-goog-iap-jwt-assertion"
IAP_ISSUER = "https://cloud.google.com/iap"
_MAX_ASSERTION_LENGTH = 8192


class Role(enum.IntEnum):
    """What a user may do; a higher role may do everything a lower one may."""

    VIEWER = 1
    OPERATOR = 2


@dataclass(frozen=True)
class Identity:
    """The person behind a request (``who`` is what the structured log names)."""

    who: str
    role: Role


class AccessDenied(Exception):
    """401 (no valid assertion) or 403 (valid, but no role); ``reason`` is a fixed word."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.status} {self.reason}"


def role_of(email: str, *, viewers: frozenset[str], operators: frozenset[str]) -> Role | None:
    """The role ``email`` has: listed by address or by ``domain:NAME`` entry."""
    address = email.lower()
    names = {address, "domain:" + address.rpartition("@")[2]}
    if names & operators:
        return Role.OPERATOR
    if names & viewers:
        return Role.VIEWER
    return None


class CachedCertsRequest:
    """A google-auth transport that keeps successful GET answers for ``ttl_s``."""

    def __init__(
        self,
        inner: Any = None,
        *,
        ttl_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inner = inner or google.auth.transport.requests.Request()
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._kept: dict[str, tuple[float, Any]] = {}

    def __call__(self, url: str, method: str = "GET", **kwargs: Any) -> Any:
        if method != "GET":
            return self._inner(url, method=method, **kwargs)
        with self._lock:
            kept = self._kept.get(url)
            if kept is not None and self._clock() < kept[0]:
                return kept[1]
        response = self._inner(url, method=method, timeout=kwargs.get("timeout", 10))
        if response.status == 200:
            with self._lock:
                self._kept[url] = (self._clock() + self._ttl_s, response)
        return response


class IapVerifier:
    """Checks IAP's assertion and maps its address to a role (see the module documentation)."""

    def __init__(
        self,
        *,
        audience: str,
        certs_url: str,
        viewers: frozenset[str],
        operators: frozenset[str],
        request: Any = None,
        clock_skew_s: int = 10,
    ) -> None:
        self.audience = audience
        self.certs_url = certs_url
        self._viewers = viewers
        self._operators = operators
        self._request = request or CachedCertsRequest()
        self._clock_skew_s = clock_skew_s

    def identify(self, headers: Mapping[str, str]) -> Identity:
        """The verified identity; raises :class:`AccessDenied`."""
        claims = self._verified_claims(headers.get(IAP_HEADER))
        email = claims.get("email")
        if not isinstance(email, str) or "@" not in email:
            raise AccessDenied(401, "no_email")
        # IAP prefixes addresses with the identity source ("accounts.google.com:").
        address = email.rpartition(":")[2]
        role = role_of(address, viewers=self._viewers, operators=self._operators)
        if role is None:
            raise AccessDenied(403, "no_role")
        return Identity(address, role)

    def _verified_claims(self, assertion: str | None) -> Mapping[str, Any]:
        if not assertion:
            raise AccessDenied(401, "missing_assertion")
        if len(assertion) > _MAX_ASSERTION_LENGTH or assertion.count(".") != 2:
            raise AccessDenied(401, "malformed_assertion")
        try:
            claims: Mapping[str, Any] = id_token.verify_token(
                assertion,
                cast(google.auth.transport.Request, self._request),
                audience=self.audience,
                certs_url=self.certs_url,
                clock_skew_in_seconds=self._clock_skew_s,
            )
        except Exception as error:  # the messages may quote the assertion: not kept
            raise AccessDenied(401, _reason(error)) from None
        if claims.get("iss") != IAP_ISSUER:
            raise AccessDenied(401, "wrong_issuer")
        return claims


def _reason(error: Exception) -> str:
    text = str(error).lower()
    if "signature" in text or "certificate" in text or "key" in text:
        return "invalid_signature"
    if "expired" in text or "too early" in text:
        return "expired"
    if "audience" in text:
        return "wrong_audience"
    return "invalid_assertion"
