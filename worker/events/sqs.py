"""The SQS client of the events reader: the same keyless credentials as the senders'.

The reader's AWS role is assumed with the runtime's Google ID token through STS
``AssumeRoleWithWebIdentity`` (:func:`worker.sending.aws.make_web_identity_session`), the only
credential source the client has; no AWS key is ever read. boto3's standard
``AWS_ENDPOINT_URL_SQS`` points it elsewhere (tests use moto).
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable
from typing import Any

import botocore.config

from worker.sending.aws import make_web_identity_session
from worker.sending.identity import TOKEN_AUDIENCE, GoogleIdTokenSource
from worker.sending.ses_session import DEFAULT_AWS_REGION

__all__ = ["ROLE_SESSION_NAME", "SQS_CLIENT_CONFIG", "queue_region", "sqs_client"]

#: The STS role session name of the reader (it shows in CloudTrail).
ROLE_SESSION_NAME = "email-worker-events"

#: A long poll waits up to 20 s for messages, so a read must be allowed to take longer.
SQS_CLIENT_CONFIG = botocore.config.Config(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=5,
    read_timeout=30,
)

# https://sqs.eu-west-2.amazonaws.com/123456789012/name, and the legacy
# https://eu-west-2.queue.amazonaws.com/123456789012/name.
_QUEUE_HOST_RES = (
    re.compile(r"sqs\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?"),
    re.compile(r"([a-z0-9-]+)\.queue\.amazonaws\.com(?:\.cn)?"),
)


def queue_region(queue_url: str) -> str | None:
    """The AWS region in an SQS queue URL, or None if the URL does not say (a local server)."""
    host = urllib.parse.urlsplit(queue_url).hostname or ""
    for pattern in _QUEUE_HOST_RES:
        match = pattern.fullmatch(host)
        if match:
            return match.group(1)
    return None


def sqs_client(
    *, role_arn: str, queue_url: str, token_loader: Callable[[], str] | None = None
) -> Any:
    """An SQS client acting as ``role_arn``, in the queue's region (default ``eu-west-2``).

    Builds no connection: the token and the credentials are fetched on the first call.
    """
    session = make_web_identity_session(
        role_arn=role_arn,
        role_session_name=ROLE_SESSION_NAME,
        region=queue_region(queue_url) or DEFAULT_AWS_REGION,
        token_loader=token_loader or GoogleIdTokenSource(TOKEN_AUDIENCE),
    )
    return session.create_client("sqs", config=SQS_CLIENT_CONFIG)
