"""Turn botocore, STS and google-auth failures into the library's own errors.

The classification is data: :data:`AWS_ERROR_CODES` maps each AWS error code we know to the
error class it becomes. The codes come from AWS's lists:

* SES v2 SendEmail: https://docs.aws.amazon.com/ses/latest/APIReference-V2/API_SendEmail.html#API_SendEmail_Errors
* SES/AWS common errors: https://docs.aws.amazon.com/ses/latest/APIReference-V2/CommonErrors.html
* SES tenants: https://docs.aws.amazon.com/ses/latest/dg/tenants.html

:data:`TENANT_ERROR_CODES` overrides the table for a call made through a tenant
(``TenantName``). SendEmail's documented errors have no code of their own for a paused
tenant: its list names ``SendingPausedException`` ("sending is currently paused") and
``AccountSuspendedException`` ("permanently restricted") only, so a pause answered to a
tenant's call is taken for the tenant's pause (which the tenant's reputation policy, or an
operator through the tenant's reputation entity, sets and lifts), and held rather than failed.

* STS AssumeRoleWithWebIdentity: https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRoleWithWebIdentity.html#API_AssumeRoleWithWebIdentity_Errors
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

import botocore.exceptions
import google.auth.exceptions

from worker.sending.errors import (
    AccessDeniedError,
    ConfigurationError,
    EmailError,
    IdentityNotVerifiedError,
    InvalidMessageError,
    MessageRejectedError,
    PermanentError,
    SendingPausedError,
    TenantPausedError,
    ThrottledError,
    TransientError,
)

__all__ = [
    "AWS_ERROR_CODES",
    "TENANT_ERROR_CODES",
    "classify_aws_error",
    "classify_exception",
    "classify_google_error",
]

AWS_ERROR_CODES: Mapping[str, type[EmailError]] = MappingProxyType(
    {
        # Rate and quota limits: the request was fine, it came too fast.
        "Throttling": ThrottledError,
        "ThrottlingException": ThrottledError,
        "TooManyRequestsException": ThrottledError,
        # SES v2 answers this when the sending quota is used up; quotas refill.
        "LimitExceededException": ThrottledError,
        # The provider is in trouble; the same call can succeed later.
        "ServiceUnavailable": TransientError,
        "ServiceUnavailableException": TransientError,
        "InternalFailure": TransientError,
        "InternalServerError": TransientError,
        "InternalError": TransientError,
        "RequestTimeout": TransientError,
        "RequestTimeoutException": TransientError,
        # STS could not reach Google to check the token.
        "IDPCommunicationError": TransientError,
        # The Google ID token expired in flight; a fresh token fixes it.
        "ExpiredTokenException": TransientError,
        "ExpiredToken": TransientError,
        # SES judged the message.
        "MessageRejected": MessageRejectedError,
        # The custom MAIL FROM domain is not verified.
        "MailFromDomainNotVerifiedException": IdentityNotVerifiedError,
        "MailFromDomainNotVerified": IdentityNotVerifiedError,
        # IAM said no: to the Google token (STS) or to the assumed role (SES).
        "AccessDenied": AccessDeniedError,
        "AccessDeniedException": AccessDeniedError,
        "InvalidIdentityToken": AccessDeniedError,
        "IDPRejectedClaim": AccessDeniedError,
        "InvalidClientTokenId": AccessDeniedError,
        "UnrecognizedClientException": AccessDeniedError,
        "SignatureDoesNotMatch": AccessDeniedError,
        # A person has to lift these.
        "AccountSuspendedException": SendingPausedError,
        "SendingPausedException": SendingPausedError,
        "AccountSendingPausedException": SendingPausedError,
        "ConfigurationSetSendingPausedException": SendingPausedError,
        # The request itself is malformed.
        "InvalidParameterValue": InvalidMessageError,
        "InvalidParameterCombination": InvalidMessageError,
        "BadRequestException": InvalidMessageError,
        "ValidationError": InvalidMessageError,
        # Our own configuration is wrong (missing configuration set, disabled region, bad policy).
        "NotFoundException": ConfigurationError,
        "RegionDisabledException": ConfigurationError,
        "MalformedPolicyDocument": ConfigurationError,
        "PackedPolicyTooLarge": ConfigurationError,
    }
)

#: The codes whose meaning changes when the call named a tenant: a pause is the tenant's,
#: which lifts by itself (reputation policy) or by an operator, and holds its requests.
TENANT_ERROR_CODES: Mapping[str, type[EmailError]] = MappingProxyType(
    {
        "SendingPausedException": TenantPausedError,
    }
)

# SES reports an unverified From address as a plain MessageRejected; only its text says why.
# The text is stable and documented ("Email address is not verified"), and telling it apart
# matters to the requester: the fix is verifying the identity, not changing the message.
_NOT_VERIFIED_MARKERS = ("not verified", "unverified")
_ADDRESS = re.compile(r"\S+@\S+")


def classify_aws_error(
    error: botocore.exceptions.ClientError, *, tenant: str | None = None
) -> EmailError:
    """Map an AWS ``ClientError`` (SES or STS) to the library's error for it; ``tenant``: the
    SES tenant the call named, if any."""
    details = error.response.get("Error", {})
    code = str(details.get("Code", "")) or "Unknown"
    text = str(details.get("Message", "")) or code
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    operation = error.operation_name or "AWS"
    message = f"{operation} failed: {code}: {text}"

    cls = TENANT_ERROR_CODES.get(code) if tenant is not None else None
    cls = cls or AWS_ERROR_CODES.get(code)
    if cls is TenantPausedError:
        message = f"{operation} failed: {code}: SES has paused sending for tenant {tenant!r}"
    wording = _ADDRESS.sub("", text).lower()  # judge SES's words, not the addresses it quotes
    if cls is MessageRejectedError and any(m in wording for m in _NOT_VERIFIED_MARKERS):
        cls = IdentityNotVerifiedError
    if cls is None:
        # An unknown code is classified by its HTTP status. A 5xx is the server's trouble,
        # which retrying is the documented remedy for; a 429 is a rate limit. Any other 4xx
        # says the request is wrong, and sending it again would only repeat the refusal
        # (or, worse, hide a bug behind endless retries), so it is permanent.
        if status >= 500:
            cls = TransientError
        elif status == 429:
            cls = ThrottledError
        else:
            cls = PermanentError
    return cls(message, provider_code=code)


def classify_google_error(error: google.auth.exceptions.GoogleAuthError) -> EmailError:
    """Map a google-auth failure (fetching the Google ID token) to the library's error."""
    name = type(error).__name__
    if isinstance(error, google.auth.exceptions.DefaultCredentialsError):
        return ConfigurationError(
            "no Google identity is available: run on Cloud Run/GCE, set "
            "GOOGLE_APPLICATION_CREDENTIALS, or pass impersonate_service_account",
            provider_code=name,
        )
    if isinstance(error, google.auth.exceptions.TransportError):
        return TransientError(f"could not reach Google to get an ID token ({name})")
    # google-auth marks the refresh failures that are worth repeating (5xx, timeouts).
    if getattr(error, "retryable", False):
        return TransientError(f"Google ID token fetch failed temporarily ({name})")
    return AccessDeniedError(
        f"Google refused to issue an ID token ({name}); check the service account and, when "
        "impersonating, the Token Creator role",
        provider_code=name,
    )


def classify_exception(error: BaseException, *, tenant: str | None = None) -> EmailError:
    """Map any failure raised while talking to AWS or Google to the library's error;
    ``tenant``: the SES tenant the call named, if any."""
    if isinstance(error, EmailError):
        return error
    if isinstance(error, botocore.exceptions.ClientError):
        return classify_aws_error(error, tenant=tenant)
    if isinstance(error, google.auth.exceptions.GoogleAuthError):
        return classify_google_error(error)
    if isinstance(error, botocore.exceptions.ParamValidationError):
        return InvalidMessageError(f"SES request is invalid: {type(error).__name__}")
    if isinstance(
        error, botocore.exceptions.NoRegionError | botocore.exceptions.NoCredentialsError
    ):
        return ConfigurationError(f"AWS client is misconfigured ({type(error).__name__})")
    if isinstance(error, botocore.exceptions.BotoCoreError | OSError):
        # Connection resets, timeouts, DNS failures and the like: the network's state, not the
        # request's, so another attempt can succeed. Bounded by the caller's retry policy.
        return TransientError(f"network failure talking to AWS ({type(error).__name__})")
    # Anything else is a bug or an unforeseen library failure: we cannot tell whether the
    # email went out, so it is not retried blindly.
    return PermanentError(f"unexpected failure ({type(error).__name__})")
