"""Every AWS error code the library knows, and how unknown ones are treated."""

from __future__ import annotations

import botocore.exceptions
import google.auth.exceptions
import pytest

from worker.sending import errors
from worker.sending.provider_errors import (
    AWS_ERROR_CODES,
    TENANT_ERROR_CODES,
    classify_aws_error,
    classify_exception,
    classify_google_error,
)

# Written out by hand, not derived from the table: this is what the table must say.
EXPECTED = {
    "Throttling": ("throttled", True),
    "ThrottlingException": ("throttled", True),
    "TooManyRequestsException": ("throttled", True),
    "LimitExceededException": ("throttled", True),
    "ServiceUnavailable": ("provider_unavailable", True),
    "ServiceUnavailableException": ("provider_unavailable", True),
    "InternalFailure": ("provider_unavailable", True),
    "InternalServerError": ("provider_unavailable", True),
    "InternalError": ("provider_unavailable", True),
    "RequestTimeout": ("provider_unavailable", True),
    "RequestTimeoutException": ("provider_unavailable", True),
    "IDPCommunicationError": ("provider_unavailable", True),
    "ExpiredTokenException": ("provider_unavailable", True),
    "ExpiredToken": ("provider_unavailable", True),
    "MessageRejected": ("ses_rejected", False),
    "MailFromDomainNotVerifiedException": ("identity_not_verified", False),
    "MailFromDomainNotVerified": ("identity_not_verified", False),
    "AccessDenied": ("access_denied", False),
    "AccessDeniedException": ("access_denied", False),
    "InvalidIdentityToken": ("access_denied", False),
    "IDPRejectedClaim": ("access_denied", False),
    "InvalidClientTokenId": ("access_denied", False),
    "UnrecognizedClientException": ("access_denied", False),
    "SignatureDoesNotMatch": ("access_denied", False),
    "AccountSuspendedException": ("sending_paused", False),
    "SendingPausedException": ("sending_paused", False),
    "AccountSendingPausedException": ("sending_paused", False),
    "ConfigurationSetSendingPausedException": ("sending_paused", False),
    "InvalidParameterValue": ("invalid_parameter", False),
    "InvalidParameterCombination": ("invalid_parameter", False),
    "BadRequestException": ("invalid_parameter", False),
    "ValidationError": ("invalid_parameter", False),
    "NotFoundException": ("configuration_error", False),
    "RegionDisabledException": ("configuration_error", False),
    "MalformedPolicyDocument": ("configuration_error", False),
    "PackedPolicyTooLarge": ("configuration_error", False),
}


def client_error(
    code: str, status: int = 400, message: str = "nope", operation: str = "SendEmail"
) -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError(
        {
            "Error": {"Code": code, "Message": message},
            # botocore-stubs require every ResponseMetadata key, HostId (S3 only) included;
            # real non-S3 error responses lack it, and classify_aws_error reads only the status.
            "ResponseMetadata": {"HTTPStatusCode": status},  # type: ignore[typeddict-item]
        },
        operation,
    )


def test_the_table_holds_exactly_the_codes_that_are_tested() -> None:
    assert set(AWS_ERROR_CODES) == set(EXPECTED)


@pytest.mark.parametrize(("code", "expected"), sorted(EXPECTED.items()))
def test_each_known_aws_code_maps_to_its_class(code: str, expected: tuple[str, bool]) -> None:
    error = classify_aws_error(client_error(code))
    assert (error.code, error.retryable) == expected
    assert error.provider_code == code


# What a code means when the call named a tenant, where that differs.
EXPECTED_FOR_TENANT = {"SendingPausedException": errors.TenantPausedError}


def test_the_tenant_table_holds_exactly_the_codes_that_are_tested() -> None:
    assert set(TENANT_ERROR_CODES) == set(EXPECTED_FOR_TENANT)


@pytest.mark.parametrize(("code", "expected"), sorted(EXPECTED_FOR_TENANT.items()))
def test_each_tenant_code_maps_to_its_class_when_the_call_named_a_tenant(
    code: str, expected: type[errors.EmailError]
) -> None:
    error = classify_exception(client_error(code), tenant="billing")
    assert type(error) is expected
    assert (error.code, error.retryable, error.provider_code) == ("sending_paused", False, code)
    assert "tenant 'billing'" in error.message


def test_a_pause_answered_to_a_call_without_a_tenant_is_the_accounts() -> None:
    error = classify_exception(client_error("SendingPausedException"))
    assert type(error) is errors.SendingPausedError


def test_an_account_suspension_stays_permanent_for_a_tenants_call() -> None:
    error = classify_aws_error(client_error("AccountSuspendedException"), tenant="billing")
    assert type(error) is errors.SendingPausedError


def test_message_rejected_for_an_unverified_address_is_identity_not_verified() -> None:
    error = classify_aws_error(
        client_error("MessageRejected", message="Email address is not verified.")
    )
    assert isinstance(error, errors.IdentityNotVerifiedError)
    assert not error.retryable


@pytest.mark.parametrize(
    ("status", "expected_class"),
    [
        (500, errors.TransientError),
        (503, errors.TransientError),
        (429, errors.ThrottledError),
        (400, errors.PermanentError),
        (403, errors.PermanentError),
    ],
)
def test_an_unknown_code_is_classified_by_http_status(
    status: int, expected_class: type[errors.EmailError]
) -> None:
    error = classify_aws_error(client_error("SomethingNew", status=status))
    assert type(error) is expected_class


def test_the_error_message_names_the_operation_and_code() -> None:
    error = classify_aws_error(
        client_error("AccessDenied", operation="AssumeRoleWithWebIdentity", message="Not allowed")
    )
    assert error.message == "AssumeRoleWithWebIdentity failed: AccessDenied: Not allowed"


def test_a_connection_failure_is_transient() -> None:
    error = classify_exception(botocore.exceptions.EndpointConnectionError(endpoint_url="x"))
    assert isinstance(error, errors.TransientError)


def test_a_read_timeout_is_transient() -> None:
    error = classify_exception(botocore.exceptions.ReadTimeoutError(endpoint_url="x"))
    assert isinstance(error, errors.TransientError)


def test_a_parameter_validation_failure_is_an_invalid_message() -> None:
    error = classify_exception(botocore.exceptions.ParamValidationError(report="bad"))
    assert isinstance(error, errors.InvalidMessageError)


def test_a_missing_region_is_a_configuration_error() -> None:
    assert isinstance(
        classify_exception(botocore.exceptions.NoRegionError()), errors.ConfigurationError
    )


def test_an_unexpected_exception_is_permanent_because_the_send_state_is_unknown() -> None:
    error = classify_exception(ValueError("boom"))
    assert type(error) is errors.PermanentError


def test_library_errors_pass_through_unchanged() -> None:
    original = errors.ThrottledError("slow down")
    assert classify_exception(original) is original


def test_a_google_transport_error_is_transient() -> None:
    error = classify_google_error(google.auth.exceptions.TransportError("down"))
    assert isinstance(error, errors.TransientError)


def test_a_retryable_google_refresh_error_is_transient() -> None:
    error = classify_google_error(google.auth.exceptions.RefreshError("5xx", retryable=True))
    assert isinstance(error, errors.TransientError)


def test_a_final_google_refresh_error_is_access_denied() -> None:
    error = classify_google_error(google.auth.exceptions.RefreshError("denied"))
    assert isinstance(error, errors.AccessDeniedError)


def test_missing_google_credentials_are_a_configuration_error() -> None:
    error = classify_google_error(google.auth.exceptions.DefaultCredentialsError("none"))
    assert isinstance(error, errors.ConfigurationError)


def test_error_repr_shows_codes_only() -> None:
    error = errors.MessageRejectedError(
        "rejected: secret body text", provider_code="MessageRejected"
    )
    assert "secret" not in repr(error)


def test_an_address_that_merely_contains_unverified_does_not_change_the_class() -> None:
    error = classify_aws_error(
        client_error("MessageRejected", message="Message rejected for news@unverified.example")
    )
    assert type(error) is errors.MessageRejectedError
