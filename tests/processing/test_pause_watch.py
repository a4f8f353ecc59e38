"""How a worker reads the operators' pauses from the ledger (worker.processing.pause_watch)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from tests.support.clock import ManualClock
from worker.ledger import ALL_SERVICES, Pause, SqliteLedger
from worker.processing.metrics import Metrics
from worker.processing.pause_watch import PauseWatch
from worker.processing.tenancy import REPLAY, SHARED, Source

BILLING, SHOP = Source.service("billing"), Source.service("shop")


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[SqliteLedger]:
    with SqliteLedger(tmp_path / "ledger.db", claim_lease_s=90) as opened:
        yield opened


def watch_of(
    ledger: SqliteLedger, clock: ManualClock, metrics: Metrics | None = None
) -> PauseWatch:
    return PauseWatch(
        ledger,
        poll_s=5,
        services={"billing", "shop"},
        metrics=metrics or Metrics(),
        clock=clock,
    )


def pause(ledger: SqliteLedger, scope: str) -> None:
    ledger.add_pause(Pause(scope, dt.datetime.now(dt.UTC), "test"))


def test_a_paused_service_holds_only_its_own_subscription(ledger: SqliteLedger) -> None:
    pause(ledger, "billing")
    watch = watch_of(ledger, ManualClock())
    assert [watch.holds(s) for s in (BILLING, SHOP, REPLAY, SHARED)] == [True, False, False, False]


def test_a_pause_of_every_service_holds_every_subscription(ledger: SqliteLedger) -> None:
    pause(ledger, ALL_SERVICES)
    watch = watch_of(ledger, ManualClock())
    assert all(watch.holds(s) for s in (BILLING, SHOP, REPLAY, SHARED))


def test_the_pauses_are_read_again_only_after_the_poll_interval(ledger: SqliteLedger) -> None:
    clock = ManualClock()
    watch = watch_of(ledger, clock)
    assert not watch.holds(BILLING)
    pause(ledger, "billing")

    clock.now += 4.9
    before = watch.holds(BILLING)
    clock.now += 0.1

    assert (before, watch.holds(BILLING)) == (False, True)


def test_the_gauge_counts_the_workers_paused_services(ledger: SqliteLedger) -> None:
    clock, metrics = ManualClock(), Metrics()
    watch = watch_of(ledger, clock, metrics)
    gauge = "email_worker_paused_services"
    pause(ledger, "shop")
    watch.scopes()
    one = metrics.registry.get_sample_value(gauge)
    pause(ledger, ALL_SERVICES)
    clock.now += 5
    watch.scopes()
    assert (one, metrics.registry.get_sample_value(gauge)) == (1.0, 2.0)


def test_the_last_known_pauses_stand_while_the_ledger_cannot_be_read(
    ledger: SqliteLedger,
) -> None:
    clock = ManualClock()
    pause(ledger, "billing")
    watch = watch_of(ledger, clock)
    assert watch.holds(BILLING)
    ledger.close()
    clock.now += 5
    with capture_logs() as logs:
        still = watch.holds(BILLING)
    assert still
    assert [e["event"] for e in logs] == ["cannot read the pauses; keeping the last known"]


def test_a_hold_confirmed_now_reads_the_ledger_again_within_the_poll_interval(
    ledger: SqliteLedger,
) -> None:
    pause(ledger, "billing")
    watch = watch_of(ledger, ManualClock())
    assert watch.holds(BILLING)
    ledger.remove_pause("billing")
    assert watch.holds(BILLING), "the poll interval has not passed"
    assert not watch.holds_now(BILLING)
    assert not watch.holds(BILLING), "the fresh answer is kept"


def test_a_delivery_not_held_is_confirmed_without_reading_the_ledger(
    ledger: SqliteLedger,
) -> None:
    watch = watch_of(ledger, ManualClock())
    assert not watch.holds(SHOP)
    pause(ledger, "shop")
    assert not watch.holds_now(SHOP), "only a hold is confirmed; no read within the interval"
