"""The bodies of a structured message written directly: text parts, attachments, multiparts.

Byte for byte as the email package writes them under ``policy.default`` (7-bit clean:
non-ASCII text is quoted-printable or base64, never 8bit); `worker.formats.message` puts them
together. tests/formats/test_mime_writer.py holds them to the email package's output.
"""

from __future__ import annotations

import base64
import binascii
import random
import re
import sys
from email import quoprimime
from email.message import EmailMessage

from worker.formats.mime import MESSAGE_POLICY as _POLICY
from worker.formats.mime import VerbatimHeader
from worker.formats.request import Attachment, AttachmentRef

_ASCII_BYTES = bytes(range(0x80))
_WIRE_POLICY = _POLICY.clone(linesep="\r\n")

MIME_VERSION = VerbatimHeader("MIME-Version", "1.0")
# policy.default's limit, which the email package folds headers and encodes bodies to.
_MAX_LINE_LENGTH = 78
_LINE_BREAK_RE = re.compile(r"\r\n|\r|\n")


def text_part(text: str, subtype: str) -> tuple[list[VerbatimHeader], str]:
    """The headers and the body (CRLF lines) of a text part, as ``set_content`` makes them."""
    cte, payload = encode_text(text, text_cte(text))
    headers = [
        VerbatimHeader("Content-Type", f'text/{subtype}; charset="utf-8"'),
        VerbatimHeader("Content-Transfer-Encoding", cte),
    ]
    # The generator writes every line break of a payload as CRLF.
    if "\r" in payload:
        return headers, _LINE_BREAK_RE.sub("\r\n", payload)
    return headers, payload.replace("\n", "\r\n")


def encode_text(text: str, cte: str | None) -> tuple[str, str]:
    """The transfer encoding and encoded body (``\\n`` lines) ``email.contentmanager`` gives
    UTF-8 `text` under ``policy.default``.

    `cte` is None only for ASCII text (see `text_cte`): then 7bit when every line fits,
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


def nested_part(headers: list[VerbatimHeader], body: str) -> str:
    """A body part as a multipart holds it: its header fields, a blank line, its body."""
    return "".join(header.fold(policy=_WIRE_POLICY) for header in headers) + "\r\n" + body


def attachment_part(attachment: Attachment | AttachmentRef) -> tuple[str, str]:
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


def multipart(subtype: str, parts: list[str | tuple[str, str]]) -> tuple[list[VerbatimHeader], str]:
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


def text_cte(body: str) -> str | None:
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
