"""AWS clients whose only credentials are a Google ID token exchanged with STS.

botocore already knows how to turn a web identity token into refreshing credentials: its
``AssumeRoleWithWebIdentityCredentialFetcher`` calls STS unsigned and caches the answer, and
``DeferredRefreshableCredentials`` fetches on first use and refreshes ahead of expiry under a
lock. We reuse both, feeding them a Google token instead of a token file, and install them as
the session's *only* credential provider: environment keys, profiles and instance roles are
never consulted, so no static AWS key can be picked up by accident.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import botocore.config
import botocore.credentials
import botocore.session

__all__ = ["ROLE_SESSION_NAME_PATTERN", "make_web_identity_session", "sanitise_role_session_name"]

ROLE_SESSION_NAME_PATTERN = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)
_INVALID_SESSION_NAME_CHARS = re.compile(r"[^\w+=,.@-]", re.ASCII)


def sanitise_role_session_name(name: str) -> str:
    """Make ``name`` valid for STS: 2-64 characters of ``[\\w+=,.@-]``."""
    cleaned = _INVALID_SESSION_NAME_CHARS.sub("-", name)[:64]
    return cleaned if len(cleaned) >= 2 else f"{cleaned}--"[:2]


class _WebIdentityProvider(botocore.credentials.CredentialProvider):
    METHOD = "assume-role-with-web-identity"
    CANONICAL_NAME = "email-worker-web-identity"

    def __init__(self, credentials: botocore.credentials.Credentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> botocore.credentials.Credentials:
        return self._credentials


def make_web_identity_session(
    *,
    role_arn: str,
    role_session_name: str,
    region: str,
    token_loader: Callable[[], str],
) -> botocore.session.Session:
    """A botocore session whose credentials come from ``token_loader`` through STS."""
    session = botocore.session.Session()
    session.set_config_variable("region", region)

    def client_creator(service_name: str, **kwargs: Any) -> Any:
        kwargs.setdefault("region_name", region)
        return session.create_client(service_name, **kwargs)

    fetcher = botocore.credentials.AssumeRoleWithWebIdentityCredentialFetcher(
        client_creator=client_creator,
        web_identity_token_loader=token_loader,
        role_arn=role_arn,
        extra_args={"RoleSessionName": role_session_name},
    )
    credentials = botocore.credentials.DeferredRefreshableCredentials(
        method=_WebIdentityProvider.METHOD, refresh_using=fetcher.fetch_credentials
    )
    session.register_component(
        "credential_provider",
        botocore.credentials.CredentialResolver(providers=[_WebIdentityProvider(credentials)]),
    )
    return session


#: Client settings for SES: botocore's standard retry mode (a few quick retries of throttling
#: and 5xx with backoff) and timeouts short enough to stay inside a Pub/Sub ack deadline. The
#: worker layers its own, longer retry policy on top.
SES_CLIENT_CONFIG = botocore.config.Config(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=5,
    read_timeout=20,
    max_pool_connections=32,
)
