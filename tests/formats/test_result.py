"""Result format v1, the error code table, the schemas package and the format docs."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.formats.error_codes import ErrorCode, ResultStatus
from worker.formats.result import EmailResult, ResultError, format_timestamp
from worker.formats.schemas import SCHEMA_NAMES, load_schema
from worker.sending import errors

RESULT_SCHEMA = load_schema("result-v1")
RESULT_VALIDATOR = jsonschema.Draft202012Validator(
    RESULT_SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)
WHEN = datetime(2026, 11, 26, 5, 0, 0, 123456, tzinfo=UTC)
DOCS = Path(__file__).resolve().parents[2] / "docs" / "formats.md"


def sent(**changes: Any) -> EmailResult:
    values: dict[str, Any] = {
        "request_id": "order-1",
        "service_id": "billing",
        "message_ids": ["0100018f-ses-id"],
        "pubsub_message_id": "pubsub-1",
        "attempt": 1,
        "completed_at": WHEN,
    }
    values.update(changes)
    return EmailResult.sent(**values)


def rejected(**changes: Any) -> EmailResult:
    values: dict[str, Any] = {
        "request_id": "pubsub-2",
        "service_id": None,
        "pubsub_message_id": "pubsub-2",
        "completed_at": WHEN,
    }
    values.update(changes)
    return EmailResult.for_error(ErrorCode.INVALID_JSON, "the message data is not JSON", **values)


# --------------------------------------------------------------------------- serialisation


def test_sent_result_serialises_to_compact_json_with_every_field() -> None:
    assert sent().to_json_bytes() == (
        b'{"version":1,"request_id":"order-1","service_id":"billing","status":"sent",'
        b'"message_ids":["0100018f-ses-id"],"error":null,"attempt":1,'
        b'"pubsub_message_id":"pubsub-1","completed_at":"2026-11-26T05:00:00.123Z"}'
    )


def test_rejected_result_has_error_and_null_service_when_unknown() -> None:
    document = json.loads(rejected().to_json_bytes())
    assert document["status"] == "rejected"
    assert document["service_id"] is None
    assert document["message_ids"] == []
    assert document["error"] == {"code": "invalid_json", "message": "the message data is not JSON"}
    assert document["attempt"] is None


def test_non_ascii_error_message_is_written_as_utf8() -> None:
    result = EmailResult.for_error(
        "invalid_request", "naïve", request_id="r", service_id=None, pubsub_message_id="p"
    )
    assert "naïve".encode() in result.to_json_bytes()


def test_result_round_trips_through_json() -> None:
    for result in (sent(), rejected(), sent(service_id=None, attempt=None, message_ids=[])):
        assert EmailResult.from_json_bytes(result.to_json_bytes()) == result


def test_from_json_bytes_refuses_other_shapes() -> None:
    document = json.loads(sent().to_json_bytes())
    for broken in ({**document, "extra": 1}, {**document, "version": 2}, [document]):
        with pytest.raises(ValueError, match=r"."):
            EmailResult.from_json_bytes(json.dumps(broken).encode())


# --------------------------------------------------------------------------- attributes


def test_pubsub_attributes_are_strings_with_status_ids_and_error_code() -> None:
    assert rejected(service_id="billing").pubsub_attributes() == {
        "version": "1",
        "request_id": "pubsub-2",
        "status": "rejected",
        "service_id": "billing",
        "error_code": "invalid_json",
    }


def test_pubsub_attributes_omit_service_id_when_unknown_and_error_code_when_sent() -> None:
    assert "service_id" not in rejected().pubsub_attributes()
    assert "error_code" not in sent().pubsub_attributes()
    assert all(isinstance(v, str) for v in sent().pubsub_attributes().values())


# --------------------------------------------------------------------------- invariants


def test_plain_strings_for_status_and_code_are_accepted() -> None:
    # worker.processing.outputs passes the strings carried by Outcome and EmailError.
    result = EmailResult(
        request_id="r",
        service_id="s",
        status="failed",
        message_ids=[],
        error=ResultError(code="throttled", message="slow down"),
        attempt=5,
        pubsub_message_id="p",
        completed_at="2026-11-26T05:00:00.000Z",
    )
    assert result.status is ResultStatus.FAILED
    assert result.error is not None
    assert result.error.code is ErrorCode.THROTTLED


def test_sent_result_with_an_error_is_refused() -> None:
    with pytest.raises(ValueError, match="error"):
        EmailResult(
            request_id="r",
            service_id="s",
            status="sent",
            error=ResultError("internal_error", "x"),
            pubsub_message_id="p",
            completed_at=WHEN,
        )


@pytest.mark.parametrize("status", ["rejected", "failed"])
def test_unsent_result_without_an_error_is_refused(status: str) -> None:
    with pytest.raises(ValueError, match="error"):
        EmailResult(
            request_id="r", service_id="s", status=status, pubsub_message_id="p", completed_at=WHEN
        )


def test_unknown_status_is_refused() -> None:
    with pytest.raises(ValueError, match="retry"):
        EmailResult(
            request_id="r", service_id="s", status="retry", pubsub_message_id="p", completed_at=WHEN
        )


def test_unknown_error_code_is_refused() -> None:
    with pytest.raises(ValueError, match="bogus"):
        ResultError("bogus", "x")


@pytest.mark.parametrize("attempt", [0, -1, True])
def test_attempt_below_one_is_refused(attempt: int) -> None:
    with pytest.raises(ValueError, match="attempt"):
        sent(attempt=attempt)


def test_partially_sent_failure_keeps_the_accepted_message_ids() -> None:
    result = EmailResult.for_error(
        ErrorCode.PARTIALLY_SENT,
        "1 batch was sent",
        request_id="r",
        service_id="s",
        pubsub_message_id="p",
        message_ids=["id-1"],
    )
    assert (result.status, result.message_ids) == (ResultStatus.FAILED, ("id-1",))


def test_for_error_uses_the_documented_status_of_the_code() -> None:
    for code in ErrorCode:
        result = EmailResult.for_error(
            code, "m", request_id="r", service_id=None, pubsub_message_id="p"
        )
        assert result.status is code.status


def test_long_error_message_is_truncated_to_1000_characters() -> None:
    error = ResultError("internal_error", "x" * 5000)
    assert len(error.message) == 1000
    assert error.message.endswith("...")


# --------------------------------------------------------------------------- timestamps


def test_completed_at_is_rfc3339_utc_with_milliseconds() -> None:
    cet = timezone(timedelta(hours=1))
    moment = datetime(2026, 11, 26, 6, 0, 0, 999999, tzinfo=cet)
    assert format_timestamp(moment) == "2026-11-26T05:00:00.999Z"


def test_naive_completed_at_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        sent(completed_at=datetime(2026, 11, 26, 5, 0, 0))


@pytest.mark.parametrize(
    "text", ["2026-11-26T05:00:00Z", "2026-11-26T05:00:00.123+00:00", "2026-11-26 05:00:00.123Z"]
)
def test_completed_at_string_in_another_format_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="completed_at"):
        EmailResult(
            request_id="r", service_id="s", status="sent", pubsub_message_id="p", completed_at=text
        )


def test_completed_at_defaults_to_now() -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    parsed = datetime.fromisoformat(sent(completed_at=None).completed_at.replace("Z", "+00:00"))
    assert before <= parsed <= datetime.now(UTC)


# --------------------------------------------------------------------------- schema


def test_result_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(RESULT_SCHEMA)


def test_results_validate_against_the_result_schema() -> None:
    for result in (sent(), rejected(), sent(service_id=None, attempt=None, message_ids=[])):
        RESULT_VALIDATOR.validate(json.loads(result.to_json_bytes()))


def test_schema_refuses_a_sent_result_with_an_error() -> None:
    document = json.loads(sent().to_json_bytes())
    document["error"] = {"code": "internal_error", "message": "x"}
    assert not RESULT_VALIDATOR.is_valid(document)


def test_schema_error_codes_and_statuses_match_the_enums() -> None:
    codes = RESULT_SCHEMA["$defs"]["error"]["properties"]["code"]["enum"]
    assert codes == [code.value for code in ErrorCode]
    assert RESULT_SCHEMA["properties"]["status"]["enum"] == [s.value for s in ResultStatus]


@settings(max_examples=200, deadline=None)
@given(
    request_id=st.text(),
    service_id=st.none() | st.from_regex(r"[a-z0-9][a-z0-9_-]{0,62}", fullmatch=True),
    code=st.none() | st.sampled_from(list(ErrorCode)),
    message=st.text(max_size=2000),
    message_ids=st.lists(st.text(max_size=40), max_size=3),
    attempt=st.none() | st.integers(min_value=1, max_value=10_000),
    moment=st.datetimes(timezones=st.timezones()),
)
def test_any_result_validates_against_the_schema_and_round_trips(
    request_id: str,
    service_id: str | None,
    code: ErrorCode | None,
    message: str,
    message_ids: list[str],
    attempt: int | None,
    moment: datetime,
) -> None:
    common: dict[str, Any] = {
        "request_id": request_id,
        "service_id": service_id,
        "pubsub_message_id": "p",
        "attempt": attempt,
        "completed_at": moment,
        "message_ids": message_ids,
    }
    if code is None:
        result = EmailResult.sent(**common)
    else:
        result = EmailResult.for_error(code, message, **common)
    data = result.to_json_bytes()
    RESULT_VALIDATOR.validate(json.loads(data))
    assert EmailResult.from_json_bytes(data) == result


def test_load_schema_refuses_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown schema"):
        load_schema("../request-v1")


def test_every_schema_loads_with_its_id() -> None:
    for name in SCHEMA_NAMES:
        assert load_schema(name)["$id"] == f"urn:email-worker:schema:{name}"


# --------------------------------------------------------------------------- codes and docs


def test_every_error_code_has_a_status_and_a_meaning() -> None:
    for code in ErrorCode:
        assert code.status not in (ResultStatus.SENT, ResultStatus.SCHEDULED)
        assert code.meaning


def test_codes_raised_by_the_session_library_are_result_error_codes() -> None:
    subclasses: list[type[errors.EmailError]] = [errors.EmailError]
    for cls in subclasses:
        subclasses.extend(cls.__subclasses__())
        assert ErrorCode(cls.code)


def test_docs_table_lists_every_error_code_with_its_status() -> None:
    rows = dict(
        re.findall(
            r"^\| `([a-z0-9_]+)` \| (sent|rejected|failed|cancelled|cancel_refused) \|",
            DOCS.read_text(),
            re.M,
        )
    )
    assert rows == {code.value: code.status.value for code in ErrorCode}


def test_result_example_in_the_docs_matches_the_schema() -> None:
    # Up to the next section (## Events has an example of its own).
    result_part = DOCS.read_text().split("## Result")[1].split("\n## ")[0]
    (example,) = re.findall(r"```json\n(.*?)```", result_part, re.S)
    document = json.loads(example)
    RESULT_VALIDATOR.validate(document)
    assert EmailResult.from_json_bytes(example.encode()).to_dict() == document


def test_a_result_with_a_template_validates_against_the_schema_and_round_trips() -> None:
    result = EmailResult(
        request_id="r1",
        service_id="billing",
        status="sent",
        message_ids=["m"],
        pubsub_message_id="p1",
        completed_at=datetime.now(UTC),
        template=("invoice", 2, "de"),
    )
    document = json.loads(result.to_json_bytes())
    jsonschema.Draft202012Validator(load_schema("result-v1")).validate(document)
    assert document["template"] == {"name": "invoice", "version": 2, "language": "de"}
    assert EmailResult.from_json_bytes(result.to_json_bytes()).template == ("invoice", 2, "de")


def test_a_scheduled_result_says_when_validates_and_round_trips() -> None:
    result = EmailResult(
        request_id="order-1",
        service_id="billing",
        status="scheduled",
        pubsub_message_id="pubsub-1",
        completed_at=WHEN,
        send_at="2027-01-31T09:00:00.000Z",
    )

    document = result.to_dict()
    RESULT_VALIDATOR.validate(document)
    assert (document["status"], document["error"], document["send_at"]) == (
        "scheduled",
        None,
        "2027-01-31T09:00:00.000Z",
    )
    assert EmailResult.from_json_bytes(result.to_json_bytes()) == result


def test_a_result_of_any_other_status_has_no_send_at() -> None:
    with pytest.raises(ValueError, match="scheduled"):
        EmailResult(
            request_id="r",
            service_id="billing",
            status="sent",
            pubsub_message_id="p",
            completed_at=WHEN,
            send_at="2027-01-31T09:00:00.000Z",
        )


def test_a_cancelled_result_carries_its_code_and_validates() -> None:
    result = EmailResult.for_error(
        ErrorCode.CANCELLED,
        "cancelled by its service",
        request_id="order-1",
        service_id="billing",
        pubsub_message_id="pubsub-1",
        completed_at=WHEN,
    )

    RESULT_VALIDATOR.validate(result.to_dict())
    assert result.status is ResultStatus.CANCELLED
