"""Why a request is refused, and the header-text rule requests and addresses share.

Its own module so that :mod:`worker.formats.request` and :mod:`worker.formats.addresses` can
both raise `RequestRejected` without importing each other.
"""

from __future__ import annotations

import re
from typing import NoReturn

from worker.formats.error_codes import ErrorCode

__all__ = ["LINE_BREAK_RE", "RequestRejected", "check_header_text", "reject"]

# Anything a mail parser might treat as the end of a header line. str.splitlines()
# (used inside the email package) honours the Unicode ones too, so all are refused.
LINE_BREAK_RE = re.compile("[\r\n\x00\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
# Remaining control characters (TAB is ordinary folding whitespace).
_CONTROL_RE = re.compile("[\x01-\x08\x0e-\x1f\x7f-\x9f]")


class RequestRejected(Exception):
    """The request cannot be sent as given; `code` says why.

    `message` is safe to publish back to the requester and to log: it can
    name a field (``to[3]``) but never contains addresses, bodies, header
    values or attachment data. `request_id` and `service_id` are filled in
    when they could be read from the request before the problem was found,
    so the result can still be correlated.
    """

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.request_id: str | None = None
        self.service_id: str | None = None


def reject(code: ErrorCode, message: str) -> NoReturn:
    raise RequestRejected(code, message)


def check_header_text(
    value: str, label: str, *, code: ErrorCode = ErrorCode.INVALID_REQUEST
) -> None:
    """Refuse line breaks (injection) and other control characters in header text."""
    if LINE_BREAK_RE.search(value):
        reject(ErrorCode.HEADER_INJECTION, f"{label} contains a line break or NUL character")
    if _CONTROL_RE.search(value):
        reject(code, f"{label} contains control characters")
