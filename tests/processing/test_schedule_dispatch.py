"""The dispatcher: due scheduled requests sent once through the handler, on SQLite ledgers."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.processing.test_pipeline import CONFIG
from tests.processing.test_scheduling import at, cancel, request
from tests.support.clock import ManualClock
from worker.config.settings import Settings
from worker.ledger import LedgerKey, Pause, SqliteLedger
from worker.ledger.schedule_stores import schedules_of
from worker.ledger.schedules import ScheduleState
from worker.processing.handling import Handler
from worker.processing.metrics import Metrics
from worker.processing.outputs import Outputs
from worker.processing.pause_watch import PauseWatch
from worker.processing.pipeline import Delivery, Deps
from worker.processing.schedule_dispatch import ScheduleDispatcher
from worker.processing.tenancy import Source
from worker.sending.session_cache import SessionCache
from worker.sending.testing import RecordingSession, fresh_id

NOW = 1_800_000_000.0
KEY = LedgerKey("billing", "invoice-1")
SETTINGS = Settings.from_env(
    {"EMAIL_WORKER_ALLOWED_SERVICES": "billing", "EMAIL_WORKER_SCHEDULE_LEASE_S": "30"}
)


class Worker:
    """One worker instance: its own ledger connection and clock, a handler, a dispatcher."""

    def __init__(self, path: Path, session: RecordingSession, clock: ManualClock) -> None:
        self.ledger = SqliteLedger(path, claim_lease_s=60, clock=clock)
        self.results: list[dict[str, Any]] = []
        deps = Deps(SETTINGS, SessionCache(lambda _: session, ttl_s=60), ledger=self.ledger)
        metrics = Metrics()
        pauses = PauseWatch(self.ledger, poll_s=0, services={"billing"}, metrics=metrics)
        outputs = Outputs(self._publish, results_topic="r", dead_letter_topic="d", timeout_s=5)
        self.handler = Handler(
            deps, outputs, max_delivery_attempts=5, metrics=metrics, pauses=pauses
        )
        self.dispatcher = ScheduleDispatcher(self.handler, self.ledger, SETTINGS)

    def _publish(self, topic: str, data: bytes, attributes: Any) -> Future[Any]:
        if topic == "r":
            self.results.append(json.loads(data))
        future: Future[Any] = Future()
        future.set_result("id")
        return future

    def receive(self, document: dict[str, Any]) -> None:
        data = json.dumps(document).encode()
        delivery = Delivery(data, {}, message_id="m1", source=Source.service("billing"))
        self.handler(delivery, ack=lambda: None, nack=lambda: None)

    def statuses(self) -> list[str]:
        return [result["status"] for result in self.results]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def session() -> RecordingSession:
    return RecordingSession(fresh_id, service_config=CONFIG)


@pytest.fixture
def worker(tmp_path: Path, session: RecordingSession, clock: ManualClock) -> Iterator[Worker]:
    made = Worker(tmp_path / "ledger.db", session, clock)
    yield made
    made.ledger.close()


def test_a_due_request_is_sent_once_and_its_final_result_follows_the_scheduled_one(
    worker: Worker, session: RecordingSession, clock: ManualClock
) -> None:
    worker.receive(request(120))
    assert worker.dispatcher.dispatch_due() == 0

    clock.now = NOW + 121
    assert worker.dispatcher.dispatch_due() == 1
    assert worker.dispatcher.dispatch_due() == 0

    assert session.calls == 1
    assert worker.statuses() == ["scheduled", "sent"]
    assert worker.results[0]["send_at"] == at(120).replace("+00:00", ".000Z")
    kept = schedules_of(worker.ledger).get(KEY)
    assert kept is not None
    assert kept.state is ScheduleState.DONE


def test_a_cancelled_request_is_never_dispatched(
    worker: Worker, session: RecordingSession, clock: ManualClock
) -> None:
    worker.receive(request(120))
    worker.receive(cancel())
    clock.now = NOW + 3600

    assert worker.dispatcher.dispatch_due() == 0
    assert session.calls == 0
    assert worker.statuses() == ["scheduled", "cancelled"]


def test_a_paused_services_due_request_waits_and_can_still_be_cancelled_then_goes_after_resume(
    worker: Worker, session: RecordingSession, clock: ManualClock
) -> None:
    worker.receive(request(120))
    worker.ledger.add_pause(Pause("billing", since=datetime.fromtimestamp(NOW, UTC), by="ops"))
    clock.now = NOW + 121

    worker.dispatcher.dispatch_due()
    assert session.calls == 0
    kept = schedules_of(worker.ledger).get(KEY)
    assert kept is not None
    assert not kept.leased(clock.now)
    # Due again after the next read of the pauses, behind any record due now.
    assert kept.due_at == clock.now + SETTINGS.ledger.pause_poll_s
    assert worker.dispatcher.dispatch_due() == 0

    worker.ledger.remove_pause("billing")
    clock.now += SETTINGS.ledger.pause_poll_s
    worker.dispatcher.dispatch_due()
    assert session.calls == 1


def slow(seconds: float) -> Callable[[int], list[str]]:
    def send(call: int) -> list[str]:
        time.sleep(seconds)
        return [f"ses-{call}"]

    return send


def test_two_instances_whose_clocks_disagree_send_a_due_request_once(
    tmp_path: Path, clock: ManualClock
) -> None:
    # 45 s fast: the schedule's lease (30 s) looks run out to it, so it dispatches the request
    # too; the ledger's claim (60 s, which must exceed the skew) keeps it from sending.
    skew_s = 45.0
    session = RecordingSession(slow(1.0), service_config=CONFIG)
    behind = Worker(tmp_path / "ledger.db", session, clock)
    ahead_clock = ManualClock(NOW + skew_s)
    ahead = Worker(tmp_path / "ledger.db", session, ahead_clock)
    behind.receive(request(120))
    clock.now = NOW + 121
    ahead_clock.now = clock.now + skew_s

    first = threading.Thread(target=behind.dispatcher.dispatch_due)
    first.start()
    time.sleep(0.3)  # inside its slow send
    assert ahead.dispatcher.dispatch_due() == 1  # taken twice: the dispatch is at-least-once
    first.join()
    ahead_clock.now += 120
    ahead.dispatcher.dispatch_due()

    assert session.calls == 1
    assert behind.statuses() == ["scheduled", "sent"]
    behind.ledger.close()
    ahead.ledger.close()


def test_a_due_request_a_stopping_worker_hands_back_is_free_for_another_at_once(
    worker: Worker, session: RecordingSession, clock: ManualClock
) -> None:
    worker.receive(request(120))
    clock.now = NOW + 121
    worker.handler.stopping.set()

    assert worker.dispatcher.dispatch_due() == 1
    assert session.calls == 0
    kept = schedules_of(worker.ledger).get(KEY)
    assert kept is not None
    assert not kept.leased(clock.now)
    assert kept.state is ScheduleState.SCHEDULED
