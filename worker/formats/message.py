"""Build the `EmailMessage` that is handed to SES from a validated `EmailRequest`.

Structured requests become a normal MIME tree (text, html or an alternative
of both, inside multipart/mixed when there are attachments), 7-bit clean: non-ASCII
text is quoted-printable or base64, never 8bit. Raw requests are re-parsed to be
checked and changed only where the request says so: From, the recipient headers and
the SES tags header are spliced into the original header block, and every other byte
is written out as given (see `worker.formats.mime.RawMessage`).

Headers we write are stored as `VerbatimHeader` objects (see `worker.formats.mime`),
which write themselves out unchanged under any policy the caller serialises with. The
email package's own encoder is quadratic in the length of non-ASCII text, so non-ASCII
text is encoded here instead (`_encoded_words`).
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr

from worker.formats.addresses import Mailbox, parse_mailbox
from worker.formats.error_codes import ErrorCode
from worker.formats.mime import MESSAGE_POLICY as _POLICY
from worker.formats.mime import RawMessage, VerbatimHeader, load_raw_message, message_size
from worker.formats.request import EmailRequest, RequestRejected
from worker.formats.tags import worker_tags

__all__ = [
    "MAX_MESSAGE_BYTES",
    "TAGS_HEADER",
    "RawMessage",
    "VerbatimHeader",
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

# 45 bytes become 60 base64 characters: with "=?utf-8?b?" and "?=", 72 in all.
_ENCODED_WORD_BYTES = 45
_ASCII_BYTES = bytes(range(0x80))


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
    is not serialised here: `worker.sending.envelope.prepare_message` checks that
    limit (``message_too_large`` too) when it serialises the message to send.
    """
    if sender is None:
        sender = resolve_sender(request, default_from)
    # Cheap lower bound first, so an oversized request is not MIME-encoded for nothing.
    _check_size(_content_size(request), max_bytes)
    message: EmailMessage
    if request.raw is not None:
        message = _build_raw(request, request.raw, sender)
    else:
        message = _build_structured(request, sender, date or datetime.now(UTC))
    # The requester's tags, then the worker's: SES copies them into every event about the
    # message, which is how the events reader finds the request (worker.formats.tags).
    tags = (
        *request.tags,
        *worker_tags(service_id=request.service_id, request_id=request.request_id),
    )
    message[TAGS_HEADER] = VerbatimHeader(
        TAGS_HEADER, ", ".join(f"{name}={value}" for name, value in tags)
    )
    if request.raw is None and max_bytes >= MAX_MESSAGE_BYTES:
        # Serialising is a large share of the cost of a message. A structured message always
        # serialises, and the session checks SES's limit, with the same code, when it
        # serialises the message for sending: one serialisation instead of two.
        return message
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


def _build_structured(request: EmailRequest, sender: Mailbox, date: datetime) -> EmailMessage:
    message = EmailMessage(policy=_POLICY)
    _set_addresses(message, "From", (sender,))
    _set_addresses(message, "To", request.to)
    _set_addresses(message, "Cc", request.cc)
    # Bcc stays in the message: the session reads recipients from it and strips it.
    _set_addresses(message, "Bcc", request.bcc)
    _set_addresses(message, "Reply-To", request.reply_to)
    message["Subject"] = _unstructured("Subject", request.subject or "")
    message["Date"] = format_datetime(date.astimezone(UTC))
    for name, value in request.headers:
        message[name] = _unstructured(name, value)

    if request.text is not None:
        message.set_content(request.text, cte=_text_cte(request.text))
        if request.html is not None:
            message.add_alternative(request.html, subtype="html", cte=_text_cte(request.html))
    else:
        html = request.html or ""
        message.set_content(html, subtype="html", cte=_text_cte(html))
    for attachment in request.attachments:
        message.add_attachment(
            attachment.content,
            maintype=attachment.maintype,
            subtype=attachment.subtype,
            filename=attachment.filename,
        )
    return message


def _text_cte(body: str) -> str | None:
    """The Content-Transfer-Encoding for a text body, so that no body goes out as 8bit.

    ASCII is left to the email package (7bit, or quoted-printable/base64 for long lines).
    Quoted-printable writes each non-ASCII byte as three characters and base64 every four
    bytes as three, so quoted-printable is shorter while under a sixth of the bytes are
    non-ASCII (mostly-Latin text), base64 otherwise (such as most CJK text).
    """
    if body.isascii():
        return None
    data = body.encode("utf-8")
    non_ascii = len(data.translate(None, _ASCII_BYTES))
    return "quoted-printable" if non_ascii * 6 < len(data) else "base64"


def _build_raw(request: EmailRequest, raw: bytes, sender: Mailbox) -> RawMessage:
    # The headers set here are appended to the original header block; everything else in
    # the message is written out as given (RawMessage.as_bytes).
    message = load_raw_message(raw)
    if request.replace_raw_sender:
        del message["From"]
        _set_addresses(message, "From", (sender,))
    if request.replace_raw_recipients:
        for name in ("To", "Cc", "Bcc"):
            del message[name]
        _set_addresses(message, "To", request.to)
        _set_addresses(message, "Cc", request.cc)
        _set_addresses(message, "Bcc", request.bcc)
    return message


def _set_addresses(message: EmailMessage, name: str, mailboxes: tuple[Mailbox, ...]) -> None:
    if mailboxes:
        value = ", ".join(_format_mailbox(m) for m in mailboxes)
        message[name] = VerbatimHeader(name, value)


def _format_mailbox(mailbox: Mailbox) -> str:
    if not mailbox.display_name:
        return mailbox.address
    if mailbox.display_name.isascii():
        # Quotes and escapes the name when it contains specials such as ",".
        return formataddr((mailbox.display_name, mailbox.address))
    return f"{_encoded_words(mailbox.display_name)} <{mailbox.address}>"


def _unstructured(name: str, value: str) -> VerbatimHeader:
    return VerbatimHeader(name, value if value.isascii() else _encoded_words(value))


def _encoded_words(text: str) -> str:
    """RFC 2047 base64 encoded-words for `text`, each within the 75-character limit.

    The email package can do this too, but its folding re-encodes the text
    once per character it trims, which is quadratic: a few long non-ASCII
    names made building one message take minutes. This is linear.
    """
    words: list[str] = []
    chunk = bytearray()
    for char in text:
        encoded = char.encode("utf-8")
        if len(chunk) + len(encoded) > _ENCODED_WORD_BYTES:
            words.append(_encoded_word(chunk))
            chunk.clear()
        chunk += encoded
    if chunk or not words:
        words.append(_encoded_word(chunk))
    # Whitespace between adjacent encoded-words is dropped when decoding, and
    # gives the folder places to break long headers.
    return " ".join(words)


def _encoded_word(data: bytes | bytearray) -> str:
    return f"=?utf-8?b?{base64.b64encode(data).decode('ascii')}?="


def _content_size(request: EmailRequest) -> int:
    size = sum(len(a.content) for a in request.attachments)
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
