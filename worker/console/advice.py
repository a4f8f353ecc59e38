"""What an operator should do about a dead letter, by its error code.

The meaning comes from the error-code table (`worker.formats.error_codes`); the advice is for
the operator looking at the dead-letter queue, not for the requester: whether a replay can
help, and what to fix first.
"""

from __future__ import annotations

from worker.formats.error_codes import ErrorCode, ResultStatus

__all__ = ["advice_for", "meaning_of"]

_REJECTED = (
    "The request itself is at fault: a replay fails again. Tell the service what to fix, then "
    "purge it."
)
_FAILED = "Fix the cause, then replay it."
_BY_CODE: dict[ErrorCode, str] = {
    ErrorCode.IDENTITY_NOT_VERIFIED: "Verify the sender's address or domain in SES (or move "
    "the account out of the sandbox), then replay.",
    ErrorCode.ACCESS_DENIED: "Let the service's AWS role send as this identity, then replay.",
    ErrorCode.CONFIGURATION_ERROR: "Correct the worker's or the service's configuration, "
    "then replay.",
    ErrorCode.SENDING_PAUSED: "Resume sending in SES (account or configuration set), then replay.",
    ErrorCode.THROTTLED: "Replay once the sending rate is back under SES's quota.",
    ErrorCode.PROVIDER_UNAVAILABLE: "Replay once SES answers again.",
    ErrorCode.LEDGER_UNAVAILABLE: "Replay once the request ledger answers again.",
    ErrorCode.WORKER_STOPPED: "Replay: nothing was sent.",
    ErrorCode.PARTIALLY_SENT: "Do not replay: some recipients got it. Ask the service to "
    "resend to the others.",
    ErrorCode.OUTCOME_UNKNOWN: "Check the request's recipients' statuses first: replay only "
    "if SES never sent it.",
    ErrorCode.INTERNAL_ERROR: "Look for the error in the worker's log; replay once fixed.",
}
_POLICY = (
    "Pub/Sub gave up delivering it to the worker: look in the worker's log for why, fix "
    "that, then replay."
)


def _code(code: str | None) -> ErrorCode | None:
    try:
        return ErrorCode(code) if code else None
    except ValueError:
        return None


def meaning_of(code: str | None) -> str:
    """The code's one-line meaning, or a word on a code this worker does not know."""
    known = _code(code)
    if known is not None:
        return known.meaning
    return "Not dead-lettered by the worker itself." if not code else "An unknown error code."


def advice_for(code: str | None) -> str:
    known = _code(code)
    if known is None:
        return _POLICY
    if known in _BY_CODE:
        return _BY_CODE[known]
    return _REJECTED if known.status is ResultStatus.REJECTED else _FAILED
