"""A new user's path from a request to its recipients' fate, on the local stack.

The worker sends a request (Pub/Sub emulator, moto); SES's delivery and bounce events for
that very message (its id and the tags moto recorded, as SES would echo them) go through
moto's EventBridge to SQS; the events reader publishes them to the events topic and records
them in the worker's ledger; ``email-worker status`` shows them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.events.conftest import EventsTopic, MakeReader
from tests.events.ses_records import ses_record, ses_tags
from tests.support.cli_runner import cli_env, invoke
from tests.support.ses_events import SesEventsQueue
from tests.support.worker_stack import Stack, make_stack, request
from worker.ledger import open_ledger


@pytest.fixture
def stack(pubsub_env: Any, fault_proxy: Any, tmp_path: Path) -> Stack:
    return make_stack(pubsub_env, tmp_path, fault_proxy.endpoint)


def sent_through_the_worker(stack: Stack, moto: Any) -> tuple[str, dict[str, list[str]]]:
    """Send one request to two recipients; return SES's message id and its tags as SES's
    events carry them."""
    with stack.running():
        stack.publish(request(request_id="order-7", to=["alice@example.org", "bob@example.org"]))
        [result] = stack.results(1)
    assert result["status"] == "sent"
    [sent] = moto.sent_messages()
    assert sent.tags is not None
    tags = ses_tags(None, None)
    tags.update({name: [value] for name, value in sent.tags.items()})
    return str(result["message_ids"][0]), tags


def test_a_sent_requests_delivery_and_bounce_reach_the_events_topic_and_status(
    stack: Stack,
    moto: Any,
    ses_events: SesEventsQueue,
    events_topic: EventsTopic,
    make_reader: MakeReader,
) -> None:
    message_id, tags = sent_through_the_worker(stack, moto)
    ses_events.put_event(ses_record("Send", message_id=message_id, tags=tags))
    ses_events.put_event(ses_record("Delivery", message_id=message_id, tags=tags))
    ses_events.put_event(ses_record("Bounce", message_id=message_id, tags=tags))
    settings = stack.settings()
    ledger = open_ledger(
        settings.ledger.url, project=None, claim_lease_s=90, retention_s=settings.ledger.retention_s
    )
    assert ledger is not None
    with ledger:
        reader = make_reader(ledger=ledger)
        while reader.poll_once():
            pass

    events = [json.loads(m.message.data) for m in events_topic.published()]
    assert {(e["request_id"], e["service_id"]) for e in events} == {("order-7", "billing")}
    assert sorted(e["event_type"] for e in events) == ["bounce", "delivery", "send"]

    shown = invoke(cli_env(stack), "status", "billing", "order-7", "--json")
    assert shown.exit_code == 0, shown.output
    status = json.loads(shown.stdout)
    assert status["record"]["result"]["message_ids"] == [message_id]
    assert {r["recipient"]: r["status"] for r in status["recipients"]} == {
        "alice@example.org": "delivery",
        "bob@example.org": "bounce",
    }
    table = invoke(cli_env(stack), "status", "billing", "order-7")
    assert table.exit_code == 0, table.output
    assert "alice@example.org: delivered" in table.stdout
    assert "bob@example.org: bounced (Permanent/General)" in table.stdout


def test_status_of_a_request_the_ledger_does_not_know_exits_5(stack: Stack) -> None:
    with stack.running():
        stack.publish(request(request_id="known"))
        stack.results(1)
    result = invoke(cli_env(stack), "status", "billing", "unknown")
    assert result.exit_code == 5
    assert "nothing is known of request 'unknown'" in result.stderr
