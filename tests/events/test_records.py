"""From an SQS message body to event v1, a dropped event, or a malformed message."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.events.ses_records import RECIPIENTS, eventbridge_body, ses_record, ses_tags
from worker.events.event_records import Dropped, DropReason, MalformedEvent, read_event
from worker.formats.event import EmailEvent, EventType
from worker.formats.schemas import load_schema

EVENT_VALIDATOR = jsonschema.Draft202012Validator(load_schema("event-v1"))
LATER = datetime(2026, 11, 26, 5, 0, 1, 250000, tzinfo=UTC)
SENT_AT = datetime(2026, 11, 26, 5, 0, 0, tzinfo=UTC)


def event_of(record: dict[str, Any]) -> EmailEvent:
    read = read_event(eventbridge_body(record))
    assert isinstance(read, EmailEvent)
    EVENT_VALIDATOR.validate(json.loads(read.to_json_bytes()))
    return read


def test_a_delivery_names_the_request_and_the_delivered_recipients() -> None:
    event = event_of(ses_record("Delivery"))
    assert event == EmailEvent(
        request_id="order-1842",
        service_id="billing",
        event_type=EventType.DELIVERY,
        message_id="0102018c-ses-message-0001",
        recipients=("alice@example.org",),
        occurred_at=LATER,
    )


def test_a_permanent_bounce_carries_its_type_subtype_and_bounced_recipients() -> None:
    event = event_of(ses_record("Bounce"))
    assert event.event_type is EventType.BOUNCE
    assert (event.bounce_type, event.bounce_subtype) == ("Permanent", "General")
    assert event.recipients == ("bob@example.org",)
    assert event.occurred_at == LATER


def test_a_transient_bounce_carries_its_type_and_subtype() -> None:
    event = event_of(ses_record("Bounce", bounceType="Transient", bounceSubType="MailboxFull"))
    assert (event.bounce_type, event.bounce_subtype) == ("Transient", "MailboxFull")


def test_a_complaint_carries_the_feedback_type_and_the_complaining_recipient() -> None:
    event = event_of(ses_record("Complaint", complaintSubType="OnAccountSuppressionList"))
    assert event.event_type is EventType.COMPLAINT
    assert (event.complaint_type, event.complaint_subtype) == ("abuse", "OnAccountSuppressionList")
    assert event.recipients == ("alice@example.org",)


def test_a_complaint_without_a_feedback_type_has_none() -> None:
    record = ses_record("Complaint")
    del record["complaint"]["complaintFeedbackType"]
    assert event_of(record).complaint_type is None


def test_a_delivery_delay_carries_its_delay_type_and_the_delayed_recipients() -> None:
    event = event_of(ses_record("DeliveryDelay"))
    assert event.event_type is EventType.DELIVERY_DELAY
    assert event.delay_type == "TransientCommunicationFailure"
    assert event.recipients == ("bob@example.org",)


def test_a_send_concerns_every_recipient_of_the_call_at_the_time_of_sending() -> None:
    event = event_of(ses_record("Send"))
    assert event.event_type is EventType.SEND
    assert event.recipients == tuple(RECIPIENTS)
    assert event.occurred_at == SENT_AT


def test_a_reject_carries_ses_s_reason() -> None:
    event = event_of(ses_record("Reject"))
    assert (event.event_type, event.reject_reason) == (EventType.REJECT, "Bad content")
    assert event.recipients == tuple(RECIPIENTS)


def test_only_the_type_s_own_detail_fields_are_set() -> None:
    event = event_of(ses_record("Delivery"))
    assert event.to_dict() | {"recipients": None} == {
        "version": 1,
        "request_id": "order-1842",
        "service_id": "billing",
        "event_type": "delivery",
        "message_id": "0102018c-ses-message-0001",
        "batch": None,
        "recipients": None,
        "occurred_at": "2026-11-26T05:00:01.250Z",
        "bounce_type": None,
        "bounce_subtype": None,
        "complaint_type": None,
        "complaint_subtype": None,
        "delay_type": None,
        "reject_reason": None,
    }


def test_an_encoded_request_id_and_a_batch_are_read_back() -> None:
    tags = ses_tags(request_id="order 1842/ü", email_worker_batch="2")
    event = event_of(ses_record("Delivery", tags=tags))
    assert (event.request_id, event.batch) == ("order 1842/ü", 2)


def test_an_event_without_worker_tags_is_dropped_as_untagged() -> None:
    read = read_event(eventbridge_body(ses_record("Delivery", tags=ses_tags(None, None))))
    assert read == Dropped(DropReason.UNTAGGED, "Delivery", "0102018c-ses-message-0001")


def test_an_event_with_no_tags_at_all_is_dropped_as_untagged() -> None:
    record = ses_record("Bounce")
    del record["mail"]["tags"]
    read = read_event(eventbridge_body(record))
    assert isinstance(read, Dropped)
    assert read.reason == DropReason.UNTAGGED


def test_an_event_whose_worker_tags_name_no_request_is_dropped_as_unknown_tags() -> None:
    tags = ses_tags(None, None, email_worker_service_id="billing")
    read = read_event(eventbridge_body(ses_record("Delivery", tags=tags)))
    assert isinstance(read, Dropped)
    assert read.reason == DropReason.UNKNOWN_TAGS


def test_an_open_event_is_dropped_as_an_unsupported_type() -> None:
    read = read_event(eventbridge_body(ses_record("Open")))
    assert read == Dropped(DropReason.UNSUPPORTED_TYPE, "Open", "0102018c-ses-message-0001")


def _without(path: str) -> str:
    record = ses_record("Bounce")
    *parents, last = path.split(".")
    node = record
    for key in parents:
        node = node[key]
    del node[last]
    return eventbridge_body(record, detail_type="Email Bounced")


@pytest.mark.parametrize(
    "body",
    [
        "",
        "not json",
        "[1, 2]",
        '"a string"',
        json.dumps({"detail": ses_record()}),  # no detail-type: not from EventBridge
        json.dumps({"detail-type": "Email Delivered", "detail": "text"}),
        json.dumps({"detail-type": "Email Delivered", "detail": {"mail": {}}}),
        _without("eventType"),
        _without("mail.messageId"),
        _without("bounce"),
        _without("bounce.bouncedRecipients"),
        eventbridge_body(ses_record("Bounce", bouncedRecipients=[{"emailAddress": 7}])),
        eventbridge_body(ses_record("Bounce", bounceType=["Permanent"])),
        eventbridge_body(ses_record("Delivery", tags={"email_worker_service_id": "billing"})),  # type: ignore[dict-item]
        eventbridge_body(ses_record("Delivery", tags=[])),  # type: ignore[arg-type]
        "[" * 100_000 + "]" * 100_000,
    ],
    ids=lambda body: body[:40] or "empty",
)
def test_a_body_that_is_not_an_ses_event_from_eventbridge_is_malformed(body: str) -> None:
    with pytest.raises(MalformedEvent):
        read_event(body)


def test_an_event_without_any_usable_time_is_malformed() -> None:
    record = ses_record("Delivery", timestamp="yesterday")
    record["mail"]["timestamp"] = None
    body = json.loads(eventbridge_body(record))
    del body["time"]
    with pytest.raises(MalformedEvent, match="timestamp"):
        read_event(json.dumps(body))


def test_an_event_s_own_time_falls_back_to_the_send_s() -> None:
    record = ses_record("Delivery")
    del record["delivery"]["timestamp"]
    assert event_of(record).occurred_at == SENT_AT


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    envelope=st.fixed_dictionaries(
        {"detail-type": st.just("Email Bounced")}, optional={"time": _json}
    ),
    detail=st.dictionaries(
        st.sampled_from(["eventType", "mail", "bounce", "delivery", "send"]), _json, max_size=4
    ),
)
def test_reading_arbitrary_records_only_ever_raises_malformed_event(
    envelope: dict[str, Any], detail: dict[str, Any]
) -> None:
    body = json.dumps({**envelope, "detail": detail})
    with contextlib.suppress(MalformedEvent):
        read_event(body)
