"""Request format v1: parsing, every rejection code, privacy of reprs, and schema agreement."""

from __future__ import annotations

import base64
import json
import re
import time
from email.headerregistry import HeaderRegistry
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worker.formats.error_codes import ErrorCode, ResultStatus
from worker.formats.request import (
    MAX_JSON_DEPTH,
    MAX_RAW_ADDRESS_FIELD_LENGTH,
    MAX_RECIPIENTS,
    MAX_REPLY_TO,
    MAX_TAGS,
    RESERVED_HEADER_NAMES,
    RESERVED_HEADER_PREFIXES,
    Attachment,
    AttachmentRef,
    EmailRequest,
    RequestRejected,
    parse_request,
    request_summary_for_logs,
)
from worker.formats.schemas import load_schema

PUBSUB_ID = "pubsub-1234"
REQUEST_SCHEMA = load_schema("request-v1")
SCHEMA_VALIDATOR = jsonschema.Draft202012Validator(REQUEST_SCHEMA)
_DROP = object()


def doc(**changes: Any) -> dict[str, Any]:
    """A minimal valid structured request with `changes` applied (``_DROP`` removes a key)."""
    base: dict[str, Any] = {
        "version": 1,
        "to": ["rcpt@example.com"],
        "subject": "Hello",
        "text": "Body",
    }
    for key, value in changes.items():
        if value is _DROP:
            base.pop(key, None)
        else:
            base[key] = value
    return base


def raw_doc(raw: bytes, **changes: Any) -> dict[str, Any]:
    return {"version": 1, "raw": base64.b64encode(raw).decode(), **changes}


def parse(document: Any, *, default_service_id: str | None = "billing") -> EmailRequest:
    data = document if isinstance(document, bytes) else json.dumps(document).encode()
    return parse_request(data, pubsub_message_id=PUBSUB_ID, default_service_id=default_service_id)


def rejection(document: Any, *, default_service_id: str | None = "billing") -> RequestRejected:
    with pytest.raises(RequestRejected) as info:
        parse(document, default_service_id=default_service_id)
    return info.value


RAW = (
    b"From: Sender <sender@example.com>\r\n"
    b"To: one@example.com, Two <two@example.org>\r\n"
    b"Cc: three@example.net\r\n"
    b"Subject: raw hello\r\n"
    b"\r\n"
    b"raw body\r\n"
)


# --------------------------------------------------------------------------- JSON level


def test_non_utf8_data_is_rejected_as_invalid_json() -> None:
    assert rejection(b'{"version": 1, "subject": "\xff"}').code == ErrorCode.INVALID_JSON


def test_malformed_json_is_rejected_as_invalid_json() -> None:
    assert rejection(b'{"version": 1,').code == ErrorCode.INVALID_JSON


def test_utf16_encoded_json_is_rejected_as_invalid_json() -> None:
    data = json.dumps(doc()).encode("utf-16")
    assert rejection(data).code == ErrorCode.INVALID_JSON


def test_duplicate_keys_are_rejected_as_invalid_json() -> None:
    data = b'{"version": 1, "to": "a@example.com", "to": "b@example.com"}'
    assert rejection(data).code == ErrorCode.INVALID_JSON


def test_nan_literal_is_rejected_as_invalid_json() -> None:
    assert rejection(b'{"version": NaN}').code == ErrorCode.INVALID_JSON


def test_deeply_nested_json_is_rejected_as_invalid_json_before_it_is_parsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def must_not_parse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a document nested this deep must not reach json.loads")

    monkeypatch.setattr("worker.formats.request_json.json.loads", must_not_parse)
    data = b'{"version": 1, "headers": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    refused = rejection(data)
    assert refused.code == ErrorCode.INVALID_JSON
    assert refused.message == f"the JSON is nested more than {MAX_JSON_DEPTH} levels deep"


def test_nesting_is_counted_across_arrays_and_objects_but_not_inside_strings() -> None:
    def nested(levels: int) -> bytes:
        """A request whose `headers` value makes it `levels` deep, the outer object included."""
        objects = (levels - 1) // 2
        arrays = levels - 1 - objects
        inner = '{"a": ' * objects + "[" * arrays + "1" + "]" * arrays + "}" * objects
        return f'{{"version": 1, "headers": {inner}, "subject": "{"[{" * 500}"}}'.encode()

    # At the limit the document is parsed (and refused later, for the field's type).
    assert rejection(nested(MAX_JSON_DEPTH)).code == ErrorCode.INVALID_REQUEST
    assert rejection(nested(MAX_JSON_DEPTH + 1)).code == ErrorCode.INVALID_JSON


def test_nesting_broken_up_by_siblings_is_counted_level_by_level() -> None:
    def nested(levels: int) -> bytes:
        # Each array starts with an empty one, so openers never run long; the outer object
        # and the innermost empty array are the other two levels.
        inner = "[[], " * (levels - 2) + "1" + "]" * (levels - 2)
        return f'{{"version": 1, "headers": {inner}}}'.encode()

    assert rejection(nested(MAX_JSON_DEPTH)).code == ErrorCode.INVALID_REQUEST
    assert rejection(nested(MAX_JSON_DEPTH + 1)).code == ErrorCode.INVALID_JSON


def test_unbalanced_brackets_get_the_parsers_own_error() -> None:
    refused = rejection(b'{"version": 1, "headers": [' + b"[], " * 40 + b"1}")
    assert refused.code == ErrorCode.INVALID_JSON
    assert refused.message.startswith("the message data is not valid JSON (")


def test_unpaired_surrogate_escape_is_rejected_as_invalid_json() -> None:
    data = b'{"version": 1, "to": "a@example.com", "subject": "\\ud800", "text": "x"}'
    assert rejection(data).code == ErrorCode.INVALID_JSON


@pytest.mark.parametrize("document", [[], "text", 1, None, True])
def test_json_that_is_not_an_object_is_rejected_as_invalid_request(document: Any) -> None:
    assert rejection(document).code == ErrorCode.INVALID_REQUEST


# --------------------------------------------------------------------------- version and fields


def test_missing_version_is_rejected_as_invalid_request() -> None:
    assert rejection(doc(version=_DROP)).code == ErrorCode.INVALID_REQUEST


@pytest.mark.parametrize("version", [2, 0, "1", True, 1.5, [1]])
def test_other_versions_are_rejected_as_unsupported_version(version: Any) -> None:
    assert rejection(doc(version=version)).code == ErrorCode.UNSUPPORTED_VERSION


def test_unsupported_version_is_reported_before_unknown_fields() -> None:
    # A v2 request with new fields must say "wrong version", not "typo".
    assert rejection(doc(version=2, priority="high")).code == ErrorCode.UNSUPPORTED_VERSION


def test_unknown_top_level_field_is_rejected_as_invalid_request_naming_it() -> None:
    error = rejection(doc(subjet="typo"))
    assert error.code == ErrorCode.INVALID_REQUEST
    assert '"subjet"' in error.message


def test_null_optional_fields_count_as_absent() -> None:
    request = parse(doc(cc=None, html=None, headers=None, tags=None, request_id=None))
    assert request.cc == ()
    assert request.request_id == PUBSUB_ID


# --------------------------------------------------------------------------- ids


def test_request_id_defaults_to_the_pubsub_message_id() -> None:
    assert parse(doc()).request_id == PUBSUB_ID


def test_request_id_from_the_request_is_kept() -> None:
    assert parse(doc(request_id="order-42/confirmation")).request_id == "order-42/confirmation"


@pytest.mark.parametrize("request_id", ["", "x" * 129, "a\tb", "a\x1bb", "a\u2028b", 42])
def test_invalid_request_id_is_rejected_as_invalid_request(request_id: Any) -> None:
    assert rejection(doc(request_id=request_id)).code == ErrorCode.INVALID_REQUEST


def test_rejection_carries_request_id_and_service_id_when_they_are_readable() -> None:
    error = rejection(doc(request_id="r-1", service_id="shop", to="not-an-address"))
    assert (error.request_id, error.service_id) == ("r-1", "shop")


def test_rejection_carries_default_service_id_and_no_request_id_when_absent() -> None:
    error = rejection(doc(to="not-an-address"))
    assert (error.request_id, error.service_id) == (None, "billing")


def test_service_id_defaults_to_the_worker_default() -> None:
    assert parse(doc()).service_id == "billing"


def test_service_id_from_the_request_overrides_the_default() -> None:
    assert parse(doc(service_id="shop_eu-1")).service_id == "shop_eu-1"


def test_missing_service_id_without_a_default_is_rejected_as_invalid_request() -> None:
    assert rejection(doc(), default_service_id=None).code == ErrorCode.INVALID_REQUEST


@pytest.mark.parametrize("service_id", ["Shop", "-shop", "_shop", "a/b", "a" * 64, "shop\n", "", 7])
def test_invalid_service_id_is_rejected_as_invalid_request(service_id: Any) -> None:
    assert rejection(doc(service_id=service_id)).code == ErrorCode.INVALID_REQUEST


def test_invalid_default_service_id_is_rejected_as_configuration_error() -> None:
    assert rejection(doc(), default_service_id="../etc").code == ErrorCode.CONFIGURATION_ERROR


# --------------------------------------------------------------------------- sender and recipients
# Address syntax itself is tested in test_addresses.py.


@pytest.mark.parametrize("field", ["from", "to", "cc", "bcc", "reply_to"])
def test_every_address_field_is_checked_for_header_injection(field: str) -> None:
    value = "Eve\r\nBcc: victim@example.com <eve@example.com>"
    assert rejection(doc(**{field: value})).code == ErrorCode.HEADER_INJECTION


def test_idn_addresses_reach_the_envelope_and_from_domain_in_punycode() -> None:
    request = parse(doc(to=["kunde@bücher.de"], **{"from": "info@MÜNCHEN.example.com"}))
    assert request.envelope_recipients == ("kunde@xn--bcher-kva.de",)
    assert request.from_address == "info@xn--mnchen-3ya.example.com"
    assert request.from_domain == "xn--mnchen-3ya.example.com"


def test_to_cc_and_bcc_each_accept_a_single_string() -> None:
    request = parse(doc(to="a@example.com", cc="b@example.com", bcc="c@example.com"))
    assert request.envelope_recipients == ("a@example.com", "b@example.com", "c@example.com")


def test_from_given_as_a_list_is_rejected_as_invalid_request() -> None:
    assert rejection(doc(**{"from": ["a@example.com"]})).code == ErrorCode.INVALID_REQUEST


def test_request_without_recipients_is_rejected_as_invalid_request() -> None:
    assert rejection(doc(to=[], cc=None)).code == ErrorCode.INVALID_REQUEST


def test_bcc_alone_is_enough_recipients() -> None:
    request = parse(doc(to=_DROP, bcc=["hidden@example.com"]))
    assert request.recipient_count == 1


def _addresses(count: int, prefix: str) -> list[str]:
    return [f"{prefix}{i}@example.com" for i in range(count)]


def test_exactly_the_maximum_number_of_recipients_is_accepted() -> None:
    half = MAX_RECIPIENTS // 2
    request = parse(doc(to=_addresses(half, "t"), bcc=_addresses(MAX_RECIPIENTS - half, "b")))
    assert request.recipient_count == MAX_RECIPIENTS


def test_recipients_over_the_maximum_across_fields_are_rejected_as_too_many_recipients() -> None:
    half = MAX_RECIPIENTS // 2
    document = doc(to=_addresses(half, "t"), cc=_addresses(half, "c"), bcc=["one@example.com"])
    assert rejection(document).code == ErrorCode.TOO_MANY_RECIPIENTS


def test_one_list_over_the_maximum_is_rejected_as_too_many_recipients() -> None:
    assert rejection(doc(to=_addresses(MAX_RECIPIENTS + 1, "t"))).code == (
        ErrorCode.TOO_MANY_RECIPIENTS
    )


def test_reply_to_over_its_limit_is_rejected_as_invalid_request() -> None:
    document = doc(reply_to=_addresses(MAX_REPLY_TO + 1, "r"))
    assert rejection(document).code == ErrorCode.INVALID_REQUEST


def test_missing_from_leaves_from_address_none_for_the_service_default() -> None:
    request = parse(doc())
    assert (request.sender, request.from_address, request.from_domain) == (None, None, None)


# --------------------------------------------------------------------------- subject and bodies


def test_missing_subject_is_rejected_as_invalid_request() -> None:
    assert rejection(doc(subject=_DROP)).code == ErrorCode.INVALID_REQUEST


@pytest.mark.parametrize("breaker", ["\r\n", "\n", "\r", "\x00", "\x0b", "\x85", "\u2028"])
def test_subject_with_line_break_is_rejected_as_header_injection(breaker: str) -> None:
    document = doc(subject=f"Hi{breaker}Bcc: victim@example.com")
    assert rejection(document).code == ErrorCode.HEADER_INJECTION


def test_subject_with_other_control_character_is_rejected_as_invalid_request() -> None:
    assert rejection(doc(subject="Hi\x07")).code == ErrorCode.INVALID_REQUEST


def test_subject_longer_than_998_characters_is_rejected_as_invalid_request() -> None:
    assert rejection(doc(subject="x" * 999)).code == ErrorCode.INVALID_REQUEST


def test_subject_of_998_characters_is_accepted() -> None:
    assert parse(doc(subject="x" * 998)).subject == "x" * 998


def test_request_without_text_or_html_is_rejected_as_invalid_request() -> None:
    assert rejection(doc(text=_DROP)).code == ErrorCode.INVALID_REQUEST


def test_html_only_request_is_accepted() -> None:
    request = parse(doc(text=_DROP, html="<p>Hi</p>"))
    assert (request.text, request.html) == (None, "<p>Hi</p>")


def test_body_with_nul_character_is_rejected_as_invalid_request() -> None:
    assert rejection(doc(html="<p>\x00</p>")).code == ErrorCode.INVALID_REQUEST


def test_non_string_body_is_rejected_as_invalid_request() -> None:
    assert rejection(doc(text=["Body"])).code == ErrorCode.INVALID_REQUEST


# --------------------------------------------------------------------------- custom headers


def test_custom_headers_are_kept_in_order() -> None:
    headers = {"X-Campaign": "spring", "List-Unsubscribe": "<https://example.com/u>"}
    assert parse(doc(headers=headers)).headers == tuple(headers.items())


@pytest.mark.parametrize(
    "name",
    [
        "From",
        "to",
        "CC",
        "Bcc",
        "Subject",
        "Sender",
        "reply-to",
        "Message-ID",
        "Return-Path",
        "MIME-Version",
        "Date",
        "Orig-Date",
        "DKIM-Signature",
        "dkim-anything",
        "Content-Type",
        "content-transfer-encoding",
        "X-SES-CONFIGURATION-SET",
        "x-ses-message-tags",
        "Resent-From",
    ],
)
def test_reserved_header_is_rejected_as_reserved_header(name: str) -> None:
    assert rejection(doc(headers={name: "value"})).code == ErrorCode.RESERVED_HEADER


def test_every_header_the_email_package_parses_specially_is_reserved() -> None:
    # Those would be parsed as structured headers, so custom values could break building.
    for name in HeaderRegistry().registry:
        assert rejection(doc(headers={name: "value"})).code == ErrorCode.RESERVED_HEADER, name


@pytest.mark.parametrize("breaker", ["\r\n", "\n", "\r", "\x00", "\x1c", "\u2029"])
def test_header_value_with_line_break_is_rejected_as_header_injection(breaker: str) -> None:
    document = doc(headers={"X-Note": f"a{breaker}Bcc: victim@example.com"})
    assert rejection(document).code == ErrorCode.HEADER_INJECTION


def test_header_name_with_line_break_is_rejected_as_header_injection() -> None:
    document = doc(headers={"X-Note\r\nBcc": "victim@example.com"})
    assert rejection(document).code == ErrorCode.HEADER_INJECTION


@pytest.mark.parametrize("name", ["", "X Note", "X:Note", "X-Nöte", "x" * 77, "X-Tab\t"])
def test_invalid_header_name_is_rejected_as_invalid_request(name: str) -> None:
    assert rejection(doc(headers={name: "value"})).code == ErrorCode.INVALID_REQUEST


def test_header_given_twice_in_different_case_is_rejected_as_invalid_request() -> None:
    document = doc(headers={"X-Note": "a", "x-note": "b"})
    assert rejection(document).code == ErrorCode.INVALID_REQUEST


def test_header_value_over_900_characters_is_rejected_as_invalid_request() -> None:
    assert rejection(doc(headers={"X-Long": "x" * 901})).code == ErrorCode.INVALID_REQUEST


def test_non_string_header_value_is_rejected_as_invalid_request() -> None:
    assert rejection(doc(headers={"X-Count": 3})).code == ErrorCode.INVALID_REQUEST


def test_headers_that_are_not_an_object_are_rejected_as_invalid_request() -> None:
    assert rejection(doc(headers=[["X-A", "b"]])).code == ErrorCode.INVALID_REQUEST


# --------------------------------------------------------------------------- attachments


def attachment(**changes: Any) -> dict[str, Any]:
    base = {
        "filename": "report.pdf",
        "content_type": "application/pdf",
        "content_base64": base64.b64encode(b"%PDF-1.7 data").decode(),
    }
    base.update(changes)
    return base


def test_attachment_content_is_decoded() -> None:
    (item,) = parse(doc(attachments=[attachment()])).attachments
    assert isinstance(item, Attachment)
    assert (item.filename, item.content_type, item.content) == (
        "report.pdf",
        "application/pdf",
        b"%PDF-1.7 data",
    )


def test_attachment_content_type_is_lower_cased() -> None:
    (item,) = parse(doc(attachments=[attachment(content_type="Application/PDF")])).attachments
    assert item.content_type == "application/pdf"


def test_empty_attachment_is_accepted() -> None:
    (item,) = parse(doc(attachments=[attachment(content_base64="")])).attachments
    assert isinstance(item, Attachment)
    assert item.content == b""


def attachment_ref(**changes: Any) -> dict[str, Any]:
    base = {
        "filename": "big report.pdf",
        "content_type": "application/pdf",
        "gcs": "gs://billing-files/out/2026/report.pdf",
    }
    base.update(changes)
    return base


def test_attachment_by_reference_keeps_its_bucket_and_object_name_in_order() -> None:
    request = parse(doc(attachments=[attachment(), attachment_ref()]))
    inline, ref = request.attachments
    assert isinstance(inline, Attachment)
    assert isinstance(ref, AttachmentRef)
    assert (ref.filename, ref.content_type) == ("big report.pdf", "application/pdf")
    assert (ref.location.bucket, ref.location.name) == ("billing-files", "out/2026/report.pdf")
    assert request.attachment_refs == (ref,)


def test_request_with_only_inline_attachments_has_no_references() -> None:
    assert parse(doc(attachments=[attachment()])).attachment_refs == ()


def test_attachment_reference_repr_and_log_summary_omit_its_names() -> None:
    request = parse(doc(attachments=[attachment_ref()]))
    shown = repr(request.attachments) + repr(request_summary_for_logs(request))
    assert "billing-files" not in shown
    assert "report" not in shown
    assert request_summary_for_logs(request)["attachment_ref_count"] == 1


@pytest.mark.parametrize(
    "item",
    [
        attachment_ref(gcs="https://storage.googleapis.com/b/o"),
        attachment_ref(gcs="GS://billing-files/a"),
        attachment_ref(gcs=7),
        attachment_ref(gcs="gs://billing-files/" + "a" * 1100),
        attachment_ref(content_base64="QUJD"),
        {"filename": "a", "gcs": "gs://billing-files/a"},
    ],
)
def test_malformed_attachment_reference_is_an_invalid_request(item: dict[str, Any]) -> None:
    assert rejection(doc(attachments=[item])).code is ErrorCode.INVALID_REQUEST


@pytest.mark.parametrize(
    "uri",
    [
        "gs://billing-files/out/../other/secret.pdf",
        "gs://billing-files/out/./report.pdf",
        "gs://billing-files/..",
        "gs://billing-files/out/%2e%2e/other/secret.pdf",
        "gs://billing-files/out%2Fsecret.pdf",
        "gs://billing-files//out/report.pdf",
        "gs://billing-files/out//report.pdf",
        "gs://billing-files/out\\..\\x",
        "gs://billing-files/out/report.pdf?generation=1",
        "gs://billing-files/out/report.pdf#x",
        "gs://billing-files/out/*",
        "gs://billing-files/out/",
        "gs://billing-files/",
        "gs://billing-files",
        "gs://Billing-Files/out/report.pdf",
        "gs://billing..files/out/report.pdf",
        "gs://billing-files/out/r\u00e9port.pdf",
        "gs://billing-files/out/report.pdf ",
        "gs://billing-files/out/report\npdf",
    ],
)
def test_ambiguous_attachment_reference_is_forbidden_before_any_read(uri: str) -> None:
    error = rejection(doc(attachments=[attachment_ref(gcs=uri)]))
    assert error.code is ErrorCode.ATTACHMENT_FORBIDDEN
    assert "billing" not in str(error)


@pytest.mark.parametrize(
    "encoded", ["abc", "QUJD\n", "QU JD", "QUJD=", "QQ=", "Q===", "=QUJ", "QU=D", "QUJD!", "QUJé"]
)
def test_attachment_with_bad_base64_is_rejected_as_invalid_base64(encoded: str) -> None:
    document = doc(attachments=[attachment(content_base64=encoded)])
    assert rejection(document).code == ErrorCode.INVALID_BASE64


def test_attachment_filename_with_line_break_is_rejected_as_header_injection() -> None:
    document = doc(attachments=[attachment(filename="a.pdf\r\nContent-Type: text/html")])
    assert rejection(document).code == ErrorCode.HEADER_INJECTION


@pytest.mark.parametrize("filename", ["", "   ", "x" * 256, "a\x07.pdf"])
def test_invalid_attachment_filename_is_rejected_as_invalid_request(filename: str) -> None:
    document = doc(attachments=[attachment(filename=filename)])
    assert rejection(document).code == ErrorCode.INVALID_REQUEST


@pytest.mark.parametrize(
    "content_type",
    ["pdf", "application/", "/pdf", "text/plain; charset=utf-8", "a b/c", "text/pl@in"],
)
def test_attachment_content_type_that_is_not_type_slash_subtype_is_rejected(
    content_type: str,
) -> None:
    document = doc(attachments=[attachment(content_type=content_type)])
    assert rejection(document).code == ErrorCode.INVALID_REQUEST


@pytest.mark.parametrize("content_type", ["multipart/mixed", "message/rfc822", "Message/Partial"])
def test_composite_attachment_content_type_is_rejected_as_invalid_request(
    content_type: str,
) -> None:
    document = doc(attachments=[attachment(content_type=content_type)])
    assert rejection(document).code == ErrorCode.INVALID_REQUEST


def test_attachment_with_unknown_field_is_rejected_as_invalid_request() -> None:
    document = doc(attachments=[attachment(disposition="inline")])
    assert rejection(document).code == ErrorCode.INVALID_REQUEST


@pytest.mark.parametrize("missing", ["filename", "content_type", "content_base64"])
def test_attachment_missing_a_field_is_rejected_as_invalid_request(missing: str) -> None:
    item = attachment()
    del item[missing]
    assert rejection(doc(attachments=[item])).code == ErrorCode.INVALID_REQUEST


# --------------------------------------------------------------------------- tags


def test_tags_are_kept() -> None:
    tags = {"campaign": "spring-2026", "Tier_1": "gold"}
    assert parse(doc(tags=tags)).tags == tuple(tags.items())


@pytest.mark.parametrize(
    "tags",
    [
        {"bad name": "v"},
        {"ses:from": "v"},
        {"": "v"},
        {"naïve": "v"},
        {"x" * 257: "v"},
        {"name": ""},
        {"name": "a=b"},
        {"name": "a,b"},
        {"name": "x" * 257},
        {"name": 1},
    ],
)
def test_invalid_tag_name_or_value_is_rejected_as_invalid_request(tags: dict[str, Any]) -> None:
    assert rejection(doc(tags=tags)).code == ErrorCode.INVALID_REQUEST


@pytest.mark.parametrize(
    "name", ["email_worker_request_id", "email_worker_mine", "Email-Worker-Batch", "EMAIL_WORKER_"]
)
def test_a_tag_named_with_the_worker_s_prefix_is_rejected_as_reserved_tag(name: str) -> None:
    error = rejection(doc(tags={"campaign": "spring", name: "v"}))
    assert error.code == ErrorCode.RESERVED_TAG
    assert ErrorCode(error.code).status is ResultStatus.REJECTED


def test_a_raw_request_tag_named_with_the_worker_s_prefix_is_rejected_as_reserved_tag() -> None:
    assert rejection(raw_doc(RAW, tags={"email_worker_x": "v"})).code == ErrorCode.RESERVED_TAG


def test_a_tag_that_only_contains_the_worker_s_prefix_is_kept() -> None:
    assert parse(doc(tags={"my_email_worker_tag": "v"})).tags == (("my_email_worker_tag", "v"),)


def test_more_than_fifty_tags_are_rejected_as_invalid_request() -> None:
    tags = {f"t{i}": "v" for i in range(MAX_TAGS + 1)}
    assert rejection(doc(tags=tags)).code == ErrorCode.INVALID_REQUEST


# --------------------------------------------------------------------------- raw mode


def test_raw_message_takes_sender_and_recipients_from_its_headers() -> None:
    request = parse(raw_doc(RAW))
    assert request.is_raw
    assert request.from_address == "sender@example.com"
    assert request.envelope_recipients == (
        "one@example.com",
        "two@example.org",
        "three@example.net",
    )
    assert not request.replace_raw_recipients


def test_raw_recipients_given_in_the_request_replace_the_raw_ones() -> None:
    request = parse(raw_doc(RAW, bcc=["only@example.com"]))
    assert request.envelope_recipients == ("only@example.com",)
    assert request.replace_raw_recipients


def test_raw_from_given_in_the_request_overrides_the_raw_from() -> None:
    request = parse(raw_doc(RAW, **{"from": "other@example.org"}))
    assert (request.from_address, request.replace_raw_sender) == ("other@example.org", True)


@pytest.mark.parametrize("field", ["subject", "text", "html", "attachments", "headers", "reply_to"])
def test_raw_combined_with_structured_fields_is_rejected_as_invalid_request(field: str) -> None:
    values = {
        "subject": "s",
        "text": "t",
        "html": "h",
        "attachments": [attachment()],
        "headers": {"X-A": "b"},
        "reply_to": ["r@example.com"],
    }
    assert rejection(raw_doc(RAW, **{field: values[field]})).code == ErrorCode.INVALID_REQUEST


def test_raw_with_bad_base64_is_rejected_as_invalid_base64() -> None:
    assert rejection({"version": 1, "raw": "RnJvbTo*"}).code == ErrorCode.INVALID_BASE64


def test_raw_that_is_not_a_string_is_rejected_as_invalid_request() -> None:
    assert rejection({"version": 1, "raw": 12}).code == ErrorCode.INVALID_REQUEST


def test_raw_without_from_is_rejected_as_invalid_request() -> None:
    raw = b"To: one@example.com\r\nSubject: s\r\n\r\nbody\r\n"
    assert rejection(raw_doc(raw)).code == ErrorCode.INVALID_REQUEST


def test_raw_without_from_is_accepted_when_from_is_given() -> None:
    raw = b"To: one@example.com\r\nSubject: s\r\n\r\nbody\r\n"
    assert parse(raw_doc(raw, **{"from": "me@example.com"})).from_address == "me@example.com"


def test_raw_with_two_from_addresses_is_rejected_as_invalid_request() -> None:
    raw = b"From: a@example.com, b@example.com\r\nTo: one@example.com\r\n\r\nbody\r\n"
    assert rejection(raw_doc(raw)).code == ErrorCode.INVALID_REQUEST


def test_raw_with_two_from_headers_is_rejected_as_invalid_request() -> None:
    raw = b"From: a@example.com\r\nFrom: b@example.com\r\nTo: one@example.com\r\n\r\nbody\r\n"
    assert rejection(raw_doc(raw)).code == ErrorCode.INVALID_REQUEST


def test_raw_with_invalid_from_address_is_rejected_as_invalid_address() -> None:
    raw = b"From: not an address\r\nTo: one@example.com\r\n\r\nbody\r\n"
    assert rejection(raw_doc(raw)).code == ErrorCode.INVALID_ADDRESS


def test_raw_without_any_recipient_is_rejected_as_invalid_request() -> None:
    raw = b"From: a@example.com\r\nSubject: s\r\n\r\nbody\r\n"
    assert rejection(raw_doc(raw)).code == ErrorCode.INVALID_REQUEST


def test_raw_with_too_many_recipients_is_rejected_as_too_many_recipients() -> None:
    to = ", ".join(_addresses(MAX_RECIPIENTS + 1, "t")).encode()
    raw = b"From: a@example.com\r\nTo: " + to + b"\r\n\r\nbody\r\n"
    assert rejection(raw_doc(raw)).code == ErrorCode.TOO_MANY_RECIPIENTS


def test_raw_with_x_ses_header_is_rejected_as_reserved_header() -> None:
    raw = RAW.replace(b"Subject:", b"X-SES-SOURCE-ARN: arn:aws:ses:x\r\nSubject:")
    assert rejection(raw_doc(raw)).code == ErrorCode.RESERVED_HEADER


def test_raw_multipart_without_boundary_is_rejected_as_invalid_request() -> None:
    raw = RAW.replace(b"Subject:", b"Content-Type: multipart/mixed\r\nSubject:")
    assert rejection(raw_doc(raw)).code == ErrorCode.INVALID_REQUEST


def test_raw_that_is_not_a_message_is_rejected_as_invalid_request() -> None:
    raw = b"this is just some text\r\nwithout any headers\r\n"
    assert rejection(raw_doc(raw)).code == ErrorCode.INVALID_REQUEST


def test_raw_with_two_to_headers_is_rejected_as_invalid_request() -> None:
    raw = RAW.replace(b"Cc:", b"To:")
    assert rejection(raw_doc(raw)).code == ErrorCode.INVALID_REQUEST


def test_raw_address_header_over_32_kib_is_rejected_as_invalid_request() -> None:
    to = b", ".join(b"r%d@example.com" % i for i in range(2000))
    raw = b"From: a@example.com\r\nTo: " + to + b"\r\n\r\nbody\r\n"
    assert len(to) > MAX_RAW_ADDRESS_FIELD_LENGTH
    assert rejection(raw_doc(raw)).code == ErrorCode.INVALID_REQUEST


def test_raw_content_type_over_4_kib_is_rejected_as_invalid_request() -> None:
    content_type = b'Content-Type: text/plain; name="' + b";" * 5000 + b'"\r\n'
    raw = RAW.replace(b"Subject:", content_type + b"Subject:")
    assert rejection(raw_doc(raw)).code == ErrorCode.INVALID_REQUEST


def test_raw_with_many_large_mime_headers_is_rejected_as_invalid_request() -> None:
    part = b'--b\r\nContent-Type: text/plain; name="' + b"x" * 4000 + b'"\r\n\r\nx\r\n'
    raw = (
        b"From: a@example.com\r\nTo: b@example.com\r\n"
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + part * 70 + b"--b--\r\n"
    )
    assert rejection(raw_doc(raw)).code == ErrorCode.INVALID_REQUEST


def test_raw_header_just_under_the_limits_is_parsed_quickly() -> None:
    # Encoded-words are the email package's slowest address syntax.
    to = b"=?utf-8?q?a?= " * 2300 + b"<a@example.com>"
    raw = b"From: a@example.com\r\nTo: " + to + b"\r\n\r\nbody\r\n"
    started = time.monotonic()
    assert parse(raw_doc(raw)).recipient_count == 1
    assert time.monotonic() - started < 2


def test_raw_with_tags_keeps_the_tags() -> None:
    assert parse(raw_doc(RAW, tags={"kind": "raw"})).tags == (("kind", "raw"),)


# --------------------------------------------------------------------------- privacy


SECRET_DOC = doc(
    **{"from": "Secret Sender <sender-secret@example.com>"},
    to=["Victim Name <victim-secret@example.com>"],
    subject="subject-secret",
    text="text-secret",
    html="<p>html-secret</p>",
    headers={"X-Secret": "header-secret"},
    attachments=[
        attachment(filename="file-secret.pdf", content_base64=base64.b64encode(b"blob").decode())
    ],
)


def test_repr_hides_addresses_bodies_and_attachments() -> None:
    request = parse(SECRET_DOC)
    text = repr(request) + str(request) + repr(request.to) + repr(request.attachments)
    assert "secret" not in text
    assert "YmxvYg" not in text
    assert "blob" not in text
    assert "recipient_count=1" in text


def test_summary_for_logs_has_counts_but_no_personal_data() -> None:
    summary = request_summary_for_logs(parse(SECRET_DOC))
    assert summary["recipient_count"] == 1
    assert summary["attachment_count"] == 1
    assert summary["has_html"] is True
    assert summary["from_domain"] == "example.com"
    assert "secret" not in json.dumps(summary)


@pytest.mark.parametrize(
    "changes",
    [
        {"to": ["victim-secret@@example.com"]},
        {"subject": "subject-secret\r\n"},
        {"headers": {"X-A": "header-secret\n"}},
        {"attachments": [attachment(content_base64="secret!!")]},
        {"attachments": [attachment(filename="file-secret\n")]},
    ],
)
def test_rejection_messages_do_not_repeat_submitted_values(changes: dict[str, Any]) -> None:
    error = rejection({**SECRET_DOC, **changes})
    assert "secret" not in error.message
    assert "secret" not in str(error)


# --------------------------------------------------------------------------- schema agreement


TEMPLATED = doc(subject=_DROP, text=_DROP, template={"name": "invoice", "data": {"n": 1}})
TEMPLATED_FULL = doc(
    subject=_DROP,
    text=_DROP,
    template={"name": "invoice", "version": 3, "language": "de", "data": {}},
    attachments=[attachment()],
)

VALID_SAMPLES: list[dict[str, Any]] = [
    doc(),
    TEMPLATED,
    TEMPLATED_FULL,
    doc(to="one@example.com", text=_DROP, html="<p>x</p>"),
    SECRET_DOC,
    doc(
        request_id="order-1",
        service_id="shop",
        cc=["Jöhn <j@bücher.de>"],
        bcc=None,
        reply_to="help@example.com",
        tags={"campaign": "spring"},
        attachments=[attachment(content_base64=""), attachment_ref()],
    ),
    raw_doc(RAW),
    raw_doc(RAW, to=["a@example.com"], tags={"t": "v"}, subject=None),
]


def test_a_template_request_carries_name_version_language_and_data() -> None:
    request = parse(TEMPLATED_FULL)
    assert request.template is not None
    assert (request.template.name, request.template.version) == ("invoice", 3)
    assert (request.template.language, request.template.data) == ("de", {})
    assert request.subject is None


def test_a_template_request_without_version_or_language_means_latest_and_default() -> None:
    template = parse(TEMPLATED).template
    assert template is not None
    assert (template.version, template.language, template.data) == (None, None, {"n": 1})


def test_a_template_beside_a_subject_is_an_invalid_request() -> None:
    error = rejection({**TEMPLATED, "text": "x"})
    assert error.code is ErrorCode.INVALID_REQUEST
    assert "template replaces subject" in error.message


def test_the_template_repr_leaves_out_its_data() -> None:
    request = parse(doc(subject=_DROP, text=_DROP, template={"name": "t", "data": {"pw": "s3"}}))
    assert "s3" not in repr(request.template)


def test_request_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(REQUEST_SCHEMA)


@pytest.mark.parametrize("sample", VALID_SAMPLES)
def test_requests_the_worker_accepts_validate_against_the_schema(sample: dict[str, Any]) -> None:
    parse(sample)
    SCHEMA_VALIDATOR.validate(sample)


@pytest.mark.parametrize(
    "sample",
    [
        doc(version=2),
        doc(version=_DROP),
        doc(subjet="typo"),
        doc(subject=_DROP),
        doc(text=_DROP),
        doc(to=[]),
        doc(subject="a\r\nb"),
        doc(headers={"reply-TO": "x"}),
        doc(headers={"X-SES-TAGS": "x"}),
        doc(headers={"X Bad": "x"}),
        doc(tags={"a b": "c"}),
        doc(tags={"Email-Worker-x": "c"}),
        doc(attachments=[attachment(content_base64="abc")]),
        doc(attachments=[attachment(content_type="multipart/mixed")]),
        doc(attachments=[attachment(extra=1)]),
        doc(attachments=[attachment_ref(gcs="https://example.com/x")]),
        doc(attachments=[attachment_ref(content_base64="")]),
        doc(service_id="Upper"),
        doc(to=_addresses(MAX_RECIPIENTS + 1, "t")),
        raw_doc(RAW, subject="s"),
        {"version": 1, "raw": "not base64!"},
        {**TEMPLATED, "subject": "both"},
        {**TEMPLATED, "template": {"name": "invoice"}},
        {**TEMPLATED, "template": {"name": "../x", "data": {}}},
        {**TEMPLATED, "template": {"name": "x", "version": 0, "data": {}}},
        {**TEMPLATED, "template": {"name": "x", "language": "de/../x", "data": {}}},
        {**TEMPLATED, "template": {"name": "x", "data": {}, "extra": 1}},
        {**TEMPLATED, "template": {"name": "x", "data": []}},
        raw_doc(RAW, template={"name": "x", "data": {}}),
    ],
)
def test_schema_rejects_what_the_worker_rejects_where_a_schema_can_say_so(
    sample: dict[str, Any],
) -> None:
    with pytest.raises(RequestRejected):
        parse(sample)
    assert not SCHEMA_VALIDATOR.is_valid(sample)


def test_schema_reserved_header_pattern_matches_the_code() -> None:
    def case_insensitive(word: str) -> str:
        return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in word)

    names = "|".join(case_insensitive(n) for n in sorted(RESERVED_HEADER_NAMES))
    prefixes = "|".join(case_insensitive(p) for p in RESERVED_HEADER_PREFIXES)
    expected = f"^(?:{names})$|^(?:{prefixes})"
    assert REQUEST_SCHEMA["$defs"]["reservedHeaderName"]["pattern"] == expected


# --------------------------------------------------------------------------- never crashes

_FIELD_NAMES = [
    "version",
    "request_id",
    "service_id",
    "from",
    "to",
    "cc",
    "bcc",
    "reply_to",
    "subject",
    "text",
    "html",
    "headers",
    "attachments",
    "tags",
    "raw",
    "filename",
    "content_type",
    "content_base64",
]
_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.sampled_from([1, "a@example.com", "Jöhn <j@bücher.de>", "QUJD", ""]),
)
_json_values = st.recursive(
    _json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(_FIELD_NAMES), st.text(max_size=8)), children, max_size=5
        ),
    ),
    max_leaves=20,
)


def _parse_never_crashes(data: bytes) -> None:
    outcome: EmailRequest | RequestRejected
    try:
        outcome = parse_request(data, pubsub_message_id=PUBSUB_ID, default_service_id="svc")
    except RequestRejected as error:
        outcome = error
    if isinstance(outcome, RequestRejected):
        assert isinstance(outcome.code, ErrorCode)
        assert outcome.message
    else:
        assert isinstance(outcome, EmailRequest)
        assert "EmailRequest(" in repr(outcome)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_parse_request_on_arbitrary_bytes_only_raises_request_rejected(data: bytes) -> None:
    _parse_never_crashes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(st.sampled_from(_FIELD_NAMES), _json_values, max_size=8).map(
        lambda d: {"version": 1, **d}
    )
    | _json_values
)
def test_parse_request_on_arbitrary_json_structures_only_raises_request_rejected(
    document: Any,
) -> None:
    _parse_never_crashes(json.dumps(document).encode())


def _docs_json_examples() -> list[Any]:
    text = (Path(__file__).resolve().parents[2] / "docs" / "formats.md").read_text()
    request_part = text.split("## Result")[0]
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", request_part, re.S)]


def test_request_examples_in_the_docs_are_accepted_and_match_the_schema() -> None:
    # Scheduled sending shows a scheduled result and a cancel message among them.
    examples = [e for e in _docs_json_examples() if "status" not in e and "cancel" not in e]
    assert len(examples) == 4  # plain, raw, a gs:// attachment, a template
    for example in examples:
        parse(example)
        SCHEMA_VALIDATOR.validate(example)


def test_the_scheduled_sending_examples_in_the_docs_match_their_schemas() -> None:
    from worker.formats.cancel import parse_cancel
    from worker.formats.result import EmailResult

    (scheduled,) = [e for e in _docs_json_examples() if "status" in e]
    (cancel,) = [e for e in _docs_json_examples() if "cancel" in e]
    jsonschema.Draft202012Validator(load_schema("result-v1")).validate(scheduled)
    assert EmailResult.from_json_bytes(json.dumps(scheduled).encode()).status == "scheduled"
    jsonschema.Draft202012Validator(load_schema("cancel-v1")).validate(cancel)
    assert parse_cancel(json.dumps(cancel).encode()) is not None


def test_priority_high_is_kept_and_normal_or_absent_is_not_high() -> None:
    assert parse(doc(priority="high")).high_priority
    assert not parse(doc(priority="normal")).high_priority
    assert not parse(doc(priority=None)).high_priority
    assert not parse(doc()).high_priority


def test_priority_is_a_common_field_of_raw_requests_too() -> None:
    assert parse(raw_doc(RAW, priority="high")).high_priority


@pytest.mark.parametrize("priority", ["urgent", "HIGH", 1, True])
def test_any_other_priority_is_rejected_as_invalid_request(priority: Any) -> None:
    error = rejection(doc(priority=priority))
    assert error.code == ErrorCode.INVALID_REQUEST
    assert "priority" in error.message


def test_the_schema_accepts_the_priorities_the_worker_accepts() -> None:
    assert SCHEMA_VALIDATOR.is_valid(doc(priority="high"))
    assert SCHEMA_VALIDATOR.is_valid(doc(priority="normal"))
    assert not SCHEMA_VALIDATOR.is_valid(doc(priority="urgent"))
