"""Build the `EmailMessage` that is handed to SES from a validated `EmailRequest`.

Structured requests become a MIME message (text, html or an alternative of both, inside
multipart/mixed when there are attachments), 7-bit clean: non-ASCII text is
quoted-printable or base64, never 8bit. It is written here directly, as the email package
would write it (a `worker.formats.mime.WrittenMessage`). Raw requests are re-parsed to be
checked and changed only where the request says so: From, the recipient headers and
the SES tags header are spliced into the original header block, and every other byte
is written out as given (see `worker.formats.mime.RawMessage`).

Headers we write are stored as `VerbatimHeader` objects (see `worker.formats.mime`),
which write themselves out unchanged under any policy the caller serialises with. The
email package's own encoder is quadratic in the length of non-ASCII text, so non-ASCII
text is encoded in `worker.formats.message_headers`; the bodies of structured messages are
written in `worker.formats.message_parts`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

from worker.formats.addresses import Mailbox, parse_mailbox
from worker.formats.error_codes import ErrorCode
from worker.formats.message_headers import add_addresses, set_addresses, unstructured
from worker.formats.message_parts import (
    MIME_VERSION,
    attachment_part,
    multipart,
    nested_part,
    text_part,
)
from worker.formats.mime import (
    RawMessage,
    VerbatimHeader,
    WrittenMessage,
    load_raw_message,
    message_size,
    written_message,
)
from worker.formats.request import Attachment, EmailRequest, RequestRejected
from worker.formats.tags import worker_tags

__all__ = [
    "MAX_MESSAGE_BYTES",
    "TAGS_HEADER",
    "RawMessage",
    "VerbatimHeader",
    "WrittenMessage",
    "build_message",
    "load_raw_message",
    "message_size",
    "resolve_sender",
]

# SES's limit for a raw message, headers and MIME encoding included; the sending library checks
# the same limit (worker.sending.envelope.MAX_RAW_MESSAGE_BYTES, a test keeps them equal).
MAX_MESSAGE_BYTES = 40_000_000
# Header SES reads message tags from when sending raw content.
TAGS_HEADER = "X-SES-MESSAGE-TAGS"


def resolve_sender(request: EmailRequest, default_from: str | None) -> Mailbox:
    """The From mailbox the message will carry: the request's, else `default_from`.

    Raises `RequestRejected`: ``invalid_request`` if neither exists,
    ``configuration_error`` if `default_from` is not a valid address.
    """
    if request.sender is not None:
        return request.sender
    if default_from is None:
        raise RequestRejected(
            ErrorCode.INVALID_REQUEST,
            "the request has no from and the service has no default From address",
        )
    try:
        return parse_mailbox(default_from, field_name="default From")
    except RequestRejected:
        raise RequestRejected(
            ErrorCode.CONFIGURATION_ERROR, "the service's default From address is invalid"
        ) from None


def build_message(
    request: EmailRequest,
    *,
    default_from: str | None = None,
    max_bytes: int = MAX_MESSAGE_BYTES,
    date: datetime | None = None,
    sender: Mailbox | None = None,
) -> EmailMessage:
    """Create the message for `request`.

    `default_from` is the service's From, used when the request has none.
    `sender` is the From already resolved by `resolve_sender` for this request and
    `default_from`, if the caller has it; by default it is resolved here.
    `date` (default: now) fills the Date header of structured messages; raw
    messages keep their own. Raises `RequestRejected` (``message_too_large``
    when the serialised message exceeds `max_bytes`, see `resolve_sender` for
    the From errors, ``invalid_request`` for a raw message that cannot be
    written back out). A structured message at the default limit, SES's own,
    is not measured here: `worker.sending.envelope.prepare_message` checks that
    limit (``message_too_large`` too) when it takes the message's bytes to send.

    A structured message is a `WrittenMessage`: its bytes are written here, once, and it has
    no MIME tree (parse ``as_bytes()`` to read its parts).
    """
    if sender is None:
        sender = resolve_sender(request, default_from)
    # Cheap lower bound first, so an oversized request is not MIME-encoded for nothing.
    _check_size(_content_size(request), max_bytes)
    # The requester's tags, then the worker's: SES copies them into every event about the
    # message, which is how the events reader finds the request (worker.formats.tags).
    tags = (
        *request.tags,
        *worker_tags(service_id=request.service_id, request_id=request.request_id),
    )
    tags_header = VerbatimHeader(TAGS_HEADER, ", ".join(f"{name}={value}" for name, value in tags))
    message: EmailMessage
    if request.raw is None:
        message = _write_structured(request, sender, date or datetime.now(UTC), tags_header)
        if max_bytes >= MAX_MESSAGE_BYTES:
            # The session checks SES's limit when it takes the bytes to send.
            return message
    else:
        message = _build_raw(request, request.raw, sender)
        message[TAGS_HEADER] = tags_header
    try:
        size = message_size(message)
    except Exception:
        if request.raw is None:
            raise  # Our own structure failing to serialise is a bug, not bad input.
        raise RequestRejected(
            ErrorCode.INVALID_REQUEST, "the raw message cannot be serialised"
        ) from None
    _check_size(size, max_bytes)
    return message


# -- structured messages ---------------------------------------------------------------
#
# The email package builds a message through its header registry (every header parsed, and
# parsed again for each parameter set) and writes it with its generator (every header
# re-folded); for the benchmark's message that was most of the CPU of handling a request
# besides the SES call. The writer below writes the same bytes directly, bar the random
# MIME boundaries: the same headers in the same order, folded the same way, and bodies
# encoded by the same rules and functions (encode_text). tests/formats/test_mime_writer.py holds it
# to the email package's output, byte for byte and parsed, over generated requests.
# Attachments, rarer and dominated by their base64, are still written by the email package.


def _write_structured(
    request: EmailRequest, sender: Mailbox, date: datetime, tags_header: VerbatimHeader
) -> WrittenMessage:
    fields: list[VerbatimHeader] = []
    add_addresses(fields, "From", (sender,))
    add_addresses(fields, "To", request.to)
    add_addresses(fields, "Cc", request.cc)
    # Bcc stays in the message: the session reads recipients from it and strips it.
    add_addresses(fields, "Bcc", request.bcc)
    add_addresses(fields, "Reply-To", request.reply_to)
    fields.append(unstructured("Subject", request.subject or ""))
    fields.append(VerbatimHeader("Date", format_datetime(date.astimezone(UTC))))
    fields.extend(unstructured(name, value) for name, value in request.headers)

    if request.text is not None:
        first = text_part(request.text, "plain")
        second = None if request.html is None else text_part(request.html, "html")
    else:
        first, second = text_part(request.html or "", "html"), None
    # As the email package does it, and so as it is written here: when the message becomes
    # multipart, the first body's headers move into its part, while every part added after
    # it gets a MIME-Version of its own.
    headers, body = first
    if second is not None:
        later_headers, later_body = second
        later = nested_part([*later_headers, MIME_VERSION], later_body)
        headers, body = multipart("alternative", [nested_part(headers, body), later])
    if request.attachments:
        # The parts are not kept beyond the join (nor is each copy of the body below beyond
        # the next): a large attachment's base64 is held at most twice at once.
        headers, body = multipart(
            "mixed",
            [nested_part(headers, body), *(attachment_part(a) for a in request.attachments)],
        )
    if request.attachments or second is not None:
        fields.append(MIME_VERSION)
        fields.extend(headers)
    else:
        fields.extend((*headers, MIME_VERSION))
    fields.append(tags_header)
    body = "\r\n" + body
    return written_message(fields, body.encode("ascii", "surrogateescape"))


def _build_raw(request: EmailRequest, raw: bytes, sender: Mailbox) -> RawMessage:
    # The headers set here are appended to the original header block; everything else in
    # the message is written out as given (RawMessage.as_bytes).
    message = load_raw_message(raw)
    if request.replace_raw_sender:
        del message["From"]
        set_addresses(message, "From", (sender,))
    if request.replace_raw_recipients:
        for name in ("To", "Cc", "Bcc"):
            del message[name]
        set_addresses(message, "To", request.to)
        set_addresses(message, "Cc", request.cc)
        set_addresses(message, "Bcc", request.bcc)
    return message


def _content_size(request: EmailRequest) -> int:
    size = sum(len(a.content) for a in request.attachments if isinstance(a, Attachment))
    if request.raw is not None:
        size += len(request.raw)
    for body in (request.text, request.html):
        if body is not None:
            size += len(body.encode("utf-8"))
    return size


def _check_size(size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise RequestRejected(
            ErrorCode.MESSAGE_TOO_LARGE,
            f"the message is {size} bytes, more than the limit of {max_bytes} bytes",
        )
