"""The reputation breaker on the local stack: a bounce storm in SES's events (moto's
EventBridge and SQS) read by the events reader, wired as ``email-worker events`` wires it, pauses
the service in the worker's ledger; the pull worker then holds that service's requests (the
other service's go on) until an operator runs ``email-worker resume``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.events.conftest import MakeReader
from tests.events.ses_records import ses_record, ses_tags
from tests.support.cli_runner import cli_env, invoke
from tests.support.ses_events import SesEventsQueue
from tests.support.worker_stack import Stack, make_tenant_stack, request
from worker.app.clients import Clients
from worker.app.relaying import reputation_breaker
from worker.config.settings import Settings
from worker.events import EventsReader
from worker.ledger import Ledger, open_ledger

POLL = {"EMAIL_WORKER_PAUSE_POLL_S": "0.2"}
# The test's breaker judges from 20 recipients on; the storm's Send events reach 20.
BREAKER = {"EMAIL_WORKER_REPUTATION_MIN_SENDS": "20"}


@pytest.fixture
def stack(pubsub_env: Any, fault_proxy: Any, tmp_path: Path) -> Stack:
    return make_tenant_stack(pubsub_env, tmp_path, fault_proxy.endpoint)


@pytest.fixture
def ledger(stack: Stack) -> Iterator[Ledger]:
    settings = stack.settings()
    opened = open_ledger(
        settings.ledger.url, project=None, claim_lease_s=90, retention_s=settings.ledger.retention_s
    )
    assert opened is not None
    with opened:
        yield opened


def reader_with_breaker(
    stack: Stack, ledger: Ledger, make_reader: MakeReader, settings: Settings
) -> EventsReader:
    clients = Clients(
        project=stack.emulator.project_id,
        publisher=None,
        ledger=ledger,
        subscriber=stack.emulator.subscriber,
    )
    breaker = reputation_breaker(settings, clients)
    assert breaker is not None
    return make_reader(ledger=ledger, reputation=breaker)


def put_events(ses_events: SesEventsQueue, service: str, sends: int, bounces: int) -> None:
    """``sends`` Send events (two recipients each) of ``service``, then ``bounces`` hard
    bounces (one recipient each)."""
    for n in range(sends):
        tags = ses_tags(service, f"{service}-{n}")
        ses_events.put_event(ses_record("Send", message_id=f"ses-{service}-{n}", tags=tags))
    for n in range(bounces):
        tags = ses_tags(service, f"{service}-{n}")
        ses_events.put_event(ses_record("Bounce", message_id=f"ses-{service}-{n}", tags=tags))


def drain(reader: EventsReader) -> None:
    while reader.poll_once():
        pass


def test_a_bounce_storm_read_by_the_events_reader_pauses_that_service(
    stack: Stack, ledger: Ledger, ses_events: SesEventsQueue, make_reader: MakeReader
) -> None:
    reader = reader_with_breaker(stack, ledger, make_reader, stack.settings(**BREAKER))
    put_events(ses_events, "shop", sends=10, bounces=0)
    put_events(ses_events, "billing", sends=10, bounces=3)  # 3 of 20: 15%
    drain(reader)
    [pause] = ledger.pauses()
    assert (pause.scope, pause.by) == ("billing", "reputation-breaker")
    assert pause.reason is not None
    assert pause.reason.startswith("reputation breaker: hard bounces 15.00% (3/20)")
    assert (
        reader.metrics.registry.get_sample_value(
            "email_worker_events_reputation_pauses_total", {"service_id": "billing"}
        )
        == 1
    )


def test_a_small_sample_below_the_minimum_volume_pauses_nothing(
    stack: Stack, ledger: Ledger, ses_events: SesEventsQueue, make_reader: MakeReader
) -> None:
    reader = reader_with_breaker(stack, ledger, make_reader, stack.settings(**BREAKER))
    put_events(ses_events, "billing", sends=3, bounces=3)  # 50% of only 6 recipients
    drain(reader)
    assert ledger.pauses() == []


def test_the_breakers_pause_holds_the_service_until_an_operator_resumes_it(
    stack: Stack,
    ledger: Ledger,
    ses_events: SesEventsQueue,
    make_reader: MakeReader,
    moto: Any,
) -> None:
    reader = reader_with_breaker(stack, ledger, make_reader, stack.settings(**BREAKER))
    put_events(ses_events, "billing", sends=10, bounces=5)
    drain(reader)
    env = cli_env(stack)
    listed = invoke(env, "paused")
    assert "reputation-breaker" in listed.output
    assert "hard bounces 25.00%" in listed.output
    sender = {"billing": "billing@example.com", "shop": "shop@example.com"}
    with stack.running(**POLL):
        for service in ("billing", "shop"):
            for n in range(2):
                stack.publish_as(
                    service,
                    request(
                        service_id=service, request_id=f"{service}-{n}", **{"from": sender[service]}
                    ),
                )
        during = stack.results(2)
        assert stack.nothing_more(stack.results_subscription, 3.0)
        resumed = invoke(env, "resume", "billing")
        assert resumed.exit_code == 0, resumed.output
        after = stack.results(2)
    assert {(r["service_id"], r["status"]) for r in during} == {("shop", "sent")}
    assert {(r["service_id"], r["status"], r["attempt"]) for r in after} == {("billing", "sent", 1)}
    assert len(moto.sent_messages()) == 4
