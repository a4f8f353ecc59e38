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
text is encoded here instead (`_encoded_words`).
"""

from __future__ import annotations

import base64
import binascii
import random
import re
import sys
from datetime import UTC, datetime
from email import quoprimime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr

from worker.formats.addresses import Mailbox, parse_mailbox
from worker.formats.error_codes import ErrorCode
from worker.formats.mime import MESSAGE_POLICY as _POLICY
from worker.formats.mime import (
    RawMessage,
    VerbatimHeader,
    WrittenMessage,
    load_raw_message,
    message_size,
    written_message,
)
from worker.formats.request import Attachment, AttachmentRef, EmailRequest, RequestRejected
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

# 45 bytes become 60 base64 characters: with "=?utf-8?b?" and "?=", 72 in all.
_ENCODED_WORD_BYTES = 45
_ASCII_BYTES = bytes(range(0x80))
_WIRE_POLICY = _POLICY.clone(linesep="\r\n")


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
# encoded by the same rules and functions (_encode_text). tests/formats/test_mime_writer.py holds it
# to the email package's output, byte for byte and parsed, over generated requests.
# Attachments, rarer and dominated by their base64, are still written by the email package.


def _write_structured(
    request: EmailRequest, sender: Mailbox, date: datetime, tags_header: VerbatimHeader
) -> WrittenMessage:
    fields: list[VerbatimHeader] = []
    _add_addresses(fields, "From", (sender,))
    _add_addresses(fields, "To", request.to)
    _add_addresses(fields, "Cc", request.cc)
    # Bcc stays in the message: the session reads recipients from it and strips it.
    _add_addresses(fields, "Bcc", request.bcc)
    _add_addresses(fields, "Reply-To", request.reply_to)
    fields.append(_unstructured("Subject", request.subject or ""))
    fields.append(VerbatimHeader("Date", format_datetime(date.astimezone(UTC))))
    fields.extend(_unstructured(name, value) for name, value in request.headers)

    if request.text is not None:
        first = _text_part(request.text, "plain")
        second = None if request.html is None else _text_part(request.html, "html")
    else:
        first, second = _text_part(request.html or "", "html"), None
    # As the email package does it, and so as it is written here: when the message becomes
    # multipart, the first body's headers move into its part, while every part added after
    # it gets a MIME-Version of its own.
    headers, body = first
    if second is not None:
        later_headers, later_body = second
        later = _part([*later_headers, _MIME_VERSION], later_body)
        headers, body = _multipart("alternative", [_part(headers, body), later])
    if request.attachments:
        # The parts are not kept beyond the join (nor is each copy of the body below beyond
        # the next): a large attachment's base64 is held at most twice at once.
        headers, body = _multipart(
            "mixed", [_part(headers, body), *(_attachment(a) for a in request.attachments)]
        )
    if request.attachments or second is not None:
        fields.append(_MIME_VERSION)
        fields.extend(headers)
    else:
        fields.extend((*headers, _MIME_VERSION))
    fields.append(tags_header)
    body = "\r\n" + body
    return written_message(fields, body.encode("ascii", "surrogateescape"))


_MIME_VERSION = VerbatimHeader("MIME-Version", "1.0")
# policy.default's limit, which the email package folds headers and encodes bodies to.
_MAX_LINE_LENGTH = 78
_LINE_BREAK_RE = re.compile(r"\r\n|\r|\n")


def _text_part(text: str, subtype: str) -> tuple[list[VerbatimHeader], str]:
    """The headers and the body (CRLF lines) of a text part, as ``set_content`` makes them."""
    cte, payload = _encode_text(text, _text_cte(text))
    headers = [
        VerbatimHeader("Content-Type", f'text/{subtype}; charset="utf-8"'),
        VerbatimHeader("Content-Transfer-Encoding", cte),
    ]
    # The generator writes every line break of a payload as CRLF.
    if "\r" in payload:
        return headers, _LINE_BREAK_RE.sub("\r\n", payload)
    return headers, payload.replace("\n", "\r\n")


def _encode_text(text: str, cte: str | None) -> tuple[str, str]:
    """The transfer encoding and encoded body (``\\n`` lines) ``email.contentmanager`` gives
    UTF-8 `text` under ``policy.default``.

    `cte` is None only for ASCII text (see `_text_cte`): then 7bit when every line fits,
    else the shorter of quoted-printable and base64 on the first ten lines.
    """
    lines = text.encode("utf-8").splitlines()
    body = b"\n".join(lines) + b"\n"
    if cte is None:
        if max((len(line) for line in lines), default=0) <= _MAX_LINE_LENGTH and body.isascii():
            return "7bit", body.decode("ascii")
        sniff = b"\n".join(lines[:10]) + b"\n"
        sniff_qp = quoprimime.body_encode(sniff.decode("latin-1"), _MAX_LINE_LENGTH)
        if len(sniff_qp) > len(binascii.b2a_base64(sniff)):
            cte = "base64"
        else:
            cte = "quoted-printable"
            if len(lines) <= 10:
                return cte, sniff_qp
    if cte == "quoted-printable":
        return cte, quoprimime.body_encode(body.decode("latin-1"), _MAX_LINE_LENGTH)
    step = _MAX_LINE_LENGTH // 4 * 3  # bytes a base64 line holds: 57, as 76 characters
    return cte, "".join(
        binascii.b2a_base64(body[start : start + step]).decode("ascii")
        for start in range(0, len(body), step)
    )


def _part(headers: list[VerbatimHeader], body: str) -> str:
    """A body part as a multipart holds it: its header fields, a blank line, its body."""
    return "".join(header.fold(policy=_WIRE_POLICY) for header in headers) + "\r\n" + body


def _attachment(attachment: Attachment | AttachmentRef) -> tuple[str, str]:
    """An attachment's part, as its header block and its body (joined by the multipart)."""
    if isinstance(attachment, AttachmentRef):
        # The sending side replaces every reference with the object's bytes first.
        raise TypeError("a gs:// attachment must be read before the message is built")
    # The email package writes the headers (of an empty body, which it encodes the same
    # way); the body is base64 in lines of 76, as it writes them, but without the copies its
    # generator makes, several times an attachment's size.
    part = EmailMessage(policy=_POLICY)
    part.set_content(
        b"",
        maintype=attachment.maintype,
        subtype=attachment.subtype,
        filename=attachment.filename,
    )
    head = part.as_bytes(policy=_WIRE_POLICY).decode("ascii", "surrogateescape")
    return head, _base64_lines(attachment.content)


# Whole lines of 57 bytes at a time: encoding everything at once keeps each of its lines as
# an object of its own until they are joined, about twice the base64's size again.
_BASE64_BLOCK_BYTES = 57 * 1024


def _base64_lines(data: bytes) -> str:
    """``data`` in base64, in CRLF lines of 76 characters, as the email package writes it."""
    view = memoryview(data)
    blocks = range(0, len(data), _BASE64_BLOCK_BYTES)
    return b"".join(
        [
            base64.encodebytes(view[start : start + _BASE64_BLOCK_BYTES]).replace(b"\n", b"\r\n")
            for start in blocks
        ]
    ).decode("ascii")


def _multipart(
    subtype: str, parts: list[str | tuple[str, str]]
) -> tuple[list[VerbatimHeader], str]:
    """The Content-Type header and the body of a multipart of `parts`."""
    texts = [piece for part in parts for piece in ((part,) if isinstance(part, str) else part)]
    boundary = _boundary(texts)
    content_type = VerbatimHeader("Content-Type", f'multipart/{subtype}; boundary="{boundary}"')
    delimiter = f"\r\n--{boundary}\r\n"
    pieces = [f"--{boundary}\r\n"]
    for index, part in enumerate(parts):
        if index:
            pieces.append(delimiter)
        pieces.extend((part,) if isinstance(part, str) else part)
    pieces.append(f"\r\n--{boundary}--\r\n")
    return [content_type], "".join(pieces)  # one join: one copy of the parts at a time


def _boundary(parts: list[str]) -> str:
    """A boundary of the email package's form that occurs in none of `parts`."""
    while True:
        # The email package's generator draws them the same way; a boundary is no secret.
        boundary = f"==============={random.randrange(sys.maxsize):019d}=="  # noqa: S311
        if not any(boundary in part for part in parts):
            return boundary


def _text_cte(body: str) -> str | None:
    """The Content-Transfer-Encoding for a text body, so that no body goes out as 8bit.

    ASCII is left to the email package's rules (7bit, or quoted-printable/base64 for long
    lines). Quoted-printable writes each non-ASCII byte as three characters and base64 every
    four bytes as three, so quoted-printable is shorter while under a sixth of the bytes are
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
        message[name] = _addresses(name, mailboxes)


def _add_addresses(fields: list[VerbatimHeader], name: str, mailboxes: tuple[Mailbox, ...]) -> None:
    if mailboxes:
        fields.append(_addresses(name, mailboxes))


def _addresses(name: str, mailboxes: tuple[Mailbox, ...]) -> VerbatimHeader:
    return VerbatimHeader(name, ", ".join(_format_mailbox(m) for m in mailboxes))


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
