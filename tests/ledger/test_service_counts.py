"""The services' hourly outcome counters on every ledger backend (memory, SQLite, Firestore),
and the in-memory counter that flushes into them."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from tests.support.clock import ManualClock
from worker.ledger import Ledger, MemoryLedger, SqliteLedger
from worker.ledger.send_counts import HOUR_S, hour_of
from worker.ledger.service_count_stores import service_counts_of
from worker.ledger.service_counter import ServiceCounter
from worker.ledger.service_counts import KINDS, RETENTION_S, WEEK_HOURS


def week(clock: ManualClock) -> range:
    now = hour_of(clock())
    return range(now - WEEK_HOURS + 1, now + 1)


def test_a_service_that_did_nothing_has_no_counters(ledger: Ledger, clock: ManualClock) -> None:
    assert service_counts_of(ledger).read("billing", week(clock)) == {}


def test_increments_add_up_per_service_hour_and_kind(ledger: Ledger, clock: ManualClock) -> None:
    hour = hour_of(clock())
    records = service_counts_of(ledger)
    records.add({("billing", hour): {"sent": 2, "recipients": 5}, ("shop", hour): {"failed": 1}})
    records.add({("billing", hour): {"sent": 1, "bounced": 1}, ("billing", hour - 3): {"sent": 4}})
    assert records.read("billing", week(clock)) == {
        hour: {"sent": 3, "recipients": 5, "bounced": 1},
        hour - 3: {"sent": 4},
    }
    assert records.read("shop", week(clock)) == {hour: {"failed": 1}}


def test_a_read_returns_only_the_hours_asked_for(ledger: Ledger, clock: ManualClock) -> None:
    hour = hour_of(clock())
    records = service_counts_of(ledger)
    records.add({("billing", hour): {"sent": 1}, ("billing", hour - 30): {"sent": 2}})
    assert records.read("billing", range(hour - 23, hour + 1)) == {hour: {"sent": 1}}


def test_counters_expire_eight_days_after_their_hour(ledger: Ledger, clock: ManualClock) -> None:
    hour = hour_of(clock())
    records = service_counts_of(ledger)
    records.add({("billing", hour): {"rejected": 1}})
    old = range(hour, hour + 1)
    clock.now += RETENTION_S - HOUR_S
    assert records.read("billing", old) == {hour: {"rejected": 1}}
    clock.now += 2 * HOUR_S
    assert records.read("billing", old) == {}


def test_instances_adding_at_once_lose_no_increment(ledger: Ledger, clock: ManualClock) -> None:
    hour = hour_of(clock())
    records = service_counts_of(ledger)

    def add_many() -> None:
        for _ in range(10):
            records.add({("billing", hour): {"sent": 1, "complained": 2}})

    threads = [threading.Thread(target=add_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert records.read("billing", week(clock)) == {hour: {"sent": 40, "complained": 80}}


def test_the_counter_adds_in_memory_and_writes_once_per_flush(
    ledger: Ledger, clock: ManualClock
) -> None:
    counter = ServiceCounter(ledger, clock=clock, flush_interval_s=3600)
    for _ in range(100):
        counter.add("billing", "sent")
    counter.add("billing", "recipients", 250)
    counter.add("shop", "failed", 0)  # nothing
    assert service_counts_of(ledger).read("billing", week(clock)) == {}
    counter.flush()
    hour = hour_of(clock())
    assert service_counts_of(ledger).read("billing", week(clock)) == {
        hour: {"sent": 100, "recipients": 250}
    }
    assert service_counts_of(ledger).read("shop", week(clock)) == {}


def test_closing_the_counter_flushes_what_is_left(ledger: Ledger, clock: ManualClock) -> None:
    counter = ServiceCounter(ledger, clock=clock, flush_interval_s=3600)
    counter.add("billing", "rejected", 2)
    counter.close()
    hour = hour_of(clock())
    assert service_counts_of(ledger).read("billing", week(clock)) == {hour: {"rejected": 2}}


def test_the_counter_flushes_by_itself_every_interval(clock: ManualClock) -> None:
    ledger = MemoryLedger(claim_lease_s=60, clock=clock)
    counter = ServiceCounter(ledger, clock=clock, flush_interval_s=0.05)
    counter.add("billing", "sent", 3)
    for _ in range(100):
        if service_counts_of(ledger).read("billing", week(clock)):
            break
        threading.Event().wait(0.05)
    assert service_counts_of(ledger).read("billing", week(clock)) == {hour_of(clock()): {"sent": 3}}
    counter.close()


def test_counts_a_failed_flush_could_not_write_are_kept_for_the_next(
    tmp_path: Path, clock: ManualClock
) -> None:
    path = tmp_path / "ledger.db"
    with SqliteLedger(path, claim_lease_s=60, busy_timeout_s=0.05, clock=clock) as ledger:
        counter = ServiceCounter(ledger, clock=clock, flush_interval_s=3600)
        counter.add("billing", "sent", 2)
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        counter.flush()
        other.execute("ROLLBACK")
        other.close()
        counter.add("billing", "sent", 1)
        counter.flush()
        assert service_counts_of(ledger).read("billing", week(clock)) == {
            hour_of(clock()): {"sent": 3}
        }


def test_the_sqlite_table_has_a_column_for_each_kind(tmp_path: Path) -> None:
    with SqliteLedger(tmp_path / "ledger.db", claim_lease_s=60) as ledger:
        service_counts_of(ledger)
        columns = [row[1] for row in ledger._conn.execute("PRAGMA table_info(service_counts)")]
    assert columns == ["service_id", "hour", "shard", *KINDS, "expire_at"]
