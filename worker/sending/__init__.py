"""The sending library: an ``EmailMessage`` in, Amazon SES message ids out, as a service's role.

The layer owns the :class:`Session` (Google ID token, STS web identity, SES v2 raw sends in
batches of 50 recipients, each batch of several tagged with its position) and its abstract
:class:`BaseSession`, the services' configuration documents (:func:`load_service_config`),
the cache of sessions by service (:class:`SessionCache`), the SES envelope (sender,
recipients, raw bytes) and the :class:`EmailError` hierarchy every provider failure is
classified into. Services use it directly through ``worker.session``; the worker's pipeline
sends through it. It knows nothing of requests, results, Pub/Sub or the worker's settings.
"""

from __future__ import annotations

from worker.sending.errors import (
    AccessDeniedError,
    ConfigurationError,
    EmailError,
    IdentityNotVerifiedError,
    InvalidMessageError,
    MaybeSentError,
    MessageRejectedError,
    MessageTooLargeError,
    PermanentError,
    SendingPausedError,
    TenantPausedError,
    ThrottledError,
    TransientError,
)
from worker.sending.identity import TOKEN_AUDIENCE
from worker.sending.service_config import ServiceConfig, load_service_config
from worker.sending.ses_session import BaseSession, Session
from worker.sending.session_cache import SessionCache

__all__ = [
    "TOKEN_AUDIENCE",
    "AccessDeniedError",
    "BaseSession",
    "ConfigurationError",
    "EmailError",
    "IdentityNotVerifiedError",
    "InvalidMessageError",
    "MaybeSentError",
    "MessageRejectedError",
    "MessageTooLargeError",
    "PermanentError",
    "SendingPausedError",
    "ServiceConfig",
    "Session",
    "SessionCache",
    "TenantPausedError",
    "ThrottledError",
    "TransientError",
    "load_service_config",
]
