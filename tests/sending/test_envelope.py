"""Turning an EmailMessage into sender, envelope recipients and raw bytes for SES."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

import pytest

from worker.formats.message import MAX_MESSAGE_BYTES
from worker.sending.envelope import (
    MAX_RAW_MESSAGE_BYTES,
    ascii_address,
    batched,
    prepare_message,
)
from worker.sending.errors import InvalidMessageError, MessageTooLargeError


def make_message(**headers: str) -> EmailMessage:
    message = EmailMessage()
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content("Hello there")
    return message


def test_recipients_are_to_cc_and_bcc_in_order() -> None:
    message = make_message(
        From="a@example.com", To="b@example.org", Cc="c@example.org", Bcc="d@example.org"
    )
    prepared = prepare_message(message, default_from=None)
    assert prepared.recipients == ("b@example.org", "c@example.org", "d@example.org")


def test_duplicate_recipients_are_sent_once_whatever_their_case() -> None:
    message = make_message(
        From="a@example.com", To="B@example.org, x <b@EXAMPLE.org>", Cc="b@example.org"
    )
    assert prepare_message(message, default_from=None).recipients == ("B@example.org",)


def test_bcc_is_not_in_the_sent_headers() -> None:
    message = make_message(From="a@example.com", To="b@example.org", Bcc="hidden@example.org")
    prepared = prepare_message(message, default_from=None)
    sent = email.message_from_bytes(prepared.raw, policy=email.policy.default)
    assert sent["Bcc"] is None
    assert b"hidden@example.org" not in prepared.raw
    assert "hidden@example.org" in prepared.recipients


def test_the_callers_message_keeps_its_bcc() -> None:
    message = make_message(From="a@example.com", To="b@example.org", Bcc="hidden@example.org")
    prepare_message(message, default_from=None)
    assert message["Bcc"] == "hidden@example.org"


def test_the_message_from_wins_over_the_default() -> None:
    message = make_message(From="Alice <a@example.com>", To="b@example.org")
    assert prepare_message(message, default_from="d@example.com").from_address == "a@example.com"


def test_the_default_from_fills_a_missing_from_header() -> None:
    message = make_message(To="b@example.org")
    prepared = prepare_message(message, default_from="d@example.com")
    sent = email.message_from_bytes(prepared.raw, policy=email.policy.default)
    assert prepared.from_address == "d@example.com"
    assert sent["From"] == "d@example.com"


def test_no_from_and_no_default_is_an_invalid_message() -> None:
    with pytest.raises(InvalidMessageError, match="no From header"):
        prepare_message(make_message(To="b@example.org"), default_from=None)


def test_two_from_addresses_are_an_invalid_message() -> None:
    message = make_message(From="a@example.com, b@example.com", To="c@example.org")
    with pytest.raises(InvalidMessageError, match="more than one From"):
        prepare_message(message, default_from=None)


def test_no_recipients_is_an_invalid_message() -> None:
    with pytest.raises(InvalidMessageError, match="no recipients"):
        prepare_message(make_message(From="a@example.com"), default_from=None)


def test_an_internationalised_domain_is_sent_in_its_ascii_form() -> None:
    assert ascii_address("user@bücher.example") == "user@xn--bcher-kva.example"


def test_a_non_ascii_local_part_is_an_invalid_message() -> None:
    with pytest.raises(InvalidMessageError, match="non-ASCII local part"):
        ascii_address("jörg@example.com")


def test_raw_lines_end_in_crlf() -> None:
    prepared = prepare_message(
        make_message(From="a@example.com", To="b@example.org"), default_from=None
    )
    assert b"\r\n" in prepared.raw
    assert b"\n" not in prepared.raw.replace(b"\r\n", b"")


def test_a_message_over_the_ses_limit_is_refused_before_sending() -> None:
    message = make_message(From="a@example.com", To="b@example.org")
    message.add_attachment(
        b"\0" * (MAX_RAW_MESSAGE_BYTES // 4 * 3 + 1000),
        maintype="application",
        subtype="octet-stream",
    )
    with pytest.raises(MessageTooLargeError):
        prepare_message(message, default_from=None)


def test_the_prepared_repr_hides_addresses_and_content() -> None:
    prepared = prepare_message(
        make_message(From="a@example.com", To="b@example.org"), default_from=None
    )
    assert "example" not in repr(prepared)
    assert "Hello" not in repr(prepared)


def test_batches_hold_at_most_the_given_size_in_order() -> None:
    items = [str(n) for n in range(120)]
    chunks = list(batched(items, 50))
    assert [len(c) for c in chunks] == [50, 50, 20]
    assert [x for chunk in chunks for x in chunk] == items


def test_the_formats_build_messages_up_to_the_limit_the_sending_library_checks() -> None:
    # build_message leaves the size check of a structured message to the session, which
    # serialises it anyway; that is only right while both use SES's one limit.
    assert MAX_MESSAGE_BYTES == MAX_RAW_MESSAGE_BYTES
