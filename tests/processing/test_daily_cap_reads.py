"""What the daily cap reads of the ledger's send counters on each backend: the whole day once,
then only the hours that can still change, its totals exact."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ledger.counter_shards import watching_reads
from tests.support.clock import ManualClock
from worker.ledger import FirestoreLedger, Ledger, MemoryLedger, SqliteLedger
from worker.ledger.final_hours import settle_margin_s
from worker.ledger.send_counts import HOUR_S, SHARDS, WINDOW_HOURS, window_hours
from worker.processing.daily_cap import DailyCounts

# The middle of an hour: only the current hour can still change.
MIDDLE = 1_800_000_000.0 + HOUR_S / 2


@pytest.fixture(
    params=["memory", "sqlite", pytest.param("firestore", marks=pytest.mark.integration)]
)
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    clock = ManualClock(MIDDLE)
    built: Ledger
    if request.param == "memory":
        built = MemoryLedger(claim_lease_s=30, clock=clock)
    elif request.param == "sqlite":
        built = SqliteLedger(tmp_path / "ledger.db", claim_lease_s=30, clock=clock)
    else:
        request.getfixturevalue("firestore_env")
        built = FirestoreLedger(claim_lease_s=30, clock=clock)
    yield built
    built.close()


def test_a_refresh_reads_only_the_shards_of_the_current_hour(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = ManualClock(MIDDLE)
    here = DailyCounts(ledger, clock=clock)
    ledger.add_send_counts({("billing", int(MIDDLE // HOUR_S) - 5): 7})
    with watching_reads(ledger, monkeypatch, outcome_counts=False) as first:
        assert here.sent("billing") == 7
    clock.now += 5  # the refresh interval
    with watching_reads(ledger, monkeypatch, outcome_counts=False) as refresh:
        assert here.sent("billing") == 7
    assert (first.keys, refresh.keys) == (WINDOW_HOURS * SHARDS, SHARDS)


def test_another_instances_flush_into_the_current_hour_after_a_read_is_counted(
    ledger: Ledger,
) -> None:
    clock = ManualClock(MIDDLE)
    here, there = DailyCounts(ledger, clock=clock), DailyCounts(ledger, clock=clock)
    assert here.sent("billing") == 0
    there.add("billing", 4)
    there.flush()
    clock.now += 5
    assert here.sent("billing") == 4


def test_a_flush_of_the_last_hour_just_after_it_ended_is_counted(ledger: Ledger) -> None:
    clock = ManualClock(MIDDLE + HOUR_S / 2 - 1)  # a second before the hour ends
    here, there = DailyCounts(ledger, clock=clock), DailyCounts(ledger, clock=clock)
    there.add("billing", 2)  # counted in the hour that is ending
    clock.now += 2
    assert here.sent("billing") == 0  # the new hour's first read: the last one is not final
    clock.now += settle_margin_s(5.0) - 10
    there.flush()  # late, within the margin
    assert here.sent("billing") == 2


def test_the_cap_total_stays_exact_over_two_days(ledger: Ledger) -> None:
    clock = ManualClock(MIDDLE)
    here, there = DailyCounts(ledger, clock=clock), DailyCounts(ledger, clock=clock)
    for step in range(2 * 24 * 3):  # every 20 minutes
        there.add("billing", step % 7 + 1)
        there.flush()
        clock.now += 5
        assert here.sent("billing") == ledger.sent_in_hours("billing", window_hours(clock()))
        clock.now += HOUR_S / 3 - 5
