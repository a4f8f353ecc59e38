"""Result statuses and the error codes a result can carry.

Every code belongs to exactly one non-``sent`` status, so a requester can
decide what to do from the status alone and look at the code for detail.
``docs/formats.md`` has the same table in prose; a test keeps the two in step.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ErrorCode", "ResultStatus"]


class ResultStatus(StrEnum):
    """Outcome of one email request."""

    SENT = "sent"
    """SES accepted the message."""
    REJECTED = "rejected"
    """The request itself is unacceptable; sending it again unchanged fails again."""
    FAILED = "failed"
    """Something outside the request went wrong; the same request may succeed later."""
    SCHEDULED = "scheduled"
    """Not final: the request is valid and kept until its ``send_at``; its outcome follows."""
    CANCELLED = "cancelled"
    """A scheduled request cancelled by its service or an operator: it will not be sent."""
    CANCEL_REFUSED = "cancel_refused"
    """Not about the request's outcome: a cancel that could not cancel it."""


class ErrorCode(StrEnum):
    """Machine-readable reason for a ``rejected`` or ``failed`` result."""

    # Problems with the request document (status "rejected").
    INVALID_JSON = "invalid_json"
    INVALID_REQUEST = "invalid_request"
    UNSUPPORTED_VERSION = "unsupported_version"
    HEADER_INJECTION = "header_injection"
    RESERVED_HEADER = "reserved_header"
    RESERVED_TAG = "reserved_tag"
    INVALID_ADDRESS = "invalid_address"
    INVALID_BASE64 = "invalid_base64"
    TOO_MANY_RECIPIENTS = "too_many_recipients"
    MESSAGE_TOO_LARGE = "message_too_large"
    TEMPLATE_NOT_FOUND = "template_not_found"
    TEMPLATE_DATA_INVALID = "template_data_invalid"
    TEMPLATE_RENDER_FAILED = "template_render_failed"
    # Policy decisions by the worker (status "rejected").
    UNKNOWN_SERVICE = "unknown_service"
    PUBLISHER_NOT_ALLOWED = "publisher_not_allowed"
    SENDER_NOT_ALLOWED = "sender_not_allowed"
    REQUEST_ID_CONFLICT = "request_id_conflict"
    # Refusals by SES that depend on the request (status "rejected").
    SES_REJECTED = "ses_rejected"
    INVALID_PARAMETER = "invalid_parameter"
    # Operator-side or transient problems (status "failed").
    CONFIGURATION_ERROR = "configuration_error"
    IDENTITY_NOT_VERIFIED = "identity_not_verified"
    ACCESS_DENIED = "access_denied"
    SENDING_PAUSED = "sending_paused"
    THROTTLED = "throttled"
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    PARTIALLY_SENT = "partially_sent"
    LEDGER_UNAVAILABLE = "ledger_unavailable"
    OUTCOME_UNKNOWN = "outcome_unknown"
    WORKER_STOPPED = "worker_stopped"
    INTERNAL_ERROR = "internal_error"
    # Attachments by reference (gs://): refused reads are "rejected".
    ATTACHMENT_FORBIDDEN = "attachment_forbidden"
    ATTACHMENT_NOT_FOUND = "attachment_not_found"
    ATTACHMENT_CHANGED = "attachment_changed"
    # Scheduled sending.
    SEND_AT_TOO_FAR = "send_at_too_far"
    CANCELLED = "cancelled"
    CANCEL_TOO_LATE = "cancel_too_late"
    SCHEDULE_NOT_FOUND = "schedule_not_found"
    # The service's own max_per_day, with over_daily_cap "reject" (status "failed").
    DAILY_CAP_REACHED = "daily_cap_reached"

    @property
    def status(self) -> ResultStatus:
        """The status a result with this code always has."""
        return _STATUS[self]

    @property
    def meaning(self) -> str:
        """One-line explanation, suitable for documentation and logs."""
        return _MEANING[self]


_R = ResultStatus.REJECTED
_F = ResultStatus.FAILED

_STATUS: dict[ErrorCode, ResultStatus] = {
    ErrorCode.INVALID_JSON: _R,
    ErrorCode.INVALID_REQUEST: _R,
    ErrorCode.UNSUPPORTED_VERSION: _R,
    ErrorCode.HEADER_INJECTION: _R,
    ErrorCode.RESERVED_HEADER: _R,
    ErrorCode.RESERVED_TAG: _R,
    ErrorCode.INVALID_ADDRESS: _R,
    ErrorCode.INVALID_BASE64: _R,
    ErrorCode.TOO_MANY_RECIPIENTS: _R,
    ErrorCode.MESSAGE_TOO_LARGE: _R,
    ErrorCode.TEMPLATE_NOT_FOUND: _R,
    ErrorCode.TEMPLATE_DATA_INVALID: _R,
    ErrorCode.TEMPLATE_RENDER_FAILED: _R,
    ErrorCode.UNKNOWN_SERVICE: _R,
    ErrorCode.PUBLISHER_NOT_ALLOWED: _R,
    ErrorCode.SENDER_NOT_ALLOWED: _R,
    ErrorCode.REQUEST_ID_CONFLICT: _R,
    ErrorCode.SES_REJECTED: _R,
    ErrorCode.INVALID_PARAMETER: _R,
    ErrorCode.CONFIGURATION_ERROR: _F,
    ErrorCode.IDENTITY_NOT_VERIFIED: _F,
    ErrorCode.ACCESS_DENIED: _F,
    ErrorCode.SENDING_PAUSED: _F,
    ErrorCode.THROTTLED: _F,
    ErrorCode.PROVIDER_UNAVAILABLE: _F,
    ErrorCode.PARTIALLY_SENT: _F,
    ErrorCode.LEDGER_UNAVAILABLE: _F,
    ErrorCode.OUTCOME_UNKNOWN: _F,
    ErrorCode.WORKER_STOPPED: _F,
    ErrorCode.INTERNAL_ERROR: _F,
    # Attachments by reference.
    ErrorCode.ATTACHMENT_FORBIDDEN: _R,
    ErrorCode.ATTACHMENT_NOT_FOUND: _R,
    ErrorCode.ATTACHMENT_CHANGED: _R,
    # Scheduled sending.
    ErrorCode.SEND_AT_TOO_FAR: _R,
    ErrorCode.CANCELLED: ResultStatus.CANCELLED,
    ErrorCode.CANCEL_TOO_LATE: ResultStatus.CANCEL_REFUSED,
    ErrorCode.SCHEDULE_NOT_FOUND: ResultStatus.CANCEL_REFUSED,
    ErrorCode.DAILY_CAP_REACHED: _F,
}

_MEANING: dict[ErrorCode, str] = {
    ErrorCode.INVALID_JSON: "The message data is not UTF-8 encoded JSON.",
    ErrorCode.INVALID_REQUEST: "The JSON does not follow the request format (field, type or rule).",
    ErrorCode.UNSUPPORTED_VERSION: "The request's version is not one this worker understands.",
    ErrorCode.HEADER_INJECTION: "A header value contains a line break or NUL character.",
    ErrorCode.RESERVED_HEADER: "A custom header name is one the worker or SES controls.",
    ErrorCode.RESERVED_TAG: "A tag name uses the prefix the worker reserves for its own tags.",
    ErrorCode.INVALID_ADDRESS: "An email address is not syntactically valid.",
    ErrorCode.INVALID_BASE64: "An attachment or raw message is not strict base64.",
    ErrorCode.TOO_MANY_RECIPIENTS: "More recipients than one message may have.",
    ErrorCode.MESSAGE_TOO_LARGE: "The built message is larger than the size limit.",
    ErrorCode.TEMPLATE_NOT_FOUND: "The service has no such template, version or language.",
    ErrorCode.TEMPLATE_DATA_INVALID: "The template's data lacks names it uses, or fails its "
    "JSON Schema; the message names them.",
    ErrorCode.TEMPLATE_RENDER_FAILED: "The template could not be rendered (syntax, a refused "
    "operation, or its output size or time bound).",
    ErrorCode.UNKNOWN_SERVICE: "The service_id is not configured on this worker.",
    ErrorCode.PUBLISHER_NOT_ALLOWED: "Whoever published the request may not send as the "
    "service it names (or a replay matches no request the service published).",
    ErrorCode.SENDER_NOT_ALLOWED: "The From address is not in a domain the service may send from.",
    ErrorCode.REQUEST_ID_CONFLICT: "The request_id was already used for a different request.",
    ErrorCode.SES_REJECTED: "SES refused the message (for example content or virus checks).",
    ErrorCode.INVALID_PARAMETER: "SES found the message or its addresses invalid.",
    ErrorCode.CONFIGURATION_ERROR: "The worker or service configuration is missing or invalid.",
    ErrorCode.IDENTITY_NOT_VERIFIED: "SES has not verified the sending identity (or sandbox).",
    ErrorCode.ACCESS_DENIED: "The worker's AWS role may not send as this identity.",
    ErrorCode.SENDING_PAUSED: "Sending is paused for the SES account or configuration set.",
    ErrorCode.THROTTLED: "SES's sending rate or quota, or the worker's own send rate limit, "
    "was exceeded and retries ran out.",
    ErrorCode.PROVIDER_UNAVAILABLE: "SES or the network was unavailable and retries ran out.",
    ErrorCode.PARTIALLY_SENT: "Some recipient batches were sent before SES failed; no retry.",
    ErrorCode.LEDGER_UNAVAILABLE: "The request ledger was unavailable; nothing was sent.",
    ErrorCode.OUTCOME_UNKNOWN: "SES may or may not have accepted it (its answer was lost, or "
    "an earlier delivery died during its call).",
    ErrorCode.WORKER_STOPPED: "The worker stopped before sending it and handed it back; nothing "
    "was sent.",
    ErrorCode.INTERNAL_ERROR: "An unexpected error in the worker.",
    # Attachments by reference.
    ErrorCode.ATTACHMENT_FORBIDDEN: "A gs:// attachment is not under one of the service's "
    "attachment prefixes, or its name is ambiguous; nothing was read.",
    ErrorCode.ATTACHMENT_NOT_FOUND: "A gs:// attachment does not exist (or no longer exists).",
    ErrorCode.ATTACHMENT_CHANGED: "A gs:// attachment was overwritten after the request was "
    "first claimed; the pinned version is gone.",
    # Scheduled sending.
    ErrorCode.SEND_AT_TOO_FAR: "send_at is more than 30 days ahead.",
    ErrorCode.CANCELLED: "The scheduled request was cancelled before its time; nothing was sent.",
    ErrorCode.CANCEL_TOO_LATE: "A cancel came after the scheduled request was sent, or while "
    "it was being sent.",
    ErrorCode.SCHEDULE_NOT_FOUND: "A cancel named no request scheduled by its service.",
    ErrorCode.DAILY_CAP_REACHED: "The service sent its max_per_day recipients in the last 24 "
    "hours and its configuration rejects requests beyond them; nothing was sent.",
}
