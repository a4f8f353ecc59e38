"""``send_at``: read from the request, and what it means at a given time."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import jsonschema
import pytest

from worker.formats.error_codes import ErrorCode
from worker.formats.request import RequestRejected, parse_request
from worker.formats.schemas import load_schema
from worker.formats.send_at import SendAtVerdict, parse_send_at, send_at_verdict

NOW = datetime(2027, 1, 1, 12, 0, tzinfo=UTC).timestamp()
REQUEST_SCHEMA = jsonschema.Draft202012Validator(load_schema("request-v1"))


def request(**fields: object) -> bytes:
    document = {
        "version": 1,
        "service_id": "billing",
        "to": "a@example.com",
        "from": "b@example.com",
        "subject": "Hi",
        "text": "Hello",
        **fields,
    }
    return json.dumps(document).encode()


def test_a_request_carries_its_send_at_as_an_aware_time() -> None:
    parsed = parse_request(
        request(send_at="2027-01-31T10:00:00.5+01:00"),
        pubsub_message_id="m",
        default_service_id=None,
    )

    assert parsed.send_at == datetime(2027, 1, 31, 9, 0, 0, 500000, tzinfo=UTC)
    assert parsed.send_at.tzinfo is not None


def test_a_request_without_send_at_has_none() -> None:
    parsed = parse_request(request(), pubsub_message_id="m", default_service_id=None)

    assert parsed.send_at is None


@pytest.mark.parametrize(
    "value",
    ["2027-01-31T09:00:00", "2027-01-31", "tomorrow", 1800000000, "2027-02-30T09:00:00Z"],
)
def test_a_send_at_without_offset_or_not_a_date_time_is_an_invalid_request(value: object) -> None:
    with pytest.raises(RequestRejected) as refused:
        parse_request(request(send_at=value), pubsub_message_id="m", default_service_id=None)

    assert refused.value.code is ErrorCode.INVALID_REQUEST
    assert "send_at" in refused.value.message


def test_the_schema_accepts_send_at_with_an_offset_and_refuses_one_without() -> None:
    assert REQUEST_SCHEMA.is_valid(json.loads(request(send_at="2027-01-31T09:00:00Z")))
    assert not REQUEST_SCHEMA.is_valid(json.loads(request(send_at="2027-01-31T09:00:00")))


def test_nanoseconds_are_cut_to_microseconds() -> None:
    assert parse_send_at("2027-01-31T09:00:00.123456789Z") == datetime(
        2027, 1, 31, 9, 0, 0, 123456, tzinfo=UTC
    )


def at(seconds_ahead: float) -> datetime:
    return datetime.fromtimestamp(NOW + seconds_ahead, timezone(timedelta(hours=-5)))


@pytest.mark.parametrize(
    ("ahead_s", "verdict"),
    [
        (-3600, SendAtVerdict.NOW),
        (60, SendAtVerdict.NOW),
        (61, SendAtVerdict.LATER),
        (30 * 24 * 3600, SendAtVerdict.LATER),
        (30 * 24 * 3600 + 1, SendAtVerdict.TOO_FAR),
    ],
)
def test_past_or_within_a_minute_is_now_and_beyond_thirty_days_is_too_far(
    ahead_s: float, verdict: SendAtVerdict
) -> None:
    assert send_at_verdict(at(ahead_s), NOW) is verdict


def test_no_send_at_is_now() -> None:
    assert send_at_verdict(None, NOW) is SendAtVerdict.NOW
