"""Sending sessions: send an ``EmailMessage`` through Amazon SES as a service's AWS role.

A :class:`Session` holds no AWS keys. When it first needs to call SES it asks Google for an ID
token (the runtime's workload identity, or an impersonated service account), exchanges it with
AWS STS ``AssumeRoleWithWebIdentity`` for short-lived credentials of the service's role, and
refreshes them before they expire. Failures surface as :mod:`worker.sending.errors` exceptions.

Example::

    from email.message import EmailMessage
    from worker.session import Session

    session = Session.for_service("billing")
    message = EmailMessage()
    message["From"] = "billing@example.org"
    message["To"] = "someone@example.com"
    message["Subject"] = "Your invoice"
    message.set_content("Hello")
    message_ids = session.send_email(message)

The module runs over 300 lines: :class:`Session` alone is over 200, and its credentials, its
quota reader and its batched send (with the retry of later batches) share its client and
state; the pieces that stand alone (retry policy, envelope, tags, errors) are modules already.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Sequence
from email.message import EmailMessage
from typing import Any

import tenacity
from botocore.exceptions import ConnectionClosedError, ReadTimeoutError

from worker.sending.aws import (
    ROLE_SESSION_NAME_PATTERN,
    SES_CLIENT_CONFIG,
    leave_throttling_to_the_worker,
    make_web_identity_session,
    refuse_blind_resends,
    sanitise_role_session_name,
)
from worker.sending.call_tags import batch_tags, header_tags
from worker.sending.envelope import (
    MAX_RECIPIENTS_PER_CALL,
    PreparedMessage,
    batched,
    prepare_message,
)
from worker.sending.errors import ConfigurationError, EmailError, MaybeSentError
from worker.sending.identity import TOKEN_AUDIENCE, GoogleIdTokenSource, storage_credentials
from worker.sending.provider_errors import classify_exception
from worker.sending.quota import QuotaGroup, SendQuota, quota_group, read_send_quota
from worker.sending.retry_policy import RetryPolicy
from worker.sending.send_call import SendEmailCall
from worker.sending.service_config import DEFAULT_ENVIRONMENT, ServiceConfig, load_service_config

# The library's names (worker.session re-exports exactly these); the worker also imports
# leave_throttled_sends_to_the_caller.
__all__ = ["DEFAULT_AWS_REGION", "DEFAULT_ROLE_SESSION_NAME", "BaseSession", "Session"]

#: The region used when neither the caller nor the service configuration names one.
DEFAULT_AWS_REGION = "eu-west-2"
#: The STS role session name used when none is given (it shows in CloudTrail).
DEFAULT_ROLE_SESSION_NAME = "email-worker"
#: Attempts at each recipient batch after the first, for transient failures (each attempt is
#: one SES call plus botocore's own quick retries).
LATER_BATCH_ATTEMPTS = 4
#: No new attempt at a later batch starts after this long, so that one delivery stays well
#: inside a push request's timeout (the subscription's ack deadline).
LATER_BATCH_DEADLINE_S = 15.0
#: The first call and botocore's retries (``SES_CLIENT_CONFIG``'s standard mode).
BOTOCORE_CALLS_PER_ATTEMPT = 4


class BaseSession(abc.ABC):
    """Something that can send email messages."""

    #: The service's configuration document, when the session was built from one (as
    #: :meth:`Session.for_service` does); ``None`` otherwise. The worker's pipeline reads it for
    #: the default sender and the sender-domain rule, which it skips when this is ``None``.
    service_config: ServiceConfig | None = None

    @abc.abstractmethod
    def send_email(self, message: EmailMessage) -> list[str]:
        """Send ``message``; return one id per email sent, to match SES's event logs."""

    def quota_reader(self) -> tuple[QuotaGroup, Callable[[], SendQuota]] | None:
        """The AWS account and region this session's sends count against, and how to read
        their SES quota; None when the session cannot tell (a stand-in)."""
        return None


class Session(BaseSession):
    """Sends email through Amazon SES as one service's AWS role.

    On Cloud Run (or anywhere with a Google workload identity) only ``service_role_arn`` is
    needed; the other arguments serve local development and special cases.

    Args:
        service_role_arn: ARN of the AWS IAM role that may send this service's email. Its
            trust policy must accept the Google identity in use.
        impersonate_service_account: Email of a Google service account to act as, instead of
            the runtime's own identity. Useful when running locally under a person's
            account, which must hold the Token Creator role on that service account.
        role_session_name: A label for the assumed-role session, visible in AWS CloudTrail;
            use it to tell different kinds of email apart. 2-64 characters of letters,
            digits and ``_+=,.@-``. Defaults to ``email-worker``.
        aws_region: The SES region to send from. Defaults to ``eu-west-2``.
        default_from_address: The sender used for messages that have no From header.
        tenant_name: The SES tenant to send through (``TenantName`` on every call), which
            keeps this sender's reputation and sending status apart; None: no tenant.

    Raises:
        ConfigurationError: an argument is invalid.
    """

    def __init__(
        self,
        service_role_arn: str,
        *,
        impersonate_service_account: str | None = None,
        role_session_name: str | None = None,
        aws_region: str | None = None,
        default_from_address: str | None = None,
        tenant_name: str | None = None,
    ) -> None:
        if not isinstance(service_role_arn, str) or not service_role_arn.startswith("arn:"):
            raise ConfigurationError("service_role_arn must be an AWS role ARN")
        if role_session_name is None:
            role_session_name = DEFAULT_ROLE_SESSION_NAME
        elif not ROLE_SESSION_NAME_PATTERN.fullmatch(role_session_name):
            raise ConfigurationError(
                "role_session_name must be 2-64 characters of letters, digits and _+=,.@-"
            )
        self.service_role_arn = service_role_arn
        self.impersonate_service_account = impersonate_service_account
        self.role_session_name = role_session_name
        self.aws_region = aws_region or DEFAULT_AWS_REGION
        self.default_from_address = default_from_address
        self.tenant_name = tenant_name
        self.service_config = None
        #: How waits between attempts at a later recipient batch pass (tests replace it).
        self._sleep: Callable[[float], None] = time.sleep
        #: Attempts at a later recipient batch (more when botocore leaves throttling to us).
        self._later_batch_attempts = LATER_BATCH_ATTEMPTS

        token_source = GoogleIdTokenSource(
            TOKEN_AUDIENCE, impersonate_service_account=impersonate_service_account
        )
        aws_session = make_web_identity_session(
            role_arn=service_role_arn,
            role_session_name=role_session_name,
            region=self.aws_region,
            token_loader=token_source,
        )
        self._ses: Any = aws_session.create_client("sesv2", config=SES_CLIENT_CONFIG)
        refuse_blind_resends(self._ses)
        # The client's SendEmail without its per-call machinery (same request, signer,
        # credentials, connections, retries and errors): see worker.sending.send_call.
        self._send_call = SendEmailCall.for_client(
            self._ses,
            credentials=aws_session.get_credentials(),
            user_agent=aws_session.user_agent(),
        )

    def __repr__(self) -> str:
        return (
            f"Session(service_role_arn={self.service_role_arn!r}, "
            f"aws_region={self.aws_region!r}, role_session_name={self.role_session_name!r})"
        )

    @staticmethod
    def for_service(
        service_id: str,
        *,
        impersonate_service_account: str | None = None,
        role_session_name: str | None = None,
        environment: str | None = None,
        config_url: str | None = None,
    ) -> Session:
        """Build a session from the service's configuration document.

        The document is read from ``config_url``, else ``EMAIL_WORKER_SERVICE_CONFIG_URL``
        (a ``file://`` or ``gs://`` URL template with ``{environment}`` and
        ``{service_id}``), else the email service's default location, using the same
        Google identity the session will send with, which therefore needs read access to it.

        Args:
            service_id: The service's identifier, as registered with the email service.
            impersonate_service_account: Email of a Google service account to act as
                instead of the ambient workload identity.
            role_session_name: CloudTrail label for the AWS session; defaults to
                ``email-worker-<service_id>``, made valid for STS.
            environment: Which deployment of the email service to read the configuration
                of; leave it unset (``production``) unless you develop the email service.
            config_url: The configuration documents' URL template, when not the
                environment's.

        Raises:
            ConfigurationError: the document is missing, unreadable or invalid.
            TransientError: the configuration store could not be reached.
        """
        config = load_service_config(
            service_id,
            environment=environment or DEFAULT_ENVIRONMENT,
            credentials=storage_credentials(impersonate_service_account),
            template=config_url,
        )
        session = Session(
            config.service_role_arn,
            impersonate_service_account=impersonate_service_account,
            role_session_name=role_session_name
            or sanitise_role_session_name(f"{DEFAULT_ROLE_SESSION_NAME}-{service_id}"),
            aws_region=config.aws_region,
            default_from_address=config.default_from_address,
            tenant_name=config.ses_tenant,
        )
        session.service_config = config
        return session

    def quota_reader(self) -> tuple[QuotaGroup, Callable[[], SendQuota]]:
        """The role's account in the session's region, and its ``GetAccount`` quota read
        through the role's own credentials (ConfigurationError: an ARN without an account)."""
        return quota_group(self.service_role_arn, self.aws_region), self._read_quota

    def _read_quota(self) -> SendQuota:
        return read_send_quota(self._ses)

    def send_email(self, message: EmailMessage) -> list[str]:
        """Send ``message`` through SES; return one SES message id per SES call.

        Recipients are the To, Cc and Bcc addresses, each once; Bcc is not in the headers that
        are sent. More than 50 recipients are sent in consecutive batches of 50, one SES call
        and one id each; each of those calls carries the message's SES tags (its
        ``X-SES-MESSAGE-TAGS`` header) plus ``email_worker_batch``, the batch's position in the
        returned list, so that SES's events tell the batches apart. Once a batch has been
        accepted, transient failures of the later ones are retried here, with backoff, up to
        ``LATER_BATCH_ATTEMPTS`` times and for at most ``LATER_BATCH_DEADLINE_S`` seconds each:
        retrying the whole message would send the accepted batches twice. The sender is the
        message's From, else ``default_from_address``.

        Raises:
            InvalidMessageError: no sender, no recipients, or an address SES cannot take.
            MessageTooLargeError: over SES's 40 MB; nothing was sent.
            TransientError: worth retrying later (throttling, provider trouble, network).
                Its subclass MaybeSentError: SES's answer was lost, so SES may have accepted
                the message; botocore does not repeat such a call, and neither should the
                caller before SES's events have told whether it was accepted.
            PermanentError: refused for a reason retrying will not change. On any error,
                ``sent_message_ids`` lists the batches that had already been accepted.
        """
        prepared = prepare_message(message, default_from=self.default_from_address)
        batches = enumerate(batched(prepared.recipients, MAX_RECIPIENTS_PER_CALL))
        # One SES call keeps its tags in the header. With several, each call passes its batch
        # tag as EmailTags, and SES then ignores the header: the header's tags go along too.
        tags = header_tags(message) if len(prepared.recipients) > MAX_RECIPIENTS_PER_CALL else None
        # Nothing is sent until the first batch is accepted: its failures are the caller's to
        # retry.
        message_ids = [self._send_batch(prepared, *next(batches), tags)]
        # After that, a caller's retry would send the accepted batches again, so transient
        # failures are retried here, batch by batch (the policy is built only for these).
        retrying: tenacity.Retrying | None = None
        for index, batch in batches:
            if retrying is None:
                retrying = _later_batch_policy(self._later_batch_attempts).retrying(
                    sleep=self._sleep
                )
            try:
                message_ids.append(retrying(self._send_batch, prepared, index, batch, tags))
            except EmailError as failure:
                failure.sent_message_ids = tuple(message_ids)
                raise
        return message_ids

    def _send_batch(
        self,
        prepared: PreparedMessage,
        index: int,
        batch: Sequence[str],
        tags: tuple[tuple[str, str], ...] | None,
    ) -> str:
        extra: dict[str, Any] = {}
        if tags is not None:
            extra["EmailTags"] = batch_tags(tags, index)
        if self.tenant_name is not None:
            extra["TenantName"] = self.tenant_name
        send = self._ses.send_email
        if self._send_call is not None and self._send_call.client is self._ses:
            send = self._send_call
        try:
            response = send(
                FromEmailAddress=prepared.from_address,
                Destination={"ToAddresses": list(batch)},
                Content={"Raw": {"Data": prepared.raw}},
                **extra,
            )
        except (ReadTimeoutError, ConnectionClosedError) as error:
            if _answer_lost(error, self._ses.meta.endpoint_url):
                raise MaybeSentError(
                    f"SES's answer was lost ({type(error).__name__}): it may have accepted the "
                    "message"
                ) from error
            raise classify_exception(error) from error  # STS's, while fetching credentials
        except Exception as error:
            raise classify_exception(error, tenant=self.tenant_name) from error
        return str(response["MessageId"])


def leave_throttled_sends_to_the_caller(session: Session) -> None:
    """Make ``session`` raise SES's throttling of a send at once, without botocore's quick
    retries, for a caller with its own paced retry (the worker: see
    :func:`worker.sending.aws.leave_throttling_to_the_worker`). Library sessions keep them.

    A later recipient batch cannot be left to the caller (its retry would resend the accepted
    batches), so the session's own retry of it gets the calls botocore would have made: each
    of its attempts was up to :data:`BOTOCORE_CALLS_PER_ATTEMPT` calls, still within
    ``LATER_BATCH_DEADLINE_S``."""
    leave_throttling_to_the_worker(session._ses)
    session._later_batch_attempts = LATER_BATCH_ATTEMPTS * BOTOCORE_CALLS_PER_ATTEMPT


def _later_batch_policy(max_attempts: int) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=max_attempts,
        deadline_s=LATER_BATCH_DEADLINE_S,
        initial_backoff_s=0.5,
        max_backoff_s=4.0,
    )


def _answer_lost(error: ReadTimeoutError | ConnectionClosedError, ses_endpoint: str) -> bool:
    """Whether ``error`` ended the SES call itself (not an STS call made to sign it)."""
    return str(error.kwargs.get("endpoint_url") or "").startswith(ses_endpoint)
