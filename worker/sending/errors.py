"""The library's own exceptions.

Every failure that reaches a caller of :mod:`worker.session` is one of these, whatever raised it
underneath (botocore, STS, google-auth, google-cloud-storage, the filesystem). Callers decide
what to do from two things only:

* ``retryable``: whether repeating the same call later can succeed. Transient errors are;
  permanent ones are not, and retrying them only wastes quota or sends duplicates.
* ``code``: a short, stable, machine-readable reason (``throttled``, ``identity_not_verified``,
  ...), the same strings the worker writes into its results.

Messages never contain tokens, credentials, email bodies or attachments.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AccessDeniedError",
    "AttachmentChangedError",
    "AttachmentNotFoundError",
    "ConfigurationError",
    "EmailError",
    "IdentityNotVerifiedError",
    "InvalidMessageError",
    "MaybeSentError",
    "MessageRejectedError",
    "MessageTooLargeError",
    "PermanentError",
    "SendingPausedError",
    "TenantPausedError",
    "ThrottledError",
    "TransientError",
]


class EmailError(Exception):
    """Base class of every error the library raises.

    ``provider_code`` keeps the provider's own error code (for example SES's
    ``MessageRejected``) when there was one, for logs and support requests.
    ``sent_message_ids`` lists the SES message ids of batches that were already accepted
    before the failure, so a caller can tell a partial send from a failed one.
    """

    retryable: ClassVar[bool] = False
    code: ClassVar[str] = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        provider_code: str | None = None,
        sent_message_ids: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider_code = provider_code
        self.sent_message_ids = sent_message_ids

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, provider_code={self.provider_code!r})"


class TransientError(EmailError):
    """The provider or the network could not serve the call this time.

    Retryable: nothing about the message or the configuration is known to be wrong, so the
    same call can succeed once the provider recovers (5xx answers, timeouts, dropped
    connections, an identity provider that STS could not reach).
    """

    retryable = True
    code = "provider_unavailable"


class MaybeSentError(TransientError):
    """SES may have accepted the message: the call reached it and no answer came back (a
    read timeout, or the connection closed after the request went out).

    Not retryable blindly: SES's SendEmail takes no idempotency key, so calling again could
    deliver the email twice. It becomes retryable once SES's own events have said whether the
    first call was accepted: the worker keeps the request's claim, and the delivery that takes
    it over asks the ledger (docs/formats.md, "Exactly once").
    """

    code = "outcome_unknown"


class ThrottledError(TransientError):
    """The provider asked us to slow down (rate or quota limits).

    Retryable, with backoff: the request was fine, it just came too fast.
    """

    code = "throttled"


class PermanentError(EmailError):
    """The provider refused the call for a reason that repeating it will not change.

    Not retryable: the same message, identity and configuration will be refused again, and
    every retry spends quota. Something has to be fixed first (the message, the configuration,
    the IAM policy or the SES account), after which the request can be replayed.
    """


class MessageRejectedError(PermanentError):
    """SES refused this message (for example it contains a virus or breaks SES rules).

    Not retryable: SES judged the content, and the content does not change on retry.
    """

    code = "ses_rejected"


class IdentityNotVerifiedError(PermanentError):
    """The From address or its domain is not a verified SES identity in the region.

    Not retryable until someone verifies the identity; then the request can be replayed.
    """

    code = "identity_not_verified"


class AccessDeniedError(PermanentError):
    """AWS refused the credentials: the role's trust or send policy does not allow this.

    Covers STS refusing the Google identity token and SES refusing the assumed role. Not
    retryable: IAM policies do not change between retries.
    """

    code = "access_denied"


class SendingPausedError(PermanentError):
    """Sending is paused or suspended for the SES account or configuration set.

    Not retryable on the scale of message retries: lifting a pause takes a person.
    """

    code = "sending_paused"


class TenantPausedError(SendingPausedError):
    """SES has paused sending for the service's tenant (its reputation, or an operator).

    Not retryable by the message's retries, and not a failure of the request either: the
    worker holds the service's requests, unsent and with no delivery attempt used, and tries
    again now and then until the tenant sends again. Other tenants are not affected.
    """


class ConfigurationError(PermanentError):
    """The session cannot be built: missing or invalid service configuration or arguments.

    Not retryable: the same configuration gives the same error. The message names the
    service and where its configuration was looked for.
    """

    code = "configuration_error"


class InvalidMessageError(PermanentError):
    """The message itself cannot be sent: no sender, no recipients, bad addresses, or a
    request SES found malformed.

    Not retryable: the message is wrong, and it stays wrong.
    """

    code = "invalid_parameter"


class MessageTooLargeError(InvalidMessageError):
    """The raw message is larger than SES accepts, so it was not sent at all.

    Not retryable: the size does not change.
    """

    code = "message_too_large"


# -- attachments by reference (gs://) ---------------------------------------------------


class AttachmentNotFoundError(PermanentError):
    """A ``gs://`` attachment does not exist (or no longer exists).

    Not retryable: the request names a file that is not there; nothing was sent.
    """

    code = "attachment_not_found"


class AttachmentChangedError(PermanentError):
    """A ``gs://`` attachment was overwritten after its generation was pinned.

    Not retryable: the bytes the request was first claimed with are gone, and sending the new
    ones would make a redelivery a different email.
    """

    code = "attachment_changed"
