"""Cancel format v1: telling a cancel message from a request, and its rules."""

from __future__ import annotations

import json

import jsonschema
import pytest

from worker.formats.cancel import CancelRequest, parse_cancel
from worker.formats.error_codes import ErrorCode
from worker.formats.rejection import RequestRejected
from worker.formats.schemas import load_schema

CANCEL_SCHEMA = jsonschema.Draft202012Validator(load_schema("cancel-v1"))


def data(document: object) -> bytes:
    return json.dumps(document).encode()


def test_a_cancel_message_names_the_request_and_optionally_its_service() -> None:
    assert parse_cancel(data({"version": 1, "cancel": "invoice-1"})) == CancelRequest("invoice-1")
    assert parse_cancel(
        data({"version": 1, "cancel": "invoice-1", "service_id": "billing"})
    ) == CancelRequest("invoice-1", "billing")


@pytest.mark.parametrize(
    "message",
    [
        data({"version": 1, "to": "a@example.com", "subject": "cancel", "text": "x"}),
        data({"version": 1, "to": "a@example.com", "text": 'the word "cancel" in text'}),
        b"not json",
        data({"version": 1, "tags": {"cancel": "x"}, "text": "x" * 5000}),
    ],
)
def test_a_request_is_not_taken_for_a_cancel(message: bytes) -> None:
    assert parse_cancel(message) is None


@pytest.mark.parametrize(
    ("document", "code"),
    [
        ({"version": 1, "cancel": "r", "to": "a@example.com"}, ErrorCode.INVALID_REQUEST),
        ({"version": 2, "cancel": "r"}, ErrorCode.UNSUPPORTED_VERSION),
        ({"version": 1, "cancel": ""}, ErrorCode.INVALID_REQUEST),
        ({"version": 1, "cancel": 7}, ErrorCode.INVALID_REQUEST),
        ({"version": 1, "cancel": "r", "service_id": "Bad Id"}, ErrorCode.INVALID_REQUEST),
    ],
)
def test_a_cancel_message_that_breaks_the_format_is_refused_with_its_code(
    document: dict[str, object], code: ErrorCode
) -> None:
    with pytest.raises(RequestRejected) as refused:
        parse_cancel(data(document))

    assert refused.value.code is code
    assert CANCEL_SCHEMA.is_valid(document) is False


def test_the_cancel_schema_accepts_what_the_parser_accepts() -> None:
    assert CANCEL_SCHEMA.is_valid({"version": 1, "cancel": "invoice-1", "service_id": "billing"})
