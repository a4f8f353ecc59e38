"""The MIME writer of structured messages against the email package it replaces.

`build_message` writes structured messages itself (`worker.formats.message`); before, it built
them with `EmailMessage` (`set_content`, `add_alternative`, `add_attachment`) and let the email
package's generator write them. `email_package_message` below is that code. For every request
the two must give the same bytes, bar the random MIME boundaries, and the stdlib parser must
read the same headers, parts and payloads from both.
"""

from __future__ import annotations

import base64
import email
import email.policy
import re
from datetime import UTC, datetime
from email.message import EmailMessage, Message, MIMEPart
from email.utils import format_datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.support.email_requests import request_from
from worker.formats.addresses import Mailbox
from worker.formats.message import (
    TAGS_HEADER,
    WrittenMessage,
    build_message,
    message_size,
    resolve_sender,
)
from worker.formats.message_headers import format_mailbox, unstructured
from worker.formats.message_parts import text_cte
from worker.formats.mime import MESSAGE_POLICY, VerbatimHeader
from worker.formats.request import Attachment, EmailRequest, RequestRejected
from worker.formats.tags import worker_tags
from worker.sending.envelope import prepare_message

WHEN = datetime(2026, 11, 26, 5, 0, 0, tzinfo=UTC)


def email_package_message(request: EmailRequest, sender: Mailbox, date: datetime) -> EmailMessage:
    """The message as build_message made it with the email package (until issue 13)."""
    message = EmailMessage(policy=MESSAGE_POLICY)
    for name, mailboxes in (
        ("From", (sender,)),
        ("To", request.to),
        ("Cc", request.cc),
        ("Bcc", request.bcc),
        ("Reply-To", request.reply_to),
    ):
        if mailboxes:
            message[name] = VerbatimHeader(name, ", ".join(format_mailbox(m) for m in mailboxes))
    message["Subject"] = unstructured("Subject", request.subject or "")
    message["Date"] = format_datetime(date.astimezone(UTC))
    for name, value in request.headers:
        message[name] = unstructured(name, value)
    if request.text is not None:
        message.set_content(request.text, cte=text_cte(request.text))
        if request.html is not None:
            message.add_alternative(request.html, subtype="html", cte=text_cte(request.html))
    else:
        html = request.html or ""
        message.set_content(html, subtype="html", cte=text_cte(html))
    for attachment in request.attachments:
        assert isinstance(attachment, Attachment)
        message.add_attachment(
            attachment.content,
            maintype=attachment.maintype,
            subtype=attachment.subtype,
            filename=attachment.filename,
        )
    own = worker_tags(service_id=request.service_id, request_id=request.request_id)
    tags = (*request.tags, *own)
    message[TAGS_HEADER] = VerbatimHeader(TAGS_HEADER, ", ".join(f"{n}={v}" for n, v in tags))
    return message


def wire(message: Message) -> bytes:
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))


_BOUNDARY_RE = re.compile(rb'boundary="([^"]+)"')


def aligned(ours: bytes, theirs: bytes) -> bytes:
    """`ours` with its MIME boundaries replaced by those of `theirs`, in order."""
    mine, others = _BOUNDARY_RE.findall(ours), _BOUNDARY_RE.findall(theirs)
    assert len(mine) == len(others)
    for boundary, other in zip(mine, others, strict=True):
        ours = ours.replace(boundary, other)
    return ours


def parsed(data: bytes) -> Any:
    """What the stdlib parser reads: every part's headers (decoded, boundaries blanked), its
    parts or its decoded payload, and the parser's complaints."""
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return _view(message)


def _view(part: MIMEPart) -> Any:
    boundary = part.get_boundary()
    headers = [
        (name, str(value) if boundary is None else str(value).replace(boundary, "<boundary>"))
        for name, value in part.items()
    ]
    defects = [type(d).__name__ for d in part.defects]
    if part.is_multipart():
        children = [_view(child) for child in part.iter_parts()]
        return headers, defects, part.preamble, part.epilogue, children
    # Decoded: str for text parts (charset applied), bytes for the rest.
    return headers, defects, part.get_content()


def assert_equivalent(request: EmailRequest, *, default_from: str | None = None) -> bytes:
    """Build `request` both ways; assert the same bytes and the same parse. Returns ours."""
    message = build_message(request, default_from=default_from, date=WHEN)
    assert isinstance(message, WrittenMessage)
    sender = resolve_sender(request, default_from)
    theirs = wire(email_package_message(request, sender, WHEN))
    ours = wire(message)
    assert aligned(ours, theirs) == theirs
    assert parsed(ours) == parsed(theirs)
    return ours


def structured(**fields: Any) -> EmailRequest:
    document: dict[str, Any] = {
        "version": 1,
        "from": "Sender <sender@example.com>",
        "to": ["rcpt@example.com"],
        "subject": "Hello",
    }
    document.update(fields)
    return request_from({k: v for k, v in document.items() if v is not None})


def attachment(filename: str, content_type: str, content: bytes) -> dict[str, str]:
    return {
        "filename": filename,
        "content_type": content_type,
        "content_base64": base64.b64encode(content).decode(),
    }


LONG = "a long line that goes well past the seventy-eight characters a header line may hold"
PDF = attachment("invoice.pdf", "application/pdf", b"%PDF-1.7\x00\xff" * 40)


# --------------------------------------------------------------------------- every shape


@pytest.mark.parametrize(
    "fields",
    [
        {"text": "Plain body"},
        {"html": "<p>Hi</p>"},
        {"text": "Plain", "html": "<p>Hi</p>"},
        {"text": "Plain", "attachments": [PDF]},
        {"html": "<p>Hi</p>", "attachments": [PDF]},
        {"text": "Plain", "html": "<p>Hi</p>", "attachments": [PDF, PDF]},
        {"text": ""},
        {"text": "", "html": ""},
        {"html": "", "attachments": [PDF]},
    ],
    ids=[
        "text",
        "html",
        "alternative",
        "text+attachment",
        "html+attachment",
        "alternative+attachments",
        "empty text",
        "empty alternative",
        "empty html+attachment",
    ],
)
def test_each_shape_is_written_as_the_email_package_writes_it(fields: dict[str, Any]) -> None:
    assert_equivalent(structured(**fields))


@pytest.mark.parametrize(
    "text",
    [
        "short ASCII lines\nonly",
        LONG,  # long ASCII: quoted-printable (the email package's sniff)
        "\n".join([LONG] * 12),  # more than ten lines: encoded after the sniff
        "x" * 5000,  # one very long unbreakable line: base64 wins the sniff
        "trailing space \nand tab\t\nend",
        "dots\n.\n..\nFrom the start of a line\n=3D and = signs",
        "line endings\r\nof\revery\nkind\r\n\r\n",
        "Grüße aus Köln, " * 20,  # mostly Latin: quoted-printable
        "日本語のテキスト" * 30,  # mostly CJK: base64
        "é" * 2000,
        "\x0b\x0c\x1c\x85 control and separator characters\u2028\u2029",
        "x" * 78 + "\n" + "y" * 79,  # at and just past the line limit
    ],
)
def test_bodies_are_encoded_as_the_email_package_encodes_them(text: str) -> None:
    assert_equivalent(structured(text=text, html=f"<p>{text}</p>"))
    assert_equivalent(structured(text=text))


def test_every_header_the_request_sets_is_written_as_before() -> None:
    assert_equivalent(
        structured(
            **{"from": "Jöhn Døe <j@bücher.de>"},
            to=["Doe, J <d@example.org>", "a@example.com"],
            cc=['"Quote \\" and \\\\ slash" <q@example.org>'],
            bcc=["hidden@example.com"],
            reply_to=["r@example.com"],
            subject="Größe " * 40,
            headers={
                "List-Unsubscribe": "<https://example.com/u?t=" + "t" * 200 + ">",
                "X-Words": " ".join(f"word{i}" for i in range(60)),
                "X-Note": "héllo",
            },
            tags={"campaign": "spring", "tier": "v" * 256},
            text="Hi",
        )
    )


def test_the_default_from_is_written_as_before() -> None:
    request = structured(**{"from": None}, text="Hi")
    assert_equivalent(request, default_from="Billing <billing@bücher.de>")


@pytest.mark.parametrize(
    "filename",
    ["résumé 2026.pdf", 'q"uote\\.bin', "x" * 255, "ü" * 200, "a b;c=d.txt"],
)
def test_attachments_are_written_by_the_email_package(filename: str) -> None:
    files = [attachment(filename, "application/x-foo+json", b"{}"), PDF]
    assert_equivalent(structured(text="Hi", attachments=files))


# --------------------------------------------------------------------------- the message


def test_the_written_message_gives_the_session_its_headers_and_bytes() -> None:
    request = structured(text="Hi", bcc=["hidden@example.com"], tags={"k": "v"})
    message = build_message(request, date=WHEN)
    assert str(message["From"]) == "Sender <sender@example.com>"
    assert message.get_content_type() == "text/plain"
    prepared = prepare_message(message, default_from=None)
    assert prepared.recipients == ("rcpt@example.com", "hidden@example.com")
    assert b"hidden@example.com" not in prepared.raw
    # The session's copy lost Bcc; the built message did not.
    assert "Bcc" in message
    assert prepared.raw == wire(message).replace(b"Bcc: hidden@example.com\r\n", b"")
    assert message_size(message) == len(wire(message))


def test_the_written_message_is_text_in_any_form() -> None:
    message = build_message(structured(text="Hi there"), date=WHEN)
    data = wire(message)
    assert message.as_string() == data.replace(b"\r\n", b"\n").decode("ascii")
    assert str(message) == message.as_string()
    assert message.as_bytes() == data.replace(b"\r\n", b"\n")


def test_a_structured_message_over_a_lower_limit_is_still_measured() -> None:
    request = structured(text="Hi " * 100)
    size = len(wire(build_message(request, date=WHEN)))
    assert build_message(request, max_bytes=size, date=WHEN)
    with pytest.raises(RequestRejected):
        build_message(request, max_bytes=size - 1, date=WHEN)


# --------------------------------------------------------------------------- property test

# Requests the worker accepts, mostly: printable header text and valid addresses, with and
# without display names that need quoting or encoding.
_TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=120)
_ADDRESSES = st.one_of(
    st.sampled_from(
        [
            "a@example.com",
            "Jöhn Døe <j@bücher.de>",
            '"Doe, J" <d@example.org>',
            '"Quote \\" and \\\\ slash" <q@example.org>',
            "<angle@example.com>",
            "UPPER@EXAMPLE.COM",
        ]
    ),
    st.builds(
        lambda name, local, domain: f"{name} <{local}@{domain}>",
        _TEXT.map(lambda text: text[:30].replace("<", "").replace(">", "").replace('"', "")),
        st.from_regex(r"[a-z0-9][a-z0-9._+-]{0,8}", fullmatch=True).filter(
            lambda local: ".." not in local and not local.endswith(".")
        ),
        st.sampled_from(["example.com", "bücher.de", "ÉXAMPLE.org", "xn--mnchen-3ya.de"]),
    ),
)
_ADDRESS_FIELD = st.one_of(_ADDRESSES, st.lists(_ADDRESSES, min_size=1, max_size=3))

# Bodies that reach every branch of the encoder: short and long lines, every kind of line
# break, trailing whitespace, "=" and ".", mostly-Latin, CJK and control characters.
_BODY_PIECES = st.one_of(
    st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=40),
    st.sampled_from(["\r\n", "\n", "\r", " ", "\t", "=", ".", "From ", "ä", "日本", "\x85"]),
    st.integers(min_value=0, max_value=300).map(lambda n: "x" * n),
    st.integers(min_value=0, max_value=200).map(lambda n: "é" * n),
)
_BODIES = st.lists(_BODY_PIECES, max_size=30).map("".join)
_FILENAMES = st.one_of(
    st.sampled_from(["a.pdf", "résumé.txt", 'q"uote.bin', "x" * 255, " spaced name .txt"]),
    _TEXT.filter(lambda name: 1 <= len(name) <= 255 and name.strip()),
)
_ATTACHMENTS = st.builds(
    attachment,
    _FILENAMES,
    st.sampled_from(["application/pdf", "text/plain", "image/png", "application/x-foo+json"]),
    st.binary(max_size=200),
)
_REQUESTS = st.fixed_dictionaries(
    {
        "version": st.just(1),
        "to": _ADDRESS_FIELD,
        "subject": _TEXT,
        "text": st.one_of(_BODIES, _BODIES, st.none()),
    },
    optional={
        "from": _ADDRESSES,
        "cc": _ADDRESS_FIELD,
        "bcc": _ADDRESS_FIELD,
        "reply_to": _ADDRESS_FIELD,
        "html": _BODIES,
        "headers": st.dictionaries(
            st.one_of(
                st.sampled_from(["X-A", "List-Unsubscribe", "In-Reply-To", "References"]),
                st.from_regex(r"[!-9;-~]{1,20}", fullmatch=True),
            ),
            _TEXT,
            max_size=3,
        ),
        "attachments": st.lists(_ATTACHMENTS, max_size=2),
        "tags": st.dictionaries(
            st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True),
            st.from_regex(r"[A-Za-z0-9_-]{1,300}", fullmatch=True),
            max_size=3,
        ),
    },
)


@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(_REQUESTS)
@example({"version": 1, "to": "a@example.com", "subject": "", "text": None})
def test_every_structured_request_is_written_as_the_email_package_writes_it(
    document: dict[str, Any],
) -> None:
    try:
        request = request_from(document)
    except RequestRejected:
        return
    assert_equivalent(request, default_from="default@example.com")
