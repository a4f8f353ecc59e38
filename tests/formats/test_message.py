"""Building EmailMessages from requests: MIME structure, headers, encodings, raw mode, size cap."""

from __future__ import annotations

import base64
import copy
import email
import email.policy
import pickle
import re
import time
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.message import EmailMessage
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.email_requests import request_from
from worker.formats.error_codes import ErrorCode
from worker.formats.message import TAGS_HEADER, VerbatimHeader, build_message, message_size
from worker.formats.request import EmailRequest, RequestRejected
from worker.formats.schemas import load_schema
from worker.sending.envelope import prepare_message

WHEN = datetime(2026, 11, 26, 5, 0, 0, tzinfo=UTC)
# The worker's own tags on every message built by request_from (service svc, request p-1).
WORKER_TAGS = "email_worker_service_id=svc, email_worker_request_id=p-1"


def structured(**changes: Any) -> EmailRequest:
    document: dict[str, Any] = {
        "version": 1,
        "from": "Sender <sender@example.com>",
        "to": ["rcpt@example.com"],
        "subject": "Hello",
        "text": "Plain body",
    }
    document.update(changes)
    return request_from(document)


def build(request: EmailRequest, **kwargs: Any) -> EmailMessage:
    kwargs.setdefault("date", WHEN)
    return build_message(request, **kwargs)


def wire(message: EmailMessage) -> bytes:
    """The bytes as the session sends them (CRLF line endings)."""
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))


def reparse(message: EmailMessage) -> EmailMessage:
    parsed = email.message_from_bytes(wire(message), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def unfolded_header(data: bytes, name: str) -> str:
    """The raw (undecoded) value of header `name` with folding removed."""
    head = data.split(b"\r\n\r\n", 1)[0].decode("ascii", "surrogateescape") + "\r\n"
    match = re.search(rf"^{re.escape(name)}: (.*?)\r\n(?![ \t])", head, re.M | re.S | re.I)
    assert match, name
    return re.sub(r"\r\n(?=[ \t])", "", match.group(1))


def with_tags_header(raw: bytes, value: str = WORKER_TAGS) -> bytes:
    """`raw` (CRLF, with a blank line) with the tags header added at the end of its head."""
    head, body = raw.split(b"\r\n\r\n", 1)
    return head + f"\r\nX-SES-MESSAGE-TAGS: {value}\r\n\r\n".encode() + body


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


RAW = (
    b"From: Sender <sender@example.com>\r\n"
    b"To: one@example.com, Two <two@example.org>\r\n"
    b"Cc: three@example.net\r\n"
    b"Subject: a raw subject line that is deliberately longer than seventy-eight characters\r\n"
    b"List-Unsubscribe: <https://example.com/unsubscribe?token=" + b"t" * 120 + b">\r\n"
    b"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=sel;\r\n"
    b"\tb=" + b"A" * 200 + b"\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"raw body line\r\n"
)


# --------------------------------------------------------------------------- MIME structure


def test_text_only_request_builds_a_single_text_plain_part() -> None:
    message = reparse(build(structured()))
    assert message.get_content_type() == "text/plain"
    assert message.get_content().strip() == "Plain body"


def test_html_only_request_builds_a_single_text_html_part() -> None:
    message = reparse(build(structured(text=None, html="<p>Hi</p>")))
    assert message.get_content_type() == "text/html"
    assert message.get_content().strip() == "<p>Hi</p>"


def test_text_and_html_build_a_multipart_alternative_with_text_first() -> None:
    message = reparse(build(structured(html="<p>Hi</p>")))
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]


def test_html_text_and_attachment_build_mixed_with_alternative_and_named_attachment() -> None:
    attachment = {
        "filename": "report.pdf",
        "content_type": "application/pdf",
        "content_base64": b64(b"%PDF-1.7\x00\xff"),
    }
    message = reparse(build(structured(html="<p>Hi</p>", attachments=[attachment])))
    assert message.get_content_type() == "multipart/mixed"
    body, file_part = list(message.iter_parts())
    assert body.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in body.iter_parts()] == ["text/plain", "text/html"]
    assert file_part.get_content_type() == "application/pdf"
    assert file_part.get_content_disposition() == "attachment"
    assert file_part.get_filename() == "report.pdf"
    assert file_part.get_content() == b"%PDF-1.7\x00\xff"


def test_non_ascii_attachment_filename_survives_the_round_trip() -> None:
    attachment = {"filename": "résumé 2026.pdf", "content_type": "application/pdf"}
    attachment["content_base64"] = b64(b"x")
    message = reparse(build(structured(attachments=[attachment])))
    (_, file_part) = list(message.iter_parts())
    assert file_part.get_filename() == "résumé 2026.pdf"


def test_non_ascii_bodies_survive_the_round_trip() -> None:
    message = reparse(build(structured(text="Grüße 👋", html="<p>Grüße 👋</p>")))
    text, html = list(message.iter_parts())
    assert text.get_content().strip() == "Grüße 👋"
    assert html.get_content().strip() == "<p>Grüße 👋</p>"


# --------------------------------------------------------------------------- addresses


def test_idn_domains_are_punycode_in_the_written_headers() -> None:
    data = wire(build(structured(to=["kunde@bücher.de"], **{"from": "info@münchen.example"})))
    assert b"kunde@xn--bcher-kva.de" in data
    assert b"info@xn--mnchen-3ya.example" in data
    assert "bücher".encode() not in data


def test_non_ascii_display_name_is_rfc2047_encoded_and_round_trips() -> None:
    message = build(structured(to=["Jöhn Døe <john@example.com>"]))
    data = wire(message)
    assert data.isascii()
    assert b"=?utf-8?" in data
    (address,) = reparse(message)["To"].addresses
    assert (address.display_name, address.addr_spec) == ("Jöhn Døe", "john@example.com")


def test_encoded_words_stay_within_the_rfc2047_length_limit() -> None:
    message = build(structured(to=["Ñ" * 300 + " <a@example.com>"], subject="ü" * 998))
    words = re.findall(rb"=\?utf-8\?b\?[^?]*\?=", wire(message))
    assert len(words) > 20
    assert max(len(w) for w in words) <= 75


def test_many_long_non_ascii_display_names_build_quickly() -> None:
    # The email package's own encoder is quadratic here (tens of seconds).
    names = [f"{'Ñ' * 400} {i} <user{i}@example.com>" for i in range(1000)]
    started = time.monotonic()
    prepared = prepare_message(build(structured(to=names)), default_from=None)
    assert time.monotonic() - started < 5
    assert len(prepared.recipients) == 1000


def test_long_non_ascii_display_name_decodes_exactly_by_rfc2047() -> None:
    # email.header follows RFC 2047 and drops the space between adjacent
    # encoded-words; the address-header parser of the email package does not.
    name = "Jöhn " + "Ñ" * 100 + " Døe"
    raw_value = unfolded_header(wire(build(structured(to=[f"{name} <j@example.com>"]))), "To")
    assert str(make_header(decode_header(raw_value))) == f"{name} <j@example.com>"


def test_display_name_with_comma_is_quoted_and_round_trips() -> None:
    message = build(structured(to=["Doe, John <john@example.com>", "x@example.com"]))
    addresses = reparse(message)["To"].addresses
    assert [a.display_name for a in addresses] == ["Doe, John", ""]


def test_cc_bcc_and_reply_to_headers_are_set() -> None:
    message = reparse(
        build(structured(cc=["c@example.com"], bcc="b@example.com", reply_to=["r@example.com"]))
    )
    assert str(message["Cc"]) == "c@example.com"
    # Bcc stays in the message: the session reads it for the envelope and strips it.
    assert str(message["Bcc"]) == "b@example.com"
    assert str(message["Reply-To"]) == "r@example.com"


def test_session_envelope_gets_ascii_recipients_and_drops_bcc() -> None:
    request = structured(to=["Jöhn <j@bücher.de>"], bcc=["hidden@example.com"])
    prepared = prepare_message(build(request), default_from=None)
    assert prepared.recipients == ("j@xn--bcher-kva.de", "hidden@example.com")
    assert prepared.from_address == "sender@example.com"
    assert b"hidden@example.com" not in prepared.raw


# --------------------------------------------------------------------------- From


def test_default_from_is_used_when_the_request_has_none() -> None:
    message = build(structured(**{"from": None}), default_from="Billing <billing@bücher.de>")
    (address,) = reparse(message)["From"].addresses
    assert (address.display_name, address.addr_spec) == ("Billing", "billing@xn--bcher-kva.de")


def test_request_from_wins_over_the_default_from() -> None:
    message = build(structured(), default_from="billing@example.org")
    assert reparse(message)["From"].addresses[0].addr_spec == "sender@example.com"


def test_missing_from_and_default_is_rejected_as_invalid_request() -> None:
    with pytest.raises(RequestRejected) as info:
        build(structured(**{"from": None}))
    assert info.value.code == ErrorCode.INVALID_REQUEST


def test_invalid_default_from_is_rejected_as_configuration_error() -> None:
    with pytest.raises(RequestRejected) as info:
        build(structured(**{"from": None}), default_from="not an address")
    assert info.value.code == ErrorCode.CONFIGURATION_ERROR


# --------------------------------------------------------------------------- other headers


def test_subject_and_date_are_set() -> None:
    message = reparse(build(structured(subject="Grüße aus Köln")))
    assert str(message["Subject"]) == "Grüße aus Köln"
    assert message["Date"].datetime == WHEN


def test_custom_headers_are_added() -> None:
    message = reparse(build(structured(headers={"X-Campaign": "spring", "X-Note": "héllo"})))
    assert str(message["X-Campaign"]) == "spring"
    assert str(message["X-Note"]) == "héllo"


def test_long_ascii_custom_header_is_kept_literally_not_rfc2047_encoded() -> None:
    url = "<https://example.com/unsubscribe?token=" + "t" * 200 + ">"
    data = wire(build(structured(headers={"List-Unsubscribe": url})))
    assert unfolded_header(data, "List-Unsubscribe") == url


def test_long_custom_header_with_spaces_is_folded_and_unfolds_exactly() -> None:
    value = " ".join(f"word{i}" for i in range(60)) + "  double  spaced"
    data = wire(build(structured(headers={"X-Words": value})))
    assert unfolded_header(data, "X-Words") == value
    assert all(len(line) <= 78 for line in data.split(b"\r\n\r\n")[0].split(b"\r\n"))


def test_tags_become_the_x_ses_message_tags_header_before_the_worker_tags() -> None:
    message = build(structured(tags={"campaign": "spring", "tier": "gold"}))
    value = unfolded_header(wire(message), TAGS_HEADER)
    assert value == f"campaign=spring, tier=gold, {WORKER_TAGS}"


def test_long_tags_header_is_folded_without_encoded_words() -> None:
    tags = {f"t{i}": "v" * 256 for i in range(50)}
    value = unfolded_header(wire(build(structured(tags=tags))), TAGS_HEADER)
    assert value == ", ".join(f"{k}={v}" for k, v in tags.items()) + f", {WORKER_TAGS}"
    assert "=?" not in value


def test_a_request_without_tags_is_tagged_with_its_service_and_request_id() -> None:
    assert unfolded_header(wire(build(structured())), TAGS_HEADER) == WORKER_TAGS


def test_a_request_id_outside_the_tag_alphabet_is_tagged_in_its_encoded_form() -> None:
    value = unfolded_header(wire(build(structured(request_id="order 1/ü"))), TAGS_HEADER)
    assert value == "email_worker_service_id=svc, email_worker_request_id=b64_b3JkZXIgMS_DvA"


def test_verbatim_headers_survive_deepcopy_and_pickle() -> None:
    message = build(structured(tags={"a": "b"}))
    for clone in (copy.deepcopy(message), pickle.loads(pickle.dumps(message))):
        header = clone[TAGS_HEADER]
        assert isinstance(header, VerbatimHeader)
        assert (header.name, str(header)) == (TAGS_HEADER, f"a=b, {WORKER_TAGS}")
        assert wire(clone) == wire(message)


def test_verbatim_header_is_written_unchanged_under_other_policies() -> None:
    message = build(structured(headers={"X-Long": "x" * 300}))
    for policy in (email.policy.SMTP, email.policy.SMTPUTF8, email.policy.default):
        assert f"X-Long: {'x' * 300}" in message.as_string(policy=policy)


# --------------------------------------------------------------------------- raw mode


def raw_request(raw: bytes = RAW, /, **changes: Any) -> EmailRequest:
    return request_from({"version": 1, "raw": b64(raw), **changes})


def test_raw_message_is_written_back_unchanged_but_for_the_worker_tags() -> None:
    assert wire(build(raw_request())) == with_tags_header(RAW)


def test_raw_message_gets_the_tags_header_and_nothing_else_changes() -> None:
    data = wire(build(raw_request(tags={"kind": "raw"})))
    # Folded at a space, as every header the worker writes, to stay within 78 characters.
    tags = "kind=raw, email_worker_service_id=svc,\r\n email_worker_request_id=p-1"
    assert data == with_tags_header(RAW, tags)


def test_raw_recipients_from_the_request_replace_to_cc_and_bcc_headers() -> None:
    message = reparse(build(raw_request(to=["new@example.com"], bcc=["hidden@example.com"])))
    assert str(message["To"]) == "new@example.com"
    assert "Cc" not in message
    assert str(message["Bcc"]) == "hidden@example.com"


def test_raw_from_from_the_request_replaces_the_from_header() -> None:
    message = reparse(build(raw_request(**{"from": "Other <other@bücher.de>"})))
    assert message.get_all("From") == ["Other <other@xn--bcher-kva.de>"]


def test_raw_message_with_lf_line_endings_is_sent_with_crlf() -> None:
    raw = b"From: a@example.com\nTo: b@example.com\nSubject: s\n\nline one\nline two\n"
    assert wire(build(raw_request(raw))) == with_tags_header(raw.replace(b"\n", b"\r\n"))


# --------------------------------------------------------------------------- size


def test_message_over_the_size_cap_is_rejected_as_message_too_large() -> None:
    request = structured(text="x" * 1000)
    size = message_size(build(request))
    assert build(request, max_bytes=size)
    with pytest.raises(RequestRejected) as info:
        build(request, max_bytes=size - 1)
    assert info.value.code == ErrorCode.MESSAGE_TOO_LARGE


def test_oversized_attachments_are_rejected_as_message_too_large() -> None:
    attachment = {"filename": "a.bin", "content_type": "application/octet-stream"}
    attachment["content_base64"] = b64(b"\x00" * 3000)
    with pytest.raises(RequestRejected) as info:
        build(structured(attachments=[attachment]), max_bytes=2000)
    assert info.value.code == ErrorCode.MESSAGE_TOO_LARGE


def test_oversized_raw_message_is_rejected_as_message_too_large() -> None:
    with pytest.raises(RequestRejected) as info:
        build(raw_request(), max_bytes=100)
    assert info.value.code == ErrorCode.MESSAGE_TOO_LARGE


def test_message_size_counts_crlf_line_endings() -> None:
    message = build(raw_request())
    assert message_size(message) == len(with_tags_header(RAW))


# --------------------------------------------------------------------------- property tests

# Mostly printable text (so most samples reach the builder), sometimes anything at all.
_PRINTABLE = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=120)
_HEADER_TEXT = st.one_of(_PRINTABLE, _PRINTABLE, _PRINTABLE, st.text(max_size=120))
_ADDRESSES = st.one_of(
    st.sampled_from(
        [
            "a@example.com",
            "Jöhn Døe <j@bücher.de>",
            '"Doe, J" <d@example.org>',
            '"Quote \\" and \\\\ slash" <q@example.org>',
            "<angle@example.com>",
            "UPPER@EXAMPLE.COM",
            "a@xn--bcher-kva.de",
            "bad",
            "x@localhost",
        ]
    ),
    st.builds(
        lambda name, local, domain: f"{name} <{local}@{domain}>",
        _HEADER_TEXT.map(lambda text: text[:20]),
        st.from_regex(r"[a-z0-9][a-z0-9._+-]{0,8}", fullmatch=True),
        st.sampled_from(["example.com", "bücher.de", "ÉXAMPLE.org", "xn--mnchen-3ya.de"]),
    ),
)
_ADDRESS_FIELD = st.one_of(_ADDRESSES, st.lists(_ADDRESSES, max_size=3))
_ATTACHMENT = st.fixed_dictionaries(
    {
        "filename": st.one_of(
            st.sampled_from(["a.pdf", "résumé.txt", 'q"uote.bin', "x" * 200 + ".txt"]),
            _HEADER_TEXT,
        ),
        "content_type": st.sampled_from(
            ["application/pdf", "text/plain", "image/png", "application/x-foo+json", "bad"]
        ),
        "content_base64": st.binary(max_size=64).map(b64),
    }
)
_RAW_MESSAGES = st.builds(
    lambda headers, body: (
        "".join(f"{name}: {value}\r\n" for name, value in headers) + "\r\n" + body
    ).encode("utf-8"),
    st.lists(
        st.tuples(
            st.sampled_from(["From", "To", "Cc", "Subject", "X-Thing", "Content-Type", "Date"]),
            st.one_of(_ADDRESSES, st.text(max_size=40).filter(lambda v: "\r" not in v)),
        ),
        max_size=6,
    ),
    st.text(max_size=60),
)

_STRUCTURED_REQUESTS = st.fixed_dictionaries(
    {
        "version": st.just(1),
        "to": _ADDRESS_FIELD,
        "subject": _HEADER_TEXT,
        "text": st.one_of(st.none(), st.text(max_size=300)),
    },
    optional={
        "from": _ADDRESSES,
        "cc": _ADDRESS_FIELD,
        "bcc": _ADDRESS_FIELD,
        "reply_to": _ADDRESS_FIELD,
        "html": st.text(max_size=300),
        "headers": st.dictionaries(
            st.one_of(
                st.sampled_from(["X-A", "List-Unsubscribe", "In-Reply-To", "References", "From"]),
                st.from_regex(r"[!-9;-~]{1,20}", fullmatch=True),
            ),
            _HEADER_TEXT,
            max_size=3,
        ),
        "attachments": st.lists(_ATTACHMENT, max_size=2),
        "tags": st.dictionaries(
            st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True),
            st.from_regex(r"[A-Za-z0-9_-]{1,300}", fullmatch=True),
            max_size=3,
        ),
        "request_id": st.one_of(
            st.from_regex(r"[A-Za-z0-9._:/-]{1,40}", fullmatch=True), _HEADER_TEXT
        ),
    },
)
_RAW_REQUESTS = st.fixed_dictionaries(
    {"version": st.just(1), "raw": _RAW_MESSAGES.map(b64)},
    optional={"from": _ADDRESSES, "to": _ADDRESS_FIELD, "bcc": _ADDRESS_FIELD},
)
REQUEST_VALIDATOR = jsonschema.Draft202012Validator(load_schema("request-v1"))


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(_STRUCTURED_REQUESTS | _RAW_REQUESTS)
def test_any_accepted_request_builds_matches_the_schema_and_keeps_its_recipients(
    document: dict[str, Any],
) -> None:
    try:
        request = request_from(document)
    except RequestRejected:
        return
    # The schema is never stricter than the worker.
    REQUEST_VALIDATOR.validate(document)
    try:
        message = build(request, default_from="default@example.com")
    except RequestRejected as error:
        failure: RequestRejected | None = error
    else:
        failure = None
    if failure is not None:
        # Only a raw message that cannot be written back out may fail here.
        assert failure.code == ErrorCode.INVALID_REQUEST
        assert request.is_raw
        return
    # What the session will send to is exactly what the request asked for.
    prepared = prepare_message(message, default_from=None)
    expected = {a.lower() for a in request.envelope_recipients}
    assert {r.lower() for r in prepared.recipients} == expected
    assert prepared.from_address.lower() == (request.from_address or "default@example.com").lower()
    assert b"\r\nBcc:" not in prepared.raw.split(b"\r\n\r\n")[0]


def rich_request() -> EmailRequest:
    return structured(
        to=["Zoë <zoe@bücher.example>", "b@example.com"],
        cc=["c@example.com"],
        subject="Größe und Preis",
        html="<p>Grüße</p>",
        headers={"X-Campaign": "spring", "List-Unsubscribe": "<https://example.com/u?id=1>"},
        attachments=[
            {
                "filename": "bericht.pdf",
                "content_type": "application/pdf",
                "content_base64": b64(b"%PDF-1.4 data"),
            }
        ],
        tags={"campaign": "spring"},
    )


def test_messages_share_header_classes_instead_of_making_one_per_lookup() -> None:
    first, second = build(structured()), build(structured())
    assert type(first["Content-Type"]) is type(second["Content-Type"])


def test_the_header_class_cache_changes_no_byte_of_the_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cached = wire(build(rich_request()))
    monkeypatch.setattr("worker.formats.message_parts._POLICY", email.policy.default)
    stock = wire(build(rich_request()))
    # Only the MIME boundaries are random; align them before comparing.
    boundaries = re.findall(rb'boundary="([^"]+)"', stock)
    for ours, theirs in zip(re.findall(rb'boundary="([^"]+)"', cached), boundaries, strict=True):
        cached = cached.replace(ours, theirs)
    assert cached == stock
