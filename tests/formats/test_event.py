"""Event format v1: the JSON, the attributes, the schema and the documentation agree."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import jsonschema
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.formats.event import EmailEvent, EventType
from worker.formats.schemas import load_schema

EVENT_SCHEMA = load_schema("event-v1")
EVENT_VALIDATOR = jsonschema.Draft202012Validator(EVENT_SCHEMA)
DOCS = Path(__file__).resolve().parents[2] / "docs" / "formats.md"


def bounce(**changes: Any) -> EmailEvent:
    values: dict[str, Any] = {
        "request_id": "order-1842",
        "service_id": "shop",
        "event_type": EventType.BOUNCE,
        "message_id": "0100018f-ses-id",
        "recipients": ("john@example.com",),
        "occurred_at": datetime(2026, 11, 26, 6, 0, 3, 120000, tzinfo=timezone(timedelta(hours=1))),
        "bounce_type": "Permanent",
        "bounce_subtype": "General",
    }
    values.update(changes)
    return EmailEvent(**values)


def test_the_event_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(EVENT_SCHEMA)


def test_an_event_is_json_with_every_field_and_its_time_in_utc() -> None:
    document = json.loads(bounce().to_json_bytes())
    EVENT_VALIDATOR.validate(document)
    assert document["occurred_at"] == "2026-11-26T05:00:03.120Z"
    assert set(document) == set(EVENT_SCHEMA["required"]) == set(EVENT_SCHEMA["properties"])


def test_an_event_s_attributes_are_for_filtering_by_request_service_and_type() -> None:
    assert bounce().pubsub_attributes() == {
        "version": "1",
        "request_id": "order-1842",
        "service_id": "shop",
        "event_type": "bounce",
    }


def test_the_schema_s_event_types_are_the_enum_s() -> None:
    assert EVENT_SCHEMA["properties"]["event_type"]["enum"] == [t.value for t in EventType]


def test_the_repr_leaves_out_the_recipients() -> None:
    assert "john@example.com" not in repr(bounce())


@settings(max_examples=200, deadline=None)
@given(
    request_id=st.text(min_size=1),
    event_type=st.sampled_from(list(EventType)),
    recipients=st.lists(st.emails(), max_size=3).map(tuple),
    batch=st.none() | st.integers(min_value=0, max_value=19),
    moment=st.datetimes(timezones=st.timezones()),
    detail=st.none() | st.text(max_size=30),
)
def test_any_event_validates_against_the_schema(
    request_id: str,
    event_type: EventType,
    recipients: tuple[str, ...],
    batch: int | None,
    moment: datetime,
    detail: str | None,
) -> None:
    event = EmailEvent(
        request_id=request_id,
        service_id="billing",
        event_type=event_type,
        message_id="m",
        recipients=recipients,
        occurred_at=moment,
        batch=batch,
        bounce_type=detail,
        reject_reason=detail,
    )
    document = json.loads(event.to_json_bytes())
    EVENT_VALIDATOR.validate(document)
    assert document["request_id"] == request_id
    assert datetime.fromisoformat(document["occurred_at"]) - moment.astimezone(UTC) < timedelta(
        milliseconds=1
    )


def test_the_event_example_in_the_docs_matches_the_schema() -> None:
    events_part = DOCS.read_text().split("\n## Events")[1]
    (example,) = re.findall(r"```json\n(.*?)```", events_part, re.S)
    EVENT_VALIDATOR.validate(json.loads(example))


def test_the_docs_list_every_event_field() -> None:
    events_part = DOCS.read_text().split("\n## Events")[1]
    documented = set(re.findall(r"^\| `([a-z_]+)`(?:, `([a-z_]+)`)? \|", events_part, re.M))
    names = {name for pair in documented for name in pair if name}
    assert set(EVENT_SCHEMA["properties"]) <= names
