"""A push held by a daily cap or a paused tenant: deferred into the ledger's schedule records
and acked, dispatched again when the hold may lift, and sent once. On a SQLite ledger, with a
clock the test moves (the push end to end is tests/transports/test_push_holds.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.processing.test_pipeline import CONFIG
from tests.support.clock import ManualClock
from worker.config.settings import Settings
from worker.ledger import LedgerKey, SqliteLedger
from worker.ledger.schedule_stores import schedules_of
from worker.ledger.send_counts import HOUR_S
from worker.processing.daily_cap import DailyCounts
from worker.processing.handling import Handler
from worker.processing.outputs import Outputs
from worker.processing.pipeline import Delivery, Deps, Outcome, Status
from worker.processing.quota_pacer import PacerTerms, QuotaPacer
from worker.processing.schedule_dispatch import ScheduleDispatcher
from worker.processing.send_rate import SendRateLimiter
from worker.processing.tenancy import Source
from worker.processing.tenant_pauses import TENANT_PAUSE_PROBE_S, TenantPauses
from worker.sending.errors import TenantPausedError
from worker.sending.quota import QuotaGroup, SendQuota
from worker.sending.session_cache import SessionCache
from worker.sending.testing import RecordingSession

# Ten minutes before an hour ends: the daily window moves on 600 s later.
NOW = 1_800_000_000.0 - 1_800_000_000.0 % HOUR_S + HOUR_S - 600
DAY_S = 24 * HOUR_S
SETTINGS = Settings.from_env(
    {"EMAIL_WORKER_ALLOWED_SERVICES": "billing", "EMAIL_WORKER_SCHEDULE_POLL_S": "5"}
)


class Worker:
    """A push worker's handler and dispatcher on one ledger and clock; SES answers as
    ``paused`` says."""

    def __init__(self, path: Path, clock: ManualClock, *, max_per_day: int | None) -> None:
        self.paused = False
        self.session = RecordingSession(self._answer, service_config=CONFIG)
        if max_per_day is not None:
            self.session.service_config = replace(CONFIG, max_per_day=max_per_day)
        self.ledger = SqliteLedger(path, claim_lease_s=60, clock=clock)
        self.results: list[dict[str, Any]] = []
        self.answers: list[bool] = []
        self.daily_counts = DailyCounts(self.ledger, clock=clock)
        deps = Deps(
            SETTINGS,
            SessionCache(lambda _: self.session, ttl_s=60),
            ledger=self.ledger,
            daily_counts=self.daily_counts,
            tenant_pauses=TenantPauses(clock=clock),
        )
        outputs = Outputs(self._publish, results_topic="r", dead_letter_topic="d", timeout_s=5)
        self.handler = Handler(deps, outputs, max_delivery_attempts=5)
        self.dispatcher = ScheduleDispatcher(self.handler, self.ledger, SETTINGS)

    def _answer(self, call: int) -> list[str]:
        if self.paused:
            raise TenantPausedError("Sending is paused for this tenant.")
        return [f"ses-{call}"]

    def _publish(self, topic: str, data: bytes, attributes: Any) -> Future[Any]:
        if topic == "r":
            self.results.append(json.loads(data))
        future: Future[Any] = Future()
        future.set_result("id")
        return future

    def push(self, request_id: str, attempt: int = 1, **fields: Any) -> Outcome:
        """Hand the handler a push of ``request_id`` (or of ``fields``), as the push endpoint
        does."""
        document = {"version": 1, "request_id": request_id, "to": ["a@example.net"]}
        document = fields or {**document, "subject": "Hi", "text": "Hello"}
        data = json.dumps(document).encode()
        delivery = Delivery(
            data,
            {},
            message_id=f"m-{request_id}",
            delivery_attempt=attempt,
            source=Source.service("billing"),
            defer_held=True,
        )
        return self.handler(
            delivery, ack=lambda: self.answers.append(True), nack=lambda: self.answers.append(False)
        )

    def sent(self) -> list[str]:
        return [r["request_id"] for r in self.results if r["status"] == "sent"]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


def worker_with(tmp_path: Path, clock: ManualClock, max_per_day: int | None) -> Iterator[Worker]:
    made = Worker(tmp_path / "ledger.db", clock, max_per_day=max_per_day)
    yield made
    # As the runtime closes them: the counts' flushing thread stops before the ledger closes
    # (left running, it would log its failed writes into later tests' output).
    made.daily_counts.close()
    made.ledger.close()


@pytest.fixture
def capped(tmp_path: Path, clock: ManualClock) -> Iterator[Worker]:
    yield from worker_with(tmp_path, clock, 2)


@pytest.fixture
def uncapped(tmp_path: Path, clock: ManualClock) -> Iterator[Worker]:
    yield from worker_with(tmp_path, clock, None)


def test_a_push_over_its_services_daily_cap_is_deferred_until_the_window_moves_and_acked(
    capped: Worker,
) -> None:
    capped.push("r1")
    capped.push("r2")
    outcome = capped.push("r3", attempt=5)  # the last attempt: acked all the same

    assert outcome.status is Status.HELD
    assert outcome.deferred_until == NOW + 600
    assert capped.answers == [True, True, True]
    assert capped.sent() == ["r1", "r2"]
    assert len(capped.results) == 2  # no result for the deferred one
    kept = schedules_of(capped.ledger).get(LedgerKey("billing", "r3"))
    assert kept is not None
    assert kept.due_at == NOW + 600


def test_a_deferred_request_still_over_the_cap_when_due_is_deferred_again_unsent(
    capped: Worker, clock: ManualClock
) -> None:
    for request_id in ("r1", "r2", "r3"):
        capped.push(request_id)
    clock.now = NOW + 600  # the window moved an hour on, but r1 and r2 are still in it

    assert capped.dispatcher.dispatch_due() == 1
    assert capped.dispatcher.dispatch_due() == 0
    assert capped.session.calls == 2
    kept = schedules_of(capped.ledger).get(LedgerKey("billing", "r3"))
    assert kept is not None
    assert kept.due_at == NOW + 600 + HOUR_S
    assert not kept.leased(clock.now)


def test_a_deferred_request_is_sent_once_when_the_daily_window_reopens(
    capped: Worker, clock: ManualClock
) -> None:
    for request_id in ("r1", "r2", "r3"):
        capped.push(request_id)
    capped.push("r3")  # a redelivery of the deferred message: found, acked again
    clock.now = NOW + 600 + DAY_S  # r1 and r2 are out of the window (25 hourly counters)

    assert capped.dispatcher.dispatch_due() == 1
    clock.now += HOUR_S
    assert capped.dispatcher.dispatch_due() == 0
    assert capped.session.calls == 3
    assert capped.sent() == ["r1", "r2", "r3"]
    assert capped.answers == [True] * 4


def test_a_deferred_request_can_be_cancelled_and_is_then_never_sent(
    capped: Worker, clock: ManualClock
) -> None:
    for request_id in ("r1", "r2", "r3"):
        capped.push(request_id)
    capped.push("r3", version=1, cancel="r3")
    capped.push("r3")  # a redelivery of the deferred message: answered cancelled
    clock.now = NOW + 600 + DAY_S

    assert capped.dispatcher.dispatch_due() == 0
    assert capped.session.calls == 2
    assert [r["status"] for r in capped.results] == ["sent", "sent", "cancelled", "cancelled"]


def test_a_push_of_a_paused_tenant_is_deferred_to_the_next_probe_and_sent_after_the_resume(
    uncapped: Worker, clock: ManualClock
) -> None:
    uncapped.paused = True
    first = uncapped.push("r1")  # SES answers that the tenant is paused
    second = uncapped.push("r2")  # held without calling SES

    assert first.deferred_until == NOW + TENANT_PAUSE_PROBE_S
    assert second.deferred_until == NOW + TENANT_PAUSE_PROBE_S
    assert uncapped.session.calls == 1
    assert uncapped.answers == [True, True]
    assert uncapped.results == []

    clock.now = NOW + TENANT_PAUSE_PROBE_S  # due: one probes SES, still paused
    uncapped.dispatcher.dispatch_due()
    assert uncapped.results == []
    uncapped.paused = False
    clock.now += TENANT_PAUSE_PROBE_S
    uncapped.dispatcher.dispatch_due()
    clock.now += TENANT_PAUSE_PROBE_S
    uncapped.dispatcher.dispatch_due()

    assert sorted(uncapped.sent()) == ["r1", "r2"]
    assert len(uncapped.results) == 2


def test_a_push_held_by_ses_24_hour_cap_is_deferred_until_the_next_quota_read(
    uncapped: Worker, clock: ManualClock
) -> None:
    quotas = [SendQuota(14, 200, 200)]  # SES's 24-hour cap is used up
    group = QuotaGroup("123456789012", "eu-west-2")
    pacer = QuotaPacer(
        SendRateLimiter(1000, clock=clock),
        lambda: {group: lambda: quotas[-1]},
        ledger=None,
        instance="a",
        terms=PacerTerms(fraction=1),
        clock=clock,
    )
    pacer.tick()
    uncapped.handler.deps.quota = pacer

    outcome = uncapped.push("r1")
    assert outcome.deferred_until == NOW + pacer.seconds_until_recheck()
    assert (uncapped.answers, uncapped.results, uncapped.session.calls) == ([True], [], 0)

    quotas.append(SendQuota(14, 200, 100))  # the window moved: room again
    clock.now = outcome.deferred_until
    pacer.tick()
    uncapped.dispatcher.dispatch_due()
    assert uncapped.sent() == ["r1"]
    assert uncapped.session.calls == 1


def test_without_a_ledger_a_held_push_is_handed_back_as_before(
    capped: Worker,
) -> None:
    capped.handler.deps.ledger = None
    for request_id in ("r1", "r2", "r3"):
        outcome = capped.push(request_id)

    assert outcome.status is Status.HELD
    assert outcome.deferred_until is None
    assert capped.answers == [True, True, False]
