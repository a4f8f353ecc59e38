"""The address and unstructured header fields of the messages the worker writes.

Non-ASCII text is written as RFC 2047 encoded-words here, in linear time: the email package's
own encoder is quadratic in the length of non-ASCII text.
"""

from __future__ import annotations

import base64
from email.message import EmailMessage
from email.utils import formataddr

from worker.formats.addresses import Mailbox
from worker.formats.mime import VerbatimHeader

# 45 bytes become 60 base64 characters: with "=?utf-8?b?" and "?=", 72 in all.
_ENCODED_WORD_BYTES = 45


def set_addresses(message: EmailMessage, name: str, mailboxes: tuple[Mailbox, ...]) -> None:
    if mailboxes:
        message[name] = _addresses(name, mailboxes)


def add_addresses(fields: list[VerbatimHeader], name: str, mailboxes: tuple[Mailbox, ...]) -> None:
    if mailboxes:
        fields.append(_addresses(name, mailboxes))


def _addresses(name: str, mailboxes: tuple[Mailbox, ...]) -> VerbatimHeader:
    return VerbatimHeader(name, ", ".join(format_mailbox(m) for m in mailboxes))


def format_mailbox(mailbox: Mailbox) -> str:
    if not mailbox.display_name:
        return mailbox.address
    if mailbox.display_name.isascii():
        # Quotes and escapes the name when it contains specials such as ",".
        return formataddr((mailbox.display_name, mailbox.address))
    return f"{encoded_words(mailbox.display_name)} <{mailbox.address}>"


def unstructured(name: str, value: str) -> VerbatimHeader:
    return VerbatimHeader(name, value if value.isascii() else encoded_words(value))


def encoded_words(text: str) -> str:
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
