"""Raw mode: a request carrying a whole RFC 5322 message, checked before and after parsing.

Header fields whose parsing is costly are size-checked on the bytes first; then the message is
parsed, refused on structural defects or X-SES-* headers, and its sender and recipients read
unless the request overrides them.
"""

from __future__ import annotations

import email.errors
import re
from collections.abc import Mapping
from email.message import EmailMessage
from typing import Any

from worker.formats.addresses import Mailbox, parse_address_header
from worker.formats.error_codes import ErrorCode
from worker.formats.mime import MalformedHeaderLineDefect, load_raw_message
from worker.formats.rejection import reject
from worker.formats.request_attachments import decode_base64
from worker.formats.request_fields import STRUCTURED_FIELDS, check_recipient_count

# Raw-message header fields whose values get parsed (addresses for the
# envelope and sender checks, MIME parameters for the structure). The stdlib
# parsers are quadratic in the worst case, so these are size-checked on the
# raw bytes before any parsing.
MAX_RAW_ADDRESS_FIELD_LENGTH = 32_768
MAX_RAW_MIME_FIELD_LENGTH = 4_096
MAX_RAW_CHECKED_FIELDS_LENGTH = 262_144
_RAW_ADDRESS_FIELDS = ("from", "to", "cc", "bcc", "sender", "reply-to")
_RAW_MIME_FIELDS = ("content-type", "content-disposition")
_RAW_CHECKED_FIELD_RE = re.compile(
    rb"^(" + b"|".join(n.encode() for n in _RAW_ADDRESS_FIELDS + _RAW_MIME_FIELDS) + rb")"
    # The field's first line and its continuation lines (starting with WSP).
    rb"[ \t]*:[^\r\n]*(?:(?:\r\n|\r|\n)[ \t][^\r\n]*)*",
    re.IGNORECASE | re.MULTILINE,
)

# Parser defects after which the raw message's structure cannot be trusted.
_FATAL_RAW_DEFECTS: tuple[type[email.errors.MessageDefect], ...] = (
    email.errors.NoBoundaryInMultipartDefect,
    email.errors.StartBoundaryNotFoundDefect,
    email.errors.MultipartInvariantViolationDefect,
    email.errors.FirstHeaderLineIsContinuationDefect,
    email.errors.MisplacedEnvelopeHeaderDefect,
    email.errors.MissingHeaderBodySeparatorDefect,
    email.errors.InvalidMultipartContentTransferEncodingDefect,
    MalformedHeaderLineDefect,
)


def parse_raw_content(
    fields: Mapping[str, Any],
    sender: Mailbox | None,
    recipients: Mapping[str, tuple[Mailbox, ...]],
) -> tuple[Mailbox | None, Mapping[str, tuple[Mailbox, ...]], dict[str, Any]]:
    """A raw request's effective sender and recipients, and its own fields of
    :class:`EmailRequest`."""
    conflicting = sorted(STRUCTURED_FIELDS & set(fields))
    if conflicting:
        reject(
            ErrorCode.INVALID_REQUEST,
            f"raw cannot be combined with {', '.join(conflicting)}",
        )
    if not isinstance(fields["raw"], str):
        reject(ErrorCode.INVALID_REQUEST, "raw must be a base64 string")
    raw = decode_base64(fields["raw"], "raw")
    message = _load_raw(raw)

    replace_recipients = any(name in fields for name in ("to", "cc", "bcc"))
    if not replace_recipients:
        recipients = {
            name: parse_address_header(
                message, name.capitalize(), f"raw {name.capitalize()} header"
            )
            for name in ("to", "cc", "bcc")
        }
    check_recipient_count(sum(len(r) for r in recipients.values()))

    if sender is None:
        # Without an override the raw From is what SES sends as, so it must be
        # a single valid mailbox for the worker's sender checks to mean anything.
        raw_senders = parse_address_header(message, "From", "raw From header")
        if not raw_senders:
            reject(
                ErrorCode.INVALID_REQUEST,
                "the raw message has no From header and no from is given",
            )
        if len(raw_senders) > 1:
            reject(ErrorCode.INVALID_REQUEST, "the raw message must have exactly one From address")
        sender = raw_senders[0]
        replace_sender = False
    else:
        replace_sender = True

    content = {
        "raw": raw,
        "replace_raw_recipients": replace_recipients,
        "replace_raw_sender": replace_sender,
    }
    return sender, recipients, content


def _check_raw_field_sizes(raw: bytes) -> None:
    # Runs on the bytes, before the email package sees them. Lines that merely
    # look like such fields (in a body) are counted too; that errs on the safe side.
    total = 0
    for match in _RAW_CHECKED_FIELD_RE.finditer(raw):
        name = match.group(1).decode("ascii").lower()
        size = match.end() - match.start()
        limit = (
            MAX_RAW_ADDRESS_FIELD_LENGTH
            if name in _RAW_ADDRESS_FIELDS
            else MAX_RAW_MIME_FIELD_LENGTH
        )
        if size > limit:
            reject(
                ErrorCode.INVALID_REQUEST,
                f"a {name} header in the raw message is longer than {limit} bytes",
            )
        total += size
    if total > MAX_RAW_CHECKED_FIELDS_LENGTH:
        reject(
            ErrorCode.INVALID_REQUEST,
            "the raw message's address and Content-Type/-Disposition headers together "
            f"are longer than {MAX_RAW_CHECKED_FIELDS_LENGTH} bytes",
        )


def _load_raw(raw: bytes) -> EmailMessage:
    _check_raw_field_sizes(raw)
    try:
        message = load_raw_message(raw)
        defects = [
            type(defect).__name__
            for part in message.walk()
            for defect in part.defects
            if isinstance(defect, _FATAL_RAW_DEFECTS)
        ]
        names = [name.lower() for name in message]
    except Exception:
        # The stdlib parser is meant to record defects rather than raise, but
        # hostile input has triggered parser bugs before (and deep nesting
        # exhausts the stack); treat any of that as a malformed message.
        reject(ErrorCode.INVALID_REQUEST, "the raw message could not be parsed")
    if defects:
        reject(
            ErrorCode.INVALID_REQUEST,
            f"the raw message is malformed ({', '.join(sorted(set(defects)))})",
        )
    if any(name.startswith("x-ses-") for name in names):
        reject(
            ErrorCode.RESERVED_HEADER,
            "the raw message must not contain X-SES-* headers; use tags instead",
        )
    for field_name in _RAW_ADDRESS_FIELDS:
        # RFC 5322 allows each of these once; more would also multiply parsing work.
        if names.count(field_name) > 1:
            reject(
                ErrorCode.INVALID_REQUEST,
                f"the raw message has more than one {field_name} header",
            )
    return message
