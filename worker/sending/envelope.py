"""From an ``EmailMessage`` to what SES needs: sender, envelope recipients and raw bytes."""

from __future__ import annotations

import copy
import email.utils
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from email.message import Message

from worker.sending.errors import InvalidMessageError, MessageTooLargeError

__all__ = [
    "MAX_RAW_MESSAGE_BYTES",
    "MAX_RECIPIENTS_PER_CALL",
    "PreparedMessage",
    "ascii_address",
    "batched",
    "idna_domain",
    "prepare_message",
]

#: SES v2 accepts raw messages up to 40 MB; we count in decimal megabytes to stay inside it.
MAX_RAW_MESSAGE_BYTES = 40_000_000
#: SES accepts at most 50 recipients (To + Cc + Bcc) per SendEmail call.
MAX_RECIPIENTS_PER_CALL = 50


@dataclass(frozen=True)
class PreparedMessage:
    """A message ready for SES. The repr leaves out addresses and content."""

    from_address: str = field(repr=False)
    recipients: tuple[str, ...] = field(repr=False)
    raw: bytes = field(repr=False)


def idna_domain(domain: str) -> str:
    """An internationalised domain in its ASCII (IDNA) form; raises `UnicodeError` if invalid."""
    return domain.encode("idna").decode("ascii")


def ascii_address(address: str) -> str:
    """``local@domain`` with an internationalised domain in its ASCII (IDNA) form.

    SES needs ASCII envelope addresses; a non-ASCII local part cannot be sent at all.
    """
    local, sep, domain = address.rpartition("@")
    if not sep or not local or not domain:
        raise InvalidMessageError("an address is not of the form local@domain")
    if not local.isascii():
        raise InvalidMessageError("an address has a non-ASCII local part, which SES cannot send")
    if not domain.isascii():
        try:
            domain = idna_domain(domain)
        except UnicodeError:
            raise InvalidMessageError(
                "an address has an invalid internationalised domain"
            ) from None
    return f"{local}@{domain.lower()}"


def _addresses(message: Message, header: str) -> list[str]:
    values = [str(value) for value in message.get_all(header, [])]
    return [addr for _, addr in email.utils.getaddresses(values) if addr]


def prepare_message(message: Message, *, default_from: str | None) -> PreparedMessage:
    """Check ``message`` and turn it into the sender, recipients and raw bytes for SES.

    The caller's message is left untouched: when From must be filled in or Bcc removed, a
    copy is changed instead.
    """
    senders = _addresses(message, "From")
    if len(senders) > 1:
        raise InvalidMessageError("the message has more than one From address")
    if senders:
        sender = senders[0]
    elif default_from:
        sender = default_from
    else:
        raise InvalidMessageError(
            "the message has no From header and the session has no default_from_address"
        )
    sender = ascii_address(sender)

    recipients: dict[str, None] = {}  # ordered set; duplicates are compared case-blind
    seen: set[str] = set()
    for header in ("To", "Cc", "Bcc"):
        for address in _addresses(message, header):
            normalised = ascii_address(address)
            if normalised.lower() not in seen:
                seen.add(normalised.lower())
                recipients[normalised] = None
    if not recipients:
        raise InvalidMessageError("the message has no recipients in To, Cc or Bcc")

    outgoing = message
    if not senders or "Bcc" in message:
        # Bcc recipients get the message through the envelope only; the header would reveal
        # them to everyone else.
        outgoing = copy.deepcopy(message)
        del outgoing["Bcc"]
        if not senders:
            outgoing["From"] = sender
    raw = _as_bytes(outgoing)
    if len(raw) > MAX_RAW_MESSAGE_BYTES:
        raise MessageTooLargeError(
            f"the message is {len(raw)} bytes; SES accepts at most {MAX_RAW_MESSAGE_BYTES}"
        )
    return PreparedMessage(from_address=sender, recipients=tuple(recipients), raw=raw)


def _as_bytes(message: Message) -> bytes:
    # RFC 5322 lines end in CRLF, whatever the message's own policy says.
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))


def batched(items: Sequence[str], size: int) -> Iterator[tuple[str, ...]]:
    """Consecutive chunks of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield tuple(items[start : start + size])
