"""Google ID tokens: the identity that AWS STS exchanges for SES credentials.

Two sources, both through google-auth's own credential classes (which cache and refresh the
token themselves):

* ambient: the workload identity of the runtime (on Cloud Run the metadata server, or a
  service-account key named by ``GOOGLE_APPLICATION_CREDENTIALS`` elsewhere);
* impersonated: a named service account, through IAM Credentials ``generateIdToken`` with the
  ``email`` claim included, authorised by the caller's own Google credentials (for running
  locally with a person's account).
"""

from __future__ import annotations

import threading
from typing import Any

import google.auth
import google.auth.transport.requests
from google.auth import impersonated_credentials
from google.oauth2 import id_token

__all__ = ["CLOUD_PLATFORM_SCOPE", "TOKEN_AUDIENCE", "GoogleIdTokenSource", "storage_credentials"]

#: The ``aud`` claim of the Google ID tokens presented to AWS STS. The AWS role's trust policy
#: pins it (condition key ``accounts.google.com:oaud``); terraform writes the same value.
TOKEN_AUDIENCE = "sts.amazonaws.com"  # noqa: S105 (an audience, not a secret)

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"


def _impersonated(service_account: str) -> Any:
    source, _ = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
    return impersonated_credentials.Credentials(
        source_credentials=source,
        target_principal=service_account,
        target_scopes=[CLOUD_PLATFORM_SCOPE],
    )


def storage_credentials(impersonate_service_account: str | None) -> Any:
    """Google credentials for reading configuration: ``None`` means the ambient identity."""
    if impersonate_service_account is None:
        return None
    return _impersonated(impersonate_service_account)


class GoogleIdTokenSource:
    """Callable returning a valid Google ID token for ``audience``.

    Thread-safe. The underlying credentials are created on first use, so building a session
    does no network I/O; google-auth re-fetches the token only when it is near expiry.
    """

    def __init__(self, audience: str, *, impersonate_service_account: str | None = None) -> None:
        self._audience = audience
        self._impersonate = impersonate_service_account
        self._request = google.auth.transport.requests.Request()
        self._credentials: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        who = self._impersonate or "ambient"
        return f"GoogleIdTokenSource(audience={self._audience!r}, identity={who!r})"

    def __call__(self) -> str:
        with self._lock:
            if self._credentials is None:
                self._credentials = self._make_credentials()
            if not self._credentials.valid:
                self._credentials.refresh(self._request)
            return str(self._credentials.token)

    def _make_credentials(self) -> Any:
        if self._impersonate is None:
            return id_token.fetch_id_token_credentials(self._audience, request=self._request)
        return impersonated_credentials.IDTokenCredentials(
            _impersonated(self._impersonate), target_audience=self._audience, include_email=True
        )
