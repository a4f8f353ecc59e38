"""The events reader against moto's EventBridge and SQS and the Pub/Sub emulator."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import Future
from typing import Any

from tests.events.conftest import (
    EVENTS_ROLE,
    EventsTopic,
    MakeReader,
    wait_until,
)
from tests.events.ses_records import eventbridge_body, ses_record, ses_tags
from tests.support.fault_proxy import FaultProxy
from tests.support.ses_events import SesEventsQueue
from worker.ledger import LedgerKey, MemoryLedger, SqliteLedger
from worker.ledger.send_counts import hour_of
from worker.ledger.service_count_stores import service_counts_of
from worker.ledger.service_counter import ServiceCounter


def counter(reader: Any, name: str, **labels: str) -> float:
    value = reader.metrics.registry.get_sample_value(f"email_worker_events_{name}_total", labels)
    return value or 0.0


def test_an_ses_event_on_the_bus_is_published_as_event_v1_with_filter_attributes(
    ses_events: SesEventsQueue, events_topic: EventsTopic, make_reader: MakeReader
) -> None:
    ses_events.put_event(ses_record("Bounce"))
    assert make_reader().poll_once() == 1
    [message] = events_topic.published()
    event = json.loads(message.message.data)
    assert event["event_type"] == "bounce"
    assert (event["request_id"], event["service_id"]) == ("order-1842", "billing")
    assert (event["bounce_type"], event["recipients"]) == ("Permanent", ["bob@example.org"])
    assert dict(message.message.attributes) == {
        "version": "1",
        "request_id": "order-1842",
        "service_id": "billing",
        "event_type": "bounce",
    }


def test_a_published_event_s_sqs_message_is_deleted(
    ses_events: SesEventsQueue, events_topic: EventsTopic, make_reader: MakeReader
) -> None:
    ses_events.put_event(ses_record("Delivery"))
    reader = make_reader()
    reader.poll_once()
    assert ses_events.counts() == (0, 0)
    assert counter(reader, "published", event_type="delivery") == 1


def test_the_sqs_message_is_deleted_only_after_the_publish_is_confirmed(
    ses_events: SesEventsQueue, events_topic: EventsTopic, make_reader: MakeReader
) -> None:
    release = threading.Event()

    def held_publish(topic: str, data: bytes, attributes: Any) -> Future[Any]:
        # Pub/Sub has the message, but the reader is told so only once the test says.
        real = events_topic.publish(topic, data, attributes)
        held: Future[Any] = Future()

        def confirm_when_released() -> None:
            release.wait(10)
            held.set_result(real.result(timeout=10))

        threading.Thread(target=confirm_when_released).start()
        return held

    ses_events.put_event(ses_record("Delivery"))
    reader = make_reader(publish=held_publish)
    polling = threading.Thread(target=reader.poll_once)
    polling.start()
    wait_until(lambda: bool(events_topic.emulator.pull(events_topic.subscription, ack=False)))
    assert sum(ses_events.counts()) == 1  # received, published, unconfirmed: still there
    release.set()
    polling.join(timeout=10)
    assert ses_events.counts() == (0, 0)


def test_a_failed_publish_leaves_the_sqs_message_to_be_received_again(
    ses_events: SesEventsQueue, events_topic: EventsTopic, make_reader: MakeReader
) -> None:
    def failing_publish(topic: str, data: bytes, attributes: Any) -> Future[Any]:
        failed: Future[Any] = Future()
        failed.set_exception(RuntimeError("Pub/Sub is unavailable"))
        return failed

    ses_events.put_event(ses_record("Delivery"))
    failing = make_reader(publish=failing_publish)
    failing.poll_once()
    assert counter(failing, "publish_failures") == 1
    assert sum(ses_events.counts()) == 1
    # Once its visibility timeout has passed, a reader that can publish gets it again.
    working = make_reader(wait_time_s=5)
    assert working.poll_once() == 1
    assert len(events_topic.published()) == 1
    assert ses_events.counts() == (0, 0)


def test_an_event_of_a_send_the_worker_did_not_make_is_dropped_counted_and_deleted(
    ses_events: SesEventsQueue, events_topic: EventsTopic, make_reader: MakeReader
) -> None:
    ses_events.put_event(ses_record("Delivery", tags=ses_tags(None, None)))
    reader = make_reader()
    reader.poll_once()
    assert counter(reader, "dropped", reason="untagged") == 1
    assert ses_events.counts() == (0, 0)
    assert events_topic.published(timeout_s=1) == []


def test_an_event_with_worker_tags_that_name_no_request_is_dropped_and_counted(
    ses_events: SesEventsQueue, events_topic: EventsTopic, make_reader: MakeReader
) -> None:
    tags = ses_tags(None, None, email_worker_request_id="b64_not-canonical")
    ses_events.put_event(ses_record("Bounce", tags=tags))
    reader = make_reader()
    reader.poll_once()
    assert counter(reader, "dropped", reason="unknown_tags") == 1
    assert ses_events.counts() == (0, 0)
    assert events_topic.published(timeout_s=1) == []


def test_a_malformed_message_goes_to_the_dead_letter_queue_while_the_reader_goes_on(
    ses_events: SesEventsQueue,
    events_topic: EventsTopic,
    make_reader: MakeReader,
    running: Any,
) -> None:
    ses_events.send_body("this is not an SES event")
    reader = make_reader()
    running(reader)
    wait_until(lambda: ses_events.dead_letters() == ["this is not an SES event"], timeout_s=30)
    ses_events.put_event(ses_record("Complaint"))
    [message] = events_topic.published(timeout_s=15)
    assert message.message.attributes["event_type"] == "complaint"
    assert counter(reader, "malformed", reason="not JSON") >= 1


def test_a_repeated_event_is_published_again(
    ses_events: SesEventsQueue, events_topic: EventsTopic, make_reader: MakeReader
) -> None:
    # SQS and EventBridge deliver at least once; consumers see the repeat, which is harmless.
    body = eventbridge_body(ses_record("Send"))
    ses_events.send_body(body)
    ses_events.send_body(body)
    reader = make_reader()
    published: list[dict[str, Any]] = []

    def both_published() -> bool:
        reader.poll_once()
        published.extend(json.loads(m.message.data) for m in events_topic.published(1.0))
        return len(published) == 2

    wait_until(both_published)
    assert published[0] == published[1]
    assert ses_events.counts() == (0, 0)


def test_the_reader_reads_as_its_role_with_the_google_identity_and_no_keys(
    fault_proxy: FaultProxy,
    ses_events: SesEventsQueue,
    events_topic: EventsTopic,
    make_reader: MakeReader,
) -> None:
    ses_events.put_event(ses_record("Delivery"))
    make_reader().poll_once()
    [sts_call] = [r.request for r in fault_proxy.requests if r.kind == "sts_web_identity"]
    assert sts_call.form["RoleArn"] == EVENTS_ROLE
    assert sts_call.form["RoleSessionName"] == "email-worker-events"
    assert len(events_topic.published()) == 1


def test_the_reader_keeps_polling_after_sqs_fails(
    ses_events: SesEventsQueue,
    events_topic: EventsTopic,
    make_reader: MakeReader,
    running: Any,
) -> None:
    class FlakySqs:
        """SQS whose first two receives fail."""

        def __init__(self, sqs: Any) -> None:
            self.sqs = sqs
            self.failures = 2

        def receive_message(self, **kwargs: Any) -> Any:
            if self.failures:
                self.failures -= 1
                raise ConnectionError("SQS is unreachable")
            return self.sqs.receive_message(**kwargs)

        def delete_message_batch(self, **kwargs: Any) -> Any:
            return self.sqs.delete_message_batch(**kwargs)

    attempts: list[float] = []
    reader = make_reader(wrap_sqs=FlakySqs, sleep=attempts.append)
    ses_events.put_event(ses_record("Delivery"))
    running(reader)
    assert len(events_topic.published(timeout_s=15)) == 1
    assert attempts[:2] == [1.0, 2.0]  # backing off, doubling
    assert counter(reader, "sqs_failures", call="receive") == 2


def test_each_events_recipients_statuses_are_recorded_in_the_ledger(
    ses_events: SesEventsQueue, events_topic: EventsTopic, make_reader: MakeReader, tmp_path: Any
) -> None:
    with SqliteLedger(tmp_path / "ledger.db", claim_lease_s=90) as ledger:
        ses_events.put_event(ses_record("Delivery"))
        ses_events.put_event(ses_record("Bounce"))
        reader = make_reader(ledger=ledger)
        while reader.poll_once():
            pass
        statuses = ledger.statuses(LedgerKey("billing", "order-1842"))
    by_type = {s.event_type: s for s in statuses}
    assert set(by_type) == {"delivery", "bounce"}
    assert by_type["bounce"].recipient == "bob@example.org"
    assert by_type["bounce"].detail is not None
    assert by_type["bounce"].detail.startswith("Permanent/")
    assert ses_events.counts() == (0, 0)


def test_an_event_the_ledger_cannot_record_is_left_to_be_received_again(
    ses_events: SesEventsQueue, events_topic: EventsTopic, make_reader: MakeReader, tmp_path: Any
) -> None:
    broken = SqliteLedger(tmp_path / "ledger.db", claim_lease_s=90)
    broken.close()  # every call now fails as LedgerUnavailable
    ses_events.put_event(ses_record("Delivery"))
    reader = make_reader(ledger=broken)
    reader.poll_once()
    assert counter(reader, "ledger_failures") == 1
    assert sum(ses_events.counts()) == 1


def test_hard_bounces_and_complaints_are_counted_for_the_services_page(
    ses_events: SesEventsQueue, events_topic: EventsTopic, make_reader: MakeReader
) -> None:
    ledger = MemoryLedger(claim_lease_s=60)
    counts = ServiceCounter(ledger, flush_interval_s=3600)
    ses_events.put_event(ses_record("Bounce", message_id="m-1"))
    soft = ses_record("Bounce", message_id="m-2", bounceType="Transient", bounceSubType="General")
    ses_events.put_event(soft)
    ses_events.put_event(ses_record("Complaint", message_id="m-3"))
    ses_events.put_event(ses_record("Delivery", message_id="m-4"))
    reader = make_reader(outcome_counts=counts)
    wait_until(lambda: reader.poll_once() == 0 and ses_events.counts() == (0, 0))
    counts.close()
    now = hour_of(time.time())
    hours = service_counts_of(ledger).read("billing", range(now - 1, now + 1))
    assert list(hours.values()) == [{"bounced": 1, "complained": 1}]
