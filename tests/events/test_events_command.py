"""``email-worker events``: its settings, and the command run as operators run it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.events.conftest import EVENTS_ROLE, EventsTopic
from tests.events.ses_records import ses_record
from tests.support.ses_events import SesEventsQueue
from tests.support.worker_process import EMAIL_WORKER
from worker.app.cli import main
from worker.app.relaying import long_poll_s
from worker.config.groups import Process
from worker.config.settings import Settings
from worker.ledger import SqliteLedger
from worker.ledger.send_counts import hour_of
from worker.ledger.service_count_stores import service_counts_of


def test_events_without_its_queue_and_role_exits_2_naming_both() -> None:
    result = CliRunner().invoke(main, ["events"], env={"GOOGLE_CLOUD_PROJECT": "p"})
    assert result.exit_code == 2
    assert "EMAIL_WORKER_SES_EVENTS_QUEUE_URL" in result.output
    assert "EMAIL_WORKER_SES_EVENTS_ROLE_ARN" in result.output


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("EMAIL_WORKER_SES_EVENTS_QUEUE_URL", "ses-events"),
        ("EMAIL_WORKER_SES_EVENTS_ROLE_ARN", "email-worker-events"),
    ],
)
def test_events_with_a_queue_or_role_that_is_not_one_exits_2(name: str, value: str) -> None:
    env = {
        "GOOGLE_CLOUD_PROJECT": "p",
        "EMAIL_WORKER_SES_EVENTS_QUEUE_URL": "https://sqs.eu-west-2.amazonaws.com/1/q",
        "EMAIL_WORKER_SES_EVENTS_ROLE_ARN": EVENTS_ROLE,
        name: value,
    }
    result = CliRunner().invoke(main, ["events"], env=env)
    assert result.exit_code == 2
    assert name in result.output


def test_the_long_poll_ends_inside_the_shutdown_timeout() -> None:
    assert long_poll_s(Settings()) == 6  # the default 8 s, less 2 for the last batch
    assert long_poll_s(Settings(process=Process(shutdown_timeout_s=60.0))) == 20  # SQS's longest
    assert long_poll_s(Settings(process=Process(shutdown_timeout_s=1.0))) == 1


def test_the_command_publishes_events_and_stops_cleanly_on_sigterm(
    ses_events: SesEventsQueue,
    events_topic: EventsTopic,
    clean_metadata: object,
    tmp_path: Path,
) -> None:
    env = {
        **os.environ,
        "EMAIL_WORKER_SES_EVENTS_QUEUE_URL": ses_events.url,
        "EMAIL_WORKER_SES_EVENTS_ROLE_ARN": EVENTS_ROLE,
        "EMAIL_WORKER_EVENTS_TOPIC": events_topic.topic.rsplit("/", 1)[-1],
        "EMAIL_WORKER_SHUTDOWN_TIMEOUT_S": "4",
    }
    log_path = tmp_path / "events.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([EMAIL_WORKER, "events"], env=env, stdout=log, stderr=log)
    try:
        ses_events.put_event(ses_record("Delivery"))
        [message] = events_topic.published(timeout_s=30)
        assert message.message.attributes["event_type"] == "delivery"
        stopped_at = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0, log_path.read_text()
        assert time.monotonic() - stopped_at < 6
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    records = [json.loads(line) for line in log_path.read_text().splitlines() if line[:1] == "{"]
    published = [r for r in records if r.get("outcome") == "published"]
    assert [(r["event_type"], r["request_id"]) for r in published] == [("delivery", "order-1842")]
    assert "alice@example.org" not in log_path.read_text()
    assert records[-1]["message"] == "stopped"
    assert ses_events.counts() == (0, 0)


def test_hard_bounces_counted_before_a_sigterm_reach_the_ledger(
    ses_events: SesEventsQueue,
    events_topic: EventsTopic,
    clean_metadata: object,
    tmp_path: Path,
) -> None:
    ledger_path = tmp_path / "ledger.db"
    env = {
        **os.environ,
        "EMAIL_WORKER_SES_EVENTS_QUEUE_URL": ses_events.url,
        "EMAIL_WORKER_SES_EVENTS_ROLE_ARN": EVENTS_ROLE,
        "EMAIL_WORKER_EVENTS_TOPIC": events_topic.topic.rsplit("/", 1)[-1],
        "EMAIL_WORKER_SHUTDOWN_TIMEOUT_S": "4",
        "EMAIL_WORKER_LEDGER": f"sqlite:///{ledger_path}",
        "EMAIL_WORKER_REPUTATION_MIN_SENDS": "0",
    }
    log_path = tmp_path / "events.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([EMAIL_WORKER, "events"], env=env, stdout=log, stderr=log)
    try:
        ses_events.put_event(ses_record("Bounce"))
        events_topic.published(timeout_s=30)
        process.send_signal(signal.SIGTERM)  # before the counter's first 5 s flush
        assert process.wait(timeout=15) == 0, log_path.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    now = hour_of(time.time())
    with SqliteLedger(ledger_path, claim_lease_s=60) as ledger:
        hours = service_counts_of(ledger).read("billing", range(now - 1, now + 1))
    assert list(hours.values()) == [{"bounced": 1}]
