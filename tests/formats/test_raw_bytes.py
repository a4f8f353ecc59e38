"""Raw mode byte for byte, and 7-bit clean structured messages (issue 10, parts 6 and 7).

A raw message is parsed only to be checked: what goes to SES is the input with the replaced
header fields spliced out, the new ones added to the header block, and every other byte as
given (line endings made CRLF).
"""

from __future__ import annotations

import base64
import copy
import email
import email.policy
import pickle
import re
from email.message import EmailMessage
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.email_requests import request_from
from worker.formats.error_codes import ErrorCode
from worker.formats.message import build_message
from worker.formats.request import EmailRequest, RequestRejected
from worker.sending.envelope import prepare_message
from worker.sending.ses_session import Session

# A message as mail clients and list software really write them: a folded DKIM signature,
# folded address headers, a preamble and an epilogue, an empty part, a boundary repeated
# (which makes another empty part), a nested multipart with its own preamble, an 8-bit body
# and trailing blank lines.
ODD_MULTIPART = (
    b"Return-Path: <bounce@example.com>\r\n"
    b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=sel;\r\n"
    b"\th=from:to:subject:date:mime-version:content-type;\r\n"
    b"\tbh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\r\n"
    b"\tb=" + b"Q" * 300 + b"\r\n"
    b"From: =?utf-8?q?J=C3=B6rg?= <joerg@example.com>\r\n"
    b"To: one@example.com,\r\n"
    b"  Two <two@example.org>\r\n"
    b"Cc: three@example.net\r\n"
    b"Subject: a subject folded\r\n"
    b" over two lines\r\n"
    b"Date: Thu, 26 Nov 2026 05:00:00 +0000\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="outer"\r\n'
    b"X-Odd:no-space-after-colon\r\n"
    b"\r\n"
    b"This is the preamble.\r\n"
    b"\r\n"
    b"--outer\r\n"
    b"\r\n"
    b"--outer\r\n"
    b"--outer\r\n"
    b"Content-Type: text/plain; charset=iso-8859-1\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"Gr\xfc\xdfe, caf\xe9 \xe0 la cr\xe8me\r\n"
    b"\r\n"
    b"\r\n"
    b"--outer\r\n"
    b'Content-Type: multipart/alternative; boundary="inner"\r\n'
    b"\r\n"
    b"inner preamble\r\n"
    b"--inner\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e   \r\n"
    b"--inner\r\n"
    b"\r\n"
    b"--inner--\r\n"
    b"inner epilogue\r\n"
    b"--outer--\r\n"
    b"\r\n"
    b"This is the epilogue.\r\n"
    b"\r\n"
)


# The worker's own tags on every message built by raw_request (service svc, request p-1).
WORKER_TAGS = b"email_worker_service_id=svc, email_worker_request_id=p-1"
# The same after a requester's tag: the line is folded at a space to stay within 78 characters.
KIND_RAW_AND_WORKER_TAGS = b"kind=raw, email_worker_service_id=svc,\r\n email_worker_request_id=p-1"


def with_tags(raw: bytes, value: bytes = WORKER_TAGS) -> bytes:
    """`raw` (CRLF line endings) with the tags header added at the end of its header block."""
    line = b"X-SES-MESSAGE-TAGS: " + value + b"\r\n"
    head, sep, body = raw.partition(b"\r\n\r\n")
    if sep:
        return head + b"\r\n" + line + b"\r\n" + body
    return raw.removesuffix(b"\r\n") + b"\r\n" + line


def raw_request(raw: bytes, **changes: Any) -> EmailRequest:
    return request_from({"version": 1, "raw": base64.b64encode(raw).decode(), **changes})


def wire(message: EmailMessage) -> bytes:
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))


def sent_bytes(message: EmailMessage) -> bytes:
    """What the session hands SES as Content.Raw.Data."""
    return prepare_message(message, default_from=None).raw


def without_fields(raw: bytes, *names: str) -> bytes:
    """`raw` with the named header fields, continuation lines included, cut out."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    pattern = rb"(?im)^(?:" + b"|".join(re.escape(n.encode()) for n in names) + rb"):.*\r\n"
    pattern += rb"(?:[ \t].*\r\n)*"
    return re.sub(pattern, b"", head + b"\r\n").removesuffix(b"\r\n") + sep + body


def test_odd_multipart_is_sent_exactly_as_given_but_for_the_tags_header() -> None:
    message = build_message(raw_request(ODD_MULTIPART))
    assert wire(message) == with_tags(ODD_MULTIPART)
    assert sent_bytes(message) == with_tags(ODD_MULTIPART)


def test_the_stdlib_generator_would_have_changed_the_odd_multipart() -> None:
    # The reason for splicing: re-serialising the parsed tree is not byte for byte.
    parsed = email.message_from_bytes(ODD_MULTIPART, policy=email.policy.default)
    assert parsed.as_bytes(policy=email.policy.SMTP) != ODD_MULTIPART


def test_replaced_headers_are_spliced_and_every_other_byte_is_kept() -> None:
    request = raw_request(
        ODD_MULTIPART,
        to=["new@example.com"],
        bcc=["hidden@example.com"],
        tags={"kind": "raw"},
        **{"from": "orders@example.com"},
    )
    message = build_message(request)
    head, body = without_fields(ODD_MULTIPART, "From", "To", "Cc").split(b"\r\n\r\n", 1)
    added = b"From: orders@example.com\r\nTo: new@example.com\r\n"
    tags = b"X-SES-MESSAGE-TAGS: " + KIND_RAW_AND_WORKER_TAGS + b"\r\n"
    assert wire(message) == head + b"\r\n" + added + b"Bcc: hidden@example.com\r\n" + tags + (
        b"\r\n" + body
    )
    # Bcc goes in the envelope only.
    assert sent_bytes(message) == head + b"\r\n" + added + tags + b"\r\n" + body
    assert prepare_message(message, default_from=None).recipients == (
        "new@example.com",
        "hidden@example.com",
    )


def test_dkim_signature_and_folded_headers_survive_a_recipient_change() -> None:
    message = build_message(raw_request(ODD_MULTIPART, to=["new@example.com"]))
    data = sent_bytes(message)
    dkim = re.search(rb"DKIM-Signature:.*?\r\n(?=[^ \t])", ODD_MULTIPART, re.DOTALL)
    assert dkim is not None
    assert dkim.group(0) in data
    assert b"Subject: a subject folded\r\n over two lines\r\n" in data
    assert b"X-Odd:no-space-after-colon\r\n" in data
    # The folded To (with its continuation line) is gone entirely.
    assert b"Two <two@example.org>" not in data
    assert data.endswith(ODD_MULTIPART.split(b"\r\n\r\n", 1)[1])


def test_eight_bit_body_bytes_reach_ses_unchanged() -> None:
    message = build_message(raw_request(ODD_MULTIPART, tags={"a": "b"}))
    data = sent_bytes(message)
    assert b"Gr\xfc\xdfe, caf\xe9 \xe0 la cr\xe8me\r\n" in data
    assert b"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e   \r\n" in data


def test_session_sends_the_spliced_bytes_as_raw_data() -> None:
    calls: list[dict[str, Any]] = []

    class FakeSes:
        def send_email(self, **kwargs: Any) -> dict[str, str]:
            calls.append(kwargs)
            return {"MessageId": "m-1"}

    session = Session("arn:aws:iam::123456789012:role/email-sender")
    session._ses = FakeSes()
    message = build_message(raw_request(ODD_MULTIPART, tags={"kind": "raw"}))
    assert session.send_email(message) == ["m-1"]
    expected = with_tags(ODD_MULTIPART, KIND_RAW_AND_WORKER_TAGS)
    assert calls[0]["Content"] == {"Raw": {"Data": expected}}
    assert "EmailTags" not in calls[0]  # one SES call: SES reads the tags from the header


@pytest.mark.parametrize(
    "raw",
    [
        b"From: a@example.com\r\nTo: b@example.com\r\nSubject: only headers\r\n",
        b"From: a@example.com\r\nTo: b@example.com\r\nSubject: only headers\r\n\r\n",
        b"From: a@example.com\r\nTo: b@example.com\r\nSubject: no final line ending",
    ],
    ids=["no-blank-line", "blank-line-then-nothing", "no-final-crlf"],
)
def test_message_of_headers_only_is_accepted_and_kept(raw: bytes) -> None:
    message = build_message(raw_request(raw))
    assert sent_bytes(message) == with_tags(raw)


def test_message_of_headers_only_gets_the_tags_header_on_its_own_line() -> None:
    raw = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: no final line ending"
    message = build_message(raw_request(raw, tags={"kind": "raw"}))
    assert sent_bytes(message) == with_tags(raw, KIND_RAW_AND_WORKER_TAGS)


def test_line_endings_become_crlf_without_doubling_existing_ones() -> None:
    raw = (
        b"From: a@example.com\nTo: b@example.com\r\nSubject: s\rX-A: 1\n"
        b"\nline one\r\nline two\nthree\r"
    )
    expected = (
        b"From: a@example.com\r\nTo: b@example.com\r\nSubject: s\r\nX-A: 1\r\n\r\n"
        b"line one\r\nline two\r\nthree\r\n"
    )
    assert sent_bytes(build_message(raw_request(raw))) == with_tags(expected)


def test_mbox_from_line_at_the_top_is_dropped() -> None:
    raw = b"From sender@example.com Thu Nov 26 05:00:00 2026\r\n" + ODD_MULTIPART
    message = build_message(raw_request(raw))
    assert sent_bytes(message) == with_tags(ODD_MULTIPART)


@pytest.mark.parametrize("after", [b"To: b@example.com\r\n\r\nx\r\n", b"\r\nx\r\n"])
def test_mbox_from_line_below_a_header_is_rejected_as_invalid_request(after: bytes) -> None:
    raw = b"To: b@example.com\r\nFrom: a@example.com\r\nFrom b@example.com Thu Nov 26 2026\r\n"
    raw += after.replace(b"To: b@example.com\r\n", b"Subject: s\r\n")
    with pytest.raises(RequestRejected) as info:
        raw_request(raw)
    assert info.value.code == ErrorCode.INVALID_REQUEST


def test_header_line_without_a_name_is_rejected_as_invalid_request() -> None:
    raw = b"From: a@example.com\r\n: no name\r\nTo: b@example.com\r\n\r\nx\r\n"
    with pytest.raises(RequestRejected) as info:
        raw_request(raw)
    assert info.value.code == ErrorCode.INVALID_REQUEST
    assert "MalformedHeaderLineDefect" in info.value.message


def test_raw_message_keeps_its_bytes_through_deepcopy_and_pickle() -> None:
    message = build_message(raw_request(ODD_MULTIPART, to=["new@example.com"]))
    for clone in (copy.deepcopy(message), pickle.loads(pickle.dumps(message))):
        assert wire(clone) == wire(message)


def test_raw_size_limit_counts_the_bytes_sent() -> None:
    request = raw_request(ODD_MULTIPART)
    size = len(with_tags(ODD_MULTIPART))
    assert build_message(request, max_bytes=size)
    with pytest.raises(RequestRejected) as info:
        build_message(request, max_bytes=size - 1)
    assert info.value.code == ErrorCode.MESSAGE_TOO_LARGE


# --------------------------------------------------------------------------- 7-bit clean


def structured(**fields: Any) -> EmailRequest:
    document = {
        "version": 1,
        "from": "sender@example.com",
        "to": ["rcpt@example.com"],
        "subject": "s",
        **fields,
    }
    return request_from(document)


def assert_seven_bit_clean(data: bytes) -> None:
    assert max(data, default=0) < 0x80
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    assert b"8bit" not in data.lower()


def as_sent(text: str) -> str:
    """A body as it reads after the trip: lines end in LF, and the body in one."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text if text.endswith("\n") else text + "\n"


def bodies(data: bytes) -> dict[str, str]:
    # Read with LF line endings, as Python text has them.
    parsed = email.message_from_bytes(data.replace(b"\r\n", b"\n"), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    found = {}
    for part in parsed.walk():
        if not part.is_multipart():
            found[part.get_content_subtype()] = part.get_content()
    return found


@pytest.mark.parametrize(
    "text",
    [
        "Grüße aus Köln",
        "日本語のテキスト" * 50,
        "é" * 2000,
        "line one\r\nline two\rline three\nünïcödé " + "x" * 1500,
    ],
)
def test_non_ascii_text_and_html_go_out_7_bit_clean(text: str) -> None:
    message = build_message(structured(text=text, html=f"<p>{text}</p>"))
    data = sent_bytes(message)
    assert_seven_bit_clean(data)
    assert bodies(data) == {"plain": as_sent(text), "html": as_sent(f"<p>{text}</p>")}


def test_mostly_latin_text_is_quoted_printable_and_cjk_is_base64() -> None:
    latin = sent_bytes(build_message(structured(text="Viele Grüße aus Köln und bis bald!")))
    cjk = sent_bytes(build_message(structured(text="日本語のテキスト")))
    assert b"Content-Transfer-Encoding: quoted-printable" in latin
    assert b"Content-Transfer-Encoding: base64" in cjk


_LINE_BREAKS = st.sampled_from(["\r\n", "\n", "\r"])
_BODY = st.lists(
    st.one_of(
        st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n")),
        _LINE_BREAKS,
        st.integers(min_value=0, max_value=1200).map(lambda n: "ä" * n),
    ),
    max_size=12,
).map("".join)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_BODY, html=st.one_of(st.none(), _BODY))
def test_every_structured_message_is_7_bit_clean_and_decodes_back(
    text: str, html: str | None
) -> None:
    fields: dict[str, Any] = {"text": text}
    if html is not None:
        fields["html"] = html
    try:
        request = structured(**fields)
    except RequestRejected:
        return  # text the worker refuses (NUL and the like) builds no message
    data = sent_bytes(build_message(request))
    assert_seven_bit_clean(data)
    expected = {"plain": as_sent(text)}
    if html is not None:
        expected["html"] = as_sent(html)
    assert bodies(data) == expected
