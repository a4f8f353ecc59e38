"""Email addresses in requests: single mailboxes, address lists and raw address headers.

Addresses are held to what SES accepts: an ASCII local part (no quoting) and
a domain that is ASCII or an IDN, stored in IDNA (punycode) form. Problems
raise `worker.formats.rejection.RequestRejected`, whose message names the field but
never repeats the address.
"""

from __future__ import annotations

import email.policy
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Any

from email_validator import validate_email

from worker.formats.error_codes import ErrorCode
from worker.formats.rejection import check_header_text, reject

__all__ = [
    "MAX_ADDRESS_LENGTH",
    "Mailbox",
    "parse_address_header",
    "parse_mailbox",
    "parse_mailbox_list",
]

MAX_ADDRESS_LENGTH = 512


@dataclass(frozen=True, repr=False)
class Mailbox:
    """One validated address: ASCII ``local@domain`` plus an optional display name.

    Internationalised domains are stored in IDNA (punycode) form because SES
    only accepts ASCII envelope domains; the display name is kept as given and
    RFC 2047-encoded when the header is written (see `worker.formats.message`).
    """

    address: str
    display_name: str = ""

    @property
    def domain(self) -> str:
        """The ASCII (punycode) domain, lower case."""
        return self.address.rpartition("@")[2]

    def __repr__(self) -> str:
        return "Mailbox(<redacted>)"


def parse_mailbox(value: str, *, field_name: str = "address") -> Mailbox:
    """Validate one ``addr@domain`` or ``Name <addr@domain>`` string.

    Also used by the worker for configured default From addresses. Raises
    `RequestRejected` with ``header_injection`` or ``invalid_address``.
    """
    if not isinstance(value, str):
        reject(ErrorCode.INVALID_REQUEST, f"{field_name} must be a string")
    # Checked on the whole value, which also covers the display name.
    check_header_text(value, field_name, code=ErrorCode.INVALID_ADDRESS)
    if len(value) > MAX_ADDRESS_LENGTH:
        reject(
            ErrorCode.INVALID_ADDRESS,
            f"{field_name} is longer than {MAX_ADDRESS_LENGTH} characters",
        )
    text = value.strip()
    display_name = ""
    addr_spec = text
    if text.endswith(">") and "<" in text:
        # The last "<" starts the angle-addr: display names may contain "<",
        # addr-specs (no quoted local parts allowed) may not.
        head, _, tail = text.rpartition("<")
        addr_spec = tail[:-1].strip()
        display_name = _unquote_display_name(head.strip(), field_name)
    elif "<" in text or ">" in text:
        reject(ErrorCode.INVALID_ADDRESS, f"{field_name} is not a valid email address")
    return _mailbox_from_parts(display_name, addr_spec, field_name)


def parse_mailbox_list(
    value: Any, name: str, *, limit: int, too_many: ErrorCode
) -> tuple[Mailbox, ...]:
    """Validate request field `name`: None, one address string or a list of them.

    More than `limit` addresses raise `RequestRejected` with `too_many`,
    before any address is parsed.
    """
    if value is None:
        return ()
    if isinstance(value, str):
        # A lone string is shorthand for a one-element list, never a
        # comma-separated list (commas are legal inside display names).
        return (parse_mailbox(value, field_name=name),)
    if not isinstance(value, list):
        reject(ErrorCode.INVALID_REQUEST, f"{name} must be a string or a list of strings")
    if len(value) > limit:
        reject(too_many, f"{name} has more than {limit} addresses")
    return tuple(
        parse_mailbox(item, field_name=f"{name}[{index}]") for index, item in enumerate(value)
    )


def parse_address_header(
    message: EmailMessage, header_name: str, label: str
) -> tuple[Mailbox, ...]:
    """The mailboxes in a raw message's address header; () if it is absent.

    `label` names the header in rejection messages. Display names are kept
    as parsed; addresses must already be ASCII (IDN domains in punycode).
    """
    value = message.get(header_name)
    if value is None:
        return ()
    try:
        # Values are kept verbatim (see worker.formats.message); parse this one the
        # way the default policy would, folding removed.
        header = email.policy.default.header_factory(header_name, "".join(str(value).splitlines()))
        if header.defects:
            raise ValueError("defective address header")
        addresses: Sequence[Address] = getattr(header, "addresses", ())
    except Exception:  # as in request_raw's _load_raw: parser bugs mean malformed input
        reject(ErrorCode.INVALID_ADDRESS, f"the {label} is not a valid address list")
    return tuple(_header_mailbox(address, label) for address in addresses)


def _header_mailbox(address: Address, label: str) -> Mailbox:
    addr_spec = address.addr_spec
    if not addr_spec.isascii():
        # Re-writing the raw message's headers is not our business; SES needs ASCII.
        reject(
            ErrorCode.INVALID_ADDRESS,
            f"the {label} has a non-ASCII address (IDN domains must be punycode in raw messages)",
        )
    mailbox = _mailbox_from_parts("", addr_spec, label)
    return Mailbox(address=mailbox.address, display_name=address.display_name)


def _unquote_display_name(text: str, field_name: str) -> str:
    if not text.startswith('"'):
        return text
    if len(text) < 2 or not text.endswith('"'):
        reject(ErrorCode.INVALID_ADDRESS, f"{field_name} has a badly quoted display name")
    # Undo quoted-string escaping; the email package re-quotes when writing.
    chars: list[str] = []
    escaped = False
    for char in text[1:-1]:
        if escaped:
            chars.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            reject(ErrorCode.INVALID_ADDRESS, f"{field_name} has a badly quoted display name")
        else:
            chars.append(char)
    if escaped:
        reject(ErrorCode.INVALID_ADDRESS, f"{field_name} has a badly quoted display name")
    return "".join(chars)


def _mailbox_from_parts(display_name: str, addr_spec: str, field_name: str) -> Mailbox:
    try:
        address = _valid_address(addr_spec)
    except (ValueError, TypeError, IndexError):
        # email_validator errors are ValueErrors; their text can quote the
        # address, so a generic message is used instead.
        reject(ErrorCode.INVALID_ADDRESS, f"{field_name} is not a valid email address")
    return Mailbox(address=address, display_name=display_name)


# A service sends from the same few addresses, and its default From is checked on every
# request: validating addresses took close to a tenth of the CPU of handling one. The answer
# depends on the address alone, so valid ones are remembered (invalid ones raise, and are not).
@functools.lru_cache(maxsize=1024)
def _valid_address(addr_spec: str) -> str:
    """`addr_spec` as SES takes it (ASCII, IDN domain in punycode); ValueError if invalid."""
    validated = validate_email(
        addr_spec,
        check_deliverability=False,
        # SES needs an ASCII local part; the domain may be IDN (converted below).
        allow_smtputf8=False,
        allow_quoted_local=False,
        allow_domain_literal=False,
        allow_display_name=False,
        allow_empty_local=False,
    )
    address = validated.ascii_email
    if address is None or not address.isascii():
        raise ValueError("not ASCII")
    # Also prove the email package can represent it, so building cannot fail. (A display
    # name cannot change that: callers have refused line breaks in it.)
    if Address(addr_spec=address).addr_spec != address:
        raise ValueError("not representable")
    return address
