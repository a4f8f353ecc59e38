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
import botocore.exceptions
import botocore.session

__all__ = [
    "ROLE_SESSION_NAME_PATTERN",
    "leave_throttling_to_the_worker",
    "make_web_identity_session",
    "refuse_blind_resends",
    "sanitise_role_session_name",
]

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


#: Client settings for SES: botocore's standard retry mode (a few quick retries of 5xx and
#: dropped connections with backoff; throttling of SendEmail is left to the worker, see
#: :func:`leave_throttling_to_the_worker`) and timeouts short enough to stay inside a Pub/Sub
#: ack deadline. The worker layers its own, longer retry policy on top.
SES_CLIENT_CONFIG = botocore.config.Config(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=5,
    read_timeout=20,
    max_pool_connections=32,
)


# Failures after which SES may have accepted the call: the request went out, no answer came.
_MAYBE_SENT = (botocore.exceptions.ReadTimeoutError, botocore.exceptions.ConnectionClosedError)


def refuse_blind_resends(ses_client: Any) -> None:
    """Stop botocore from repeating a SendEmail whose answer was lost.

    Its standard retry mode repeats a call after a read timeout or a dropped connection, but
    SES may have accepted the first one, and SendEmail takes no idempotency key: the email
    would go out twice. Raising the failure from the first ``needs-retry`` handler ends the
    call there (other failures still get botocore's retries); the caller then settles whether
    it was sent from SES's events instead (:class:`~worker.sending.errors.MaybeSentError`).
    """

    def no_retry_when_maybe_sent(caught_exception: BaseException | None = None, **_: Any) -> None:
        if isinstance(caught_exception, _MAYBE_SENT):
            raise caught_exception

    ses_client.meta.events.register_first("needs-retry.sesv2.SendEmail", no_retry_when_maybe_sent)


# SES's codes for "too fast" (AWS_ERROR_CODES in worker.sending.provider_errors classifies
# them as ThrottledError); an unknown code with HTTP 429 means the same.
_THROTTLING_CODES = frozenset(
    {"Throttling", "ThrottlingException", "TooManyRequestsException", "LimitExceededException"}
)


def leave_throttling_to_the_worker(ses_client: Any) -> None:
    """Stop botocore from repeating a SendEmail that SES throttled: the worker retries it.

    botocore's standard mode would try again within the call, up to a second or two later,
    without the worker knowing. The worker's own retry of the send waits for its turn at the
    send rate, tells the quota pacer at once (so its AIMD cut comes one answer earlier instead
    of after botocore's attempts), and does not start if the worker is stopping: a throttled
    answer just before SIGTERM must not turn into an SES call after it. Raising the answer's
    own client exception from the first ``needs-retry`` handler ends the call there, as the
    client would have raised it after its last attempt.
    """

    def no_retry_when_throttled(response: Any = None, **_: Any) -> None:
        if response is None:
            return
        http_response, parsed = response
        code = parsed.get("Error", {}).get("Code")
        if code in _THROTTLING_CODES or (code and http_response.status_code == 429):
            raise ses_client.exceptions.from_code(code)(parsed, "SendEmail")

    ses_client.meta.events.register_first("needs-retry.sesv2.SendEmail", no_retry_when_throttled)
