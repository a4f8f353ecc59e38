"""Addresses: mailbox syntax, IDN domains, request address lists and raw address headers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from worker.formats.addresses import (
    Mailbox,
    parse_address_header,
    parse_mailbox,
    parse_mailbox_list,
)
from worker.formats.error_codes import ErrorCode
from worker.formats.message import load_raw_message
from worker.formats.request import RequestRejected

RAW_HEADERS = (
    "From: not an address\r\n"
    "To: one@example.com, Two <two@example.org>\r\n"
    "Cc: kunde@bücher.de\r\n"
    "\r\n"
    "body\r\n"
).encode()


def rejection(function: Callable[..., object], *args: Any, **kwargs: Any) -> RequestRejected:
    with pytest.raises(RequestRejected) as info:
        function(*args, **kwargs)
    return info.value


def mailbox_list(value: Any, name: str = "to", limit: int = 5) -> tuple[Mailbox, ...]:
    return parse_mailbox_list(value, name, limit=limit, too_many=ErrorCode.TOO_MANY_RECIPIENTS)


# --------------------------------------------------------------------------- one mailbox


def test_idn_domain_becomes_punycode_in_the_address() -> None:
    assert parse_mailbox("kunde@bücher.de").address == "kunde@xn--bcher-kva.de"
    mailbox = parse_mailbox("info@MÜNCHEN.example.com")
    assert mailbox.address == "info@xn--mnchen-3ya.example.com"
    assert mailbox.domain == "xn--mnchen-3ya.example.com"


def test_display_name_is_preserved_including_non_ascii() -> None:
    mailbox = parse_mailbox("Jöhn Døe <john@example.com>")
    assert mailbox.display_name == "Jöhn Døe"
    assert mailbox.address == "john@example.com"


def test_quoted_display_name_is_unquoted() -> None:
    mailbox = parse_mailbox('"Doe, \\"JD\\" John" <john@example.com>')
    assert mailbox.display_name == 'Doe, "JD" John'


def test_angle_brackets_without_display_name_are_accepted() -> None:
    assert parse_mailbox("<john@example.com>").display_name == ""


@pytest.mark.parametrize(
    "address",
    [
        "",
        "nobody",
        "a@b",
        "a@@example.com",
        "josé@example.com",
        "a@localhost",
        "a@example.test",
        "Name <a@example.com",
        "a@[192.0.2.1]",
        '"a b"@example.com',
        "a@exa mple.com",
        '"unterminated <a@example.com>',
        "x" * 600 + "@example.com",
    ],
)
def test_invalid_address_is_rejected_as_invalid_address(address: str) -> None:
    assert rejection(parse_mailbox, address).code == ErrorCode.INVALID_ADDRESS


@pytest.mark.parametrize("breaker", ["\r\n", "\n", "\r", "\x00", "\u2028"])
def test_address_with_line_break_is_rejected_as_header_injection(breaker: str) -> None:
    value = f"Eve{breaker}Bcc: victim@example.com <eve@example.com>"
    assert rejection(parse_mailbox, value).code == ErrorCode.HEADER_INJECTION


def test_display_name_with_control_character_is_rejected_as_invalid_address() -> None:
    assert rejection(parse_mailbox, "Ev\x1be <eve@example.com>").code == ErrorCode.INVALID_ADDRESS


def test_parse_mailbox_validates_a_configured_default_from() -> None:
    mailbox = parse_mailbox("Billing <billing@bücher.de>", field_name="default From")
    assert (mailbox.display_name, mailbox.address) == ("Billing", "billing@xn--bcher-kva.de")


def test_mailbox_repr_hides_the_address() -> None:
    assert "secret" not in repr(parse_mailbox("Secret <secret@example.com>"))


# --------------------------------------------------------------------------- request address lists


def test_absent_address_list_is_empty() -> None:
    assert mailbox_list(None) == ()


def test_single_string_is_accepted_as_a_one_address_list() -> None:
    assert [m.address for m in mailbox_list("a@example.com")] == ["a@example.com"]


def test_comma_separated_string_is_not_split_and_is_rejected_as_invalid_address() -> None:
    assert rejection(mailbox_list, "a@example.com, b@example.com").code == (
        ErrorCode.INVALID_ADDRESS
    )


def test_address_rejection_names_the_field_but_not_the_address() -> None:
    error = rejection(mailbox_list, ["ok@example.com", "secret-person@@example.com"], "cc")
    assert "cc[1]" in error.message
    assert "secret-person" not in error.message
    assert "secret-person" not in str(error)


def test_non_string_address_is_rejected_as_invalid_request() -> None:
    assert rejection(mailbox_list, [{"email": "a@example.com"}]).code == ErrorCode.INVALID_REQUEST


def test_list_over_its_limit_is_rejected_with_the_given_code_before_any_address_is_parsed() -> None:
    error = rejection(mailbox_list, ["not-an-address"] * 3, limit=2)
    assert error.code == ErrorCode.TOO_MANY_RECIPIENTS


# --------------------------------------------------------------------------- raw message headers


def test_raw_header_addresses_keep_their_display_names() -> None:
    mailboxes = parse_address_header(load_raw_message(RAW_HEADERS), "To", "raw To header")
    assert [(m.display_name, m.address) for m in mailboxes] == [
        ("", "one@example.com"),
        ("Two", "two@example.org"),
    ]


def test_absent_raw_header_gives_no_addresses() -> None:
    assert parse_address_header(load_raw_message(RAW_HEADERS), "Bcc", "raw Bcc header") == ()


def test_raw_header_with_invalid_address_is_rejected_as_invalid_address() -> None:
    message = load_raw_message(RAW_HEADERS)
    error = rejection(parse_address_header, message, "From", "raw From header")
    assert error.code == ErrorCode.INVALID_ADDRESS


def test_raw_header_with_non_ascii_domain_is_rejected_as_invalid_address() -> None:
    message = load_raw_message(RAW_HEADERS)
    error = rejection(parse_address_header, message, "Cc", "raw Cc header")
    assert error.code == ErrorCode.INVALID_ADDRESS


def test_a_valid_address_is_validated_once_and_an_invalid_one_every_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import email_validator

    from worker.formats import addresses

    calls: list[str] = []

    def counting(address: str, **options: Any) -> Any:
        calls.append(address)
        return email_validator.validate_email(address, **options)

    monkeypatch.setattr("worker.formats.addresses.validate_email", counting)
    addresses._valid_address.cache_clear()
    for name in ("Billing", "Accounts", ""):
        mailbox = parse_mailbox(f"{name} <billing@bücher.de>")
        assert (mailbox.address, mailbox.display_name) == ("billing@xn--bcher-kva.de", name)
    assert calls == ["billing@bücher.de"]
    for _ in range(2):
        assert rejection(parse_mailbox, "Bad <not an address>").code == ErrorCode.INVALID_ADDRESS
    assert calls.count("not an address") == 2
