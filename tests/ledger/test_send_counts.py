"""The services' hourly send counters every ledger backend keeps: memory, SQLite and Firestore."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from tests.ledger.counter_shards import send_count_shards, watching_reads
from tests.support.clock import ManualClock
from worker.ledger import FirestoreLedger, Ledger, MemoryLedger, SqliteLedger
from worker.ledger.send_counts import HOUR_S, SHARDS, WINDOW_HOURS, hour_of, window_hours


def last_day(ledger: Ledger, clock: ManualClock, service_id: str) -> int:
    return ledger.sent_in_hours(service_id, window_hours(clock()))


def test_a_service_that_sent_nothing_has_sent_nothing(ledger: Ledger, clock: ManualClock) -> None:
    assert last_day(ledger, clock, "billing") == 0


def test_increments_add_up_per_service(ledger: Ledger, clock: ManualClock) -> None:
    hour = hour_of(clock())
    ledger.add_send_counts({("billing", hour): 3, ("shop", hour): 5})
    ledger.add_send_counts({("billing", hour): 4, ("billing", hour - 1): 10})
    assert last_day(ledger, clock, "billing") == 17
    assert last_day(ledger, clock, "shop") == 5


def test_counts_older_than_the_window_no_longer_count(ledger: Ledger, clock: ManualClock) -> None:
    hour = hour_of(clock())
    ledger.add_send_counts({("billing", hour): 7, ("billing", hour + 2): 1})
    clock.now += 24 * HOUR_S  # the hour of the 7 is the window's oldest
    assert last_day(ledger, clock, "billing") == 8
    clock.now += HOUR_S
    assert last_day(ledger, clock, "billing") == 1


def test_instances_adding_at_once_lose_no_increment(ledger: Ledger, clock: ManualClock) -> None:
    hour = hour_of(clock())

    def add_many() -> None:
        for _ in range(10):
            ledger.add_send_counts({("billing", hour): 1})

    threads = [threading.Thread(target=add_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert last_day(ledger, clock, "billing") == 40


def test_writers_adding_to_different_shards_are_summed_exactly(
    ledger: Ledger, clock: ManualClock
) -> None:
    hour = hour_of(clock())
    ledger.add_send_counts({("billing", hour): 3}, shard=0)
    ledger.add_send_counts({("billing", hour): 5, ("billing", hour - 1): 2}, shard=3)
    ledger.add_send_counts({("billing", hour): 7}, shard=SHARDS - 1)
    ledger.add_send_counts({("billing", hour): 1}, shard=3)
    assert send_count_shards(ledger, "billing", hour) == {0: 3, 3: 6, SHARDS - 1: 7}
    assert last_day(ledger, clock, "billing") == 18


def test_a_flush_without_a_shard_lands_in_a_random_one(ledger: Ledger, clock: ManualClock) -> None:
    hour = hour_of(clock())
    for _ in range(40):  # the chance that all 40 land in one shard is 8 ** -39
        ledger.add_send_counts({("billing", hour): 1})
    shards = send_count_shards(ledger, "billing", hour)
    assert len(shards) > 1
    assert set(shards) <= set(range(SHARDS))
    assert sum(shards.values()) == last_day(ledger, clock, "billing") == 40


def test_one_flush_adds_all_its_counters_to_one_shard(ledger: Ledger, clock: ManualClock) -> None:
    hour = hour_of(clock())
    ledger.add_send_counts({("billing", hour): 1, ("billing", hour - 1): 2, ("shop", hour): 3})
    shards = [
        send_count_shards(ledger, "billing", hour),
        send_count_shards(ledger, "billing", hour - 1),
        send_count_shards(ledger, "shop", hour),
    ]
    assert [list(found.values()) for found in shards] == [[1], [2], [3]]
    assert len({shard for found in shards for shard in found}) == 1


def test_a_shard_that_does_not_exist_is_refused(ledger: Ledger, clock: ManualClock) -> None:
    with pytest.raises(ValueError, match="a counter shard is 0 to 7, not 8"):
        ledger.add_send_counts({("billing", hour_of(clock())): 1}, shard=SHARDS)
    assert last_day(ledger, clock, "billing") == 0


def test_a_day_is_read_by_key_in_one_batch_without_a_scan(
    ledger: Ledger, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    hour = hour_of(clock())
    for shard in range(SHARDS):
        ledger.add_send_counts({("billing", hour - shard): 1, ("shop", hour): 9}, shard=shard)
    with watching_reads(ledger, monkeypatch, outcome_counts=False) as reads:
        assert last_day(ledger, clock, "billing") == SHARDS
    assert reads.scans == 0
    if isinstance(ledger, SqliteLedger):
        assert reads.batches == 1
        assert "USING PRIMARY KEY" in reads.plans[0]
    else:  # memory: lookups; Firestore: get_all of every shard of the 25 hours
        assert reads.keys == WINDOW_HOURS * SHARDS
        assert reads.batches == (0 if isinstance(ledger, MemoryLedger) else 1)


def test_threads_adding_to_shared_and_own_shards_lose_no_increment(
    ledger: Ledger, clock: ManualClock
) -> None:
    hour = hour_of(clock())

    def add_many(shard: int) -> None:
        for _ in range(10):
            ledger.add_send_counts({("billing", hour): 1, ("billing", hour - 1): 2}, shard=shard)

    threads = [threading.Thread(target=add_many, args=(n % 3,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert send_count_shards(ledger, "billing", hour) == {0: 20, 1: 20, 2: 20}
    assert last_day(ledger, clock, "billing") == 180


def unsharded_ledger_file(tmp_path: Path, clock: ManualClock) -> tuple[Path, int]:
    """A SQLite ledger file as a release before sharding left it: 4 recipients of billing's
    in the current hour. Returns its path and that hour."""
    path = tmp_path / "ledger.db"
    hour = hour_of(clock())
    with sqlite3.connect(path) as old:
        old.executescript(UNSHARDED_SCHEMA)
        old.execute("INSERT INTO send_counts VALUES ('billing', ?, 4, ?)", (hour, clock() + 9e9))
    old.close()
    return path, hour


def test_a_sqlite_ledger_made_before_sharding_keeps_its_counts_as_shard_zero(
    tmp_path: Path, clock: ManualClock
) -> None:
    path, hour = unsharded_ledger_file(tmp_path, clock)
    with SqliteLedger(path, claim_lease_s=60, clock=clock) as ledger:
        ledger.add_send_counts({("billing", hour): 5}, shard=2)
        assert send_count_shards(ledger, "billing", hour) == {0: 4, 2: 5}
        assert last_day(ledger, clock, "billing") == 9
    with SqliteLedger(path, claim_lease_s=60, clock=clock) as reopened:
        assert last_day(reopened, clock, "billing") == 9


def test_workers_opening_a_ledger_made_before_sharding_at_once_rebuild_it_once(
    tmp_path: Path, clock: ManualClock
) -> None:
    path, hour = unsharded_ledger_file(tmp_path, clock)
    opened: list[SqliteLedger] = []

    def open_and_add(shard: int) -> None:
        ledger = SqliteLedger(path, claim_lease_s=60, clock=clock)
        opened.append(ledger)
        ledger.add_send_counts({("billing", hour): 1}, shard=shard)

    threads = [threading.Thread(target=open_and_add, args=(n,)) for n in range(1, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(opened) == 4
    assert send_count_shards(opened[0], "billing", hour) == {0: 4, 1: 1, 2: 1, 3: 1, 4: 1}
    assert last_day(opened[0], clock, "billing") == 8
    for ledger in opened:
        ledger.close()


@pytest.mark.usefixtures("firestore_env")
def test_a_firestore_counter_written_before_sharding_counts_as_shard_zero(
    clock: ManualClock,
) -> None:
    hour = hour_of(clock())
    with FirestoreLedger(claim_lease_s=60, clock=clock) as ledger:
        ledger._counts.document(f"billing@{hour}").set({"service_id": "billing", "recipients": 4})
        ledger.add_send_counts({("billing", hour): 5}, shard=1)
        assert send_count_shards(ledger, "billing", hour) == {0: 4, 1: 5}
        assert last_day(ledger, clock, "billing") == 9


# The table as workers made it before the counters were sharded.
UNSHARDED_SCHEMA = """
CREATE TABLE send_counts (
    service_id TEXT NOT NULL,
    hour       INTEGER NOT NULL,
    recipients INTEGER NOT NULL,
    expire_at  REAL NOT NULL,
    PRIMARY KEY (service_id, hour)
) WITHOUT ROWID;
"""
