"""A request's ``send_at``: when to send it, as RFC 3339 with an offset.

:func:`parse_send_at` reads the field (an aware :class:`~datetime.datetime`, or None when it
is absent) and refuses anything else with ``invalid_request``. What the time means (send now,
keep it, or refuse it as too far: :func:`send_at_verdict`) depends on the clock, and is
decided when the request arrives.
"""

from __future__ import annotations

import enum
import re
from datetime import datetime
from typing import Any

from worker.formats.error_codes import ErrorCode
from worker.formats.rejection import reject

__all__ = [
    "MAX_SCHEDULE_AHEAD_S",
    "SEND_NOW_WITHIN_S",
    "SendAtVerdict",
    "parse_send_at",
    "send_at_verdict",
]

#: The furthest ahead a request may be scheduled: 30 days.
MAX_SCHEDULE_AHEAD_S = 30 * 24 * 3600.0
#: A ``send_at`` in the past, or at most this far ahead, sends the request now.
SEND_NOW_WITHIN_S = 60.0

# RFC 3339's date-time: the offset is required ("Z" or +hh:mm / -hh:mm), and so are seconds.
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})"
)


class SendAtVerdict(enum.StrEnum):
    NOW = "now"  # past, or within SEND_NOW_WITHIN_S: send as any request
    LATER = "later"  # keep it until then
    TOO_FAR = "too_far"  # beyond MAX_SCHEDULE_AHEAD_S: refuse it


def parse_send_at(value: Any) -> datetime | None:
    """``send_at`` as an aware datetime; None when absent. Raises RequestRejected."""
    if value is None:
        return None
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        reject(
            ErrorCode.INVALID_REQUEST,
            "send_at must be an RFC 3339 date-time with an offset, like 2027-01-31T09:00:00Z",
        )
    # Python reads at most microseconds: longer fractions are cut, not rounded.
    text = re.sub(r"(\.\d{6})\d+", r"\1", value.upper())
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        reject(ErrorCode.INVALID_REQUEST, "send_at is not a valid date and time")


def send_at_verdict(
    send_at: datetime | None, now_s: float, *, send_now_within_s: float = SEND_NOW_WITHIN_S
) -> SendAtVerdict:
    """What ``send_at`` means at ``now_s`` (epoch seconds); ``send_now_within_s``: how near
    is now."""
    if send_at is None:
        return SendAtVerdict.NOW
    ahead_s = send_at.timestamp() - now_s
    if ahead_s <= send_now_within_s:
        return SendAtVerdict.NOW
    if ahead_s > MAX_SCHEDULE_AHEAD_S:
        return SendAtVerdict.TOO_FAR
    return SendAtVerdict.LATER
