"""The worker's SES tags (worker.formats.tags): names, the request id mapping, reading them back."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.formats import tags
from worker.formats.request import MAX_REQUEST_ID_LENGTH
from worker.formats.tags import (
    ENCODED_MARKER,
    MAX_TAG_VALUE_LENGTH,
    WorkerTags,
    decode_request_id,
    encode_request_id,
    is_reserved_tag_name,
    read_worker_tags,
    request_id_tag_names,
    worker_tags,
)
from worker.sending import call_tags as sending_tags

SES_TAG_VALUE = re.compile(r"[A-Za-z0-9_-]{1,255}")

# Every request id the request format accepts: 1 to 128 printable characters.
_PRINTABLE = st.characters(exclude_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"))
request_ids = st.text(_PRINTABLE | st.just(" "), min_size=1, max_size=MAX_REQUEST_ID_LENGTH)
# Mostly ids in the tag alphabet, which must stay as they are.
plain_ids = st.from_regex(r"[A-Za-z0-9_-]{1,128}", fullmatch=True)


@settings(max_examples=500, deadline=None)
@given(request_id=request_ids | plain_ids)
def test_every_valid_request_id_round_trips_through_its_tag_values(request_id: str) -> None:
    values = encode_request_id(request_id)
    assert decode_request_id(values) == request_id


@settings(max_examples=500, deadline=None)
@given(request_id=request_ids)
def test_every_tag_value_of_a_request_id_is_one_ses_accepts(request_id: str) -> None:
    values = encode_request_id(request_id)
    assert 1 <= len(values) <= len(request_id_tag_names())
    assert all(SES_TAG_VALUE.fullmatch(value) for value in values)


@settings(max_examples=200, deadline=None)
@given(request_id=plain_ids.filter(lambda i: not i.startswith(ENCODED_MARKER)))
def test_a_request_id_in_the_tag_alphabet_is_its_own_tag_value(request_id: str) -> None:
    assert encode_request_id(request_id) == (request_id,)


def test_a_plain_request_id_that_starts_with_the_marker_is_encoded() -> None:
    values = encode_request_id("b64_abc")
    assert values == ("b64_YjY0X2FiYw",)
    assert decode_request_id(values) == "b64_abc"


def test_a_request_id_with_other_characters_is_base64url_of_its_utf8() -> None:
    assert encode_request_id("order 1842/ü") == ("b64_b3JkZXIgMTg0Mi_DvA",)


def test_the_longest_non_ascii_request_id_takes_three_tags() -> None:
    request_id = "\U0001f600" * MAX_REQUEST_ID_LENGTH  # 512 bytes of UTF-8
    values = encode_request_id(request_id)
    assert [len(v) for v in values] == [MAX_TAG_VALUE_LENGTH, MAX_TAG_VALUE_LENGTH, 177]
    assert decode_request_id(values) == request_id


@pytest.mark.parametrize(
    "values",
    [
        (),
        ("",),
        ("has space",),
        ("b64_YWJj",),  # "abc" encoded, but "abc" is its own value
        ("b64_YQ",),  # "a": likewise
        ("b64_!",),
        ("b64_A",),  # not a whole byte
        ("b64_gA",),  # byte 0x80: not UTF-8
        ("abc", "def"),  # a plain id never continues
    ],
)
def test_tag_values_the_encoding_cannot_produce_are_refused(values: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="request id"):
        decode_request_id(values)


def test_the_worker_tags_name_the_service_and_the_request() -> None:
    assert worker_tags(service_id="billing", request_id="order-1") == (
        ("email_worker_service_id", "billing"),
        ("email_worker_request_id", "order-1"),
    )


def test_the_worker_tags_of_one_batch_name_it() -> None:
    assert worker_tags(service_id="billing", request_id="r", batch=2)[-1] == (
        "email_worker_batch",
        "2",
    )


def test_the_sending_library_s_batch_tag_is_the_worker_s() -> None:
    assert sending_tags.BATCH_TAG == tags.BATCH_TAG
    assert sending_tags.BATCH_TAG.startswith(tags.TAG_PREFIX)


@pytest.mark.parametrize(
    "name",
    [
        "email_worker_request_id",
        "email_worker_x",
        "Email_Worker_x",
        "EMAIL-WORKER-x",
        "email-worker_",
    ],
)
def test_names_with_the_worker_prefix_are_reserved(name: str) -> None:
    assert is_reserved_tag_name(name)


@pytest.mark.parametrize("name", ["email", "email_workers", "my_email_worker_x", "campaign"])
def test_other_names_are_free(name: str) -> None:
    assert not is_reserved_tag_name(name)


@settings(max_examples=200, deadline=None)
@given(
    service_id=st.from_regex(r"[a-z0-9][a-z0-9_-]{0,62}", fullmatch=True),
    request_id=request_ids,
    batch=st.none() | st.integers(min_value=0, max_value=19),
)
def test_an_event_s_tags_read_back_as_the_request_they_were_written_for(
    service_id: str, request_id: str, batch: int | None
) -> None:
    written = dict(worker_tags(service_id=service_id, request_id=request_id, batch=batch))
    written["campaign"] = "spring"  # a requester's own tag is ignored
    assert read_worker_tags(written) == WorkerTags(service_id, request_id, batch)


def test_an_event_without_worker_tags_reads_as_none() -> None:
    assert read_worker_tags({"campaign": "spring", "ses:from-domain": "example.com"}) is None


@pytest.mark.parametrize(
    "found",
    [
        {"email_worker_request_id": "r"},
        {"email_worker_service_id": "billing"},
        {"email_worker_service_id": "Not A Service", "email_worker_request_id": "r"},
        {"email_worker_service_id": "billing", "email_worker_request_id_2": "r"},
        {"email_worker_service_id": "billing", "email_worker_request_id": "b64_YWJj"},
        {"email_worker_service_id": "b", "email_worker_request_id": "r", "email_worker_batch": "x"},
    ],
)
def test_worker_tags_that_name_no_request_are_refused(found: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="tag"):
        read_worker_tags(found)
