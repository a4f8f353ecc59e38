"""The services' hourly outcome counters on every ledger backend (memory, SQLite, Firestore),
and the in-memory counter that flushes into them."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from tests.ledger.counter_shards import service_count_shards, watching_reads
from tests.support.clock import ManualClock
from worker.ledger import FirestoreLedger, Ledger, MemoryLedger, SqliteLedger
from worker.ledger.send_counts import HOUR_S, READ_BATCH_KEYS, SHARDS, hour_of
from worker.ledger.service_count_stores import FIRESTORE_COLLECTION, service_counts_of
from worker.ledger.service_counter import ServiceCounter
from worker.ledger.service_counts import KINDS, RETENTION_S, WEEK_HOURS, expire_at
from worker.ledger.shared import utc


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


def test_writers_adding_to_different_shards_are_summed_exactly_per_kind(
    ledger: Ledger, clock: ManualClock
) -> None:
    hour = hour_of(clock())
    records = service_counts_of(ledger)
    records.add({("billing", hour): {"sent": 2, "recipients": 5}}, shard=0)
    records.add({("billing", hour): {"sent": 1, "bounced": 1}}, shard=4)
    records.add({("billing", hour - 2): {"failed": 3}}, shard=4)
    records.add({("billing", hour): {"recipients": 7, "complained": 2}}, shard=SHARDS - 1)
    assert service_count_shards(ledger, "billing", hour) == {
        0: {"sent": 2, "recipients": 5},
        4: {"sent": 1, "bounced": 1},
        SHARDS - 1: {"recipients": 7, "complained": 2},
    }
    assert records.read("billing", week(clock)) == {
        hour: {"sent": 3, "recipients": 12, "bounced": 1, "complained": 2},
        hour - 2: {"failed": 3},
    }


def test_a_flush_without_a_shard_lands_in_a_random_one(ledger: Ledger, clock: ManualClock) -> None:
    hour = hour_of(clock())
    records = service_counts_of(ledger)
    for _ in range(40):  # the chance that all 40 land in one shard is 8 ** -39
        records.add({("billing", hour): {"sent": 1}})
    shards = service_count_shards(ledger, "billing", hour)
    assert len(shards) > 1
    assert records.read("billing", week(clock)) == {hour: {"sent": 40}}


def test_one_flush_adds_all_its_counters_to_one_shard(ledger: Ledger, clock: ManualClock) -> None:
    hour = hour_of(clock())
    service_counts_of(ledger).add(
        {
            ("billing", hour): {"sent": 1},
            ("billing", hour - 1): {"failed": 2},
            ("shop", hour): {"sent": 3},
        }
    )
    shards = [
        service_count_shards(ledger, "billing", hour),
        service_count_shards(ledger, "billing", hour - 1),
        service_count_shards(ledger, "shop", hour),
    ]
    assert [list(found.values()) for found in shards] == [
        [{"sent": 1}],
        [{"failed": 2}],
        [{"sent": 3}],
    ]
    assert len({shard for found in shards for shard in found}) == 1


def test_a_shard_that_does_not_exist_is_refused(ledger: Ledger, clock: ManualClock) -> None:
    records = service_counts_of(ledger)
    with pytest.raises(ValueError, match="a counter shard is 0 to 7, not -1"):
        records.add({("billing", hour_of(clock())): {"sent": 1}}, shard=-1)
    assert records.read("billing", week(clock)) == {}


def test_a_week_is_read_by_key_in_a_few_batches_without_a_scan(
    ledger: Ledger, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    hour = hour_of(clock())
    records = service_counts_of(ledger)
    for shard in range(SHARDS):
        increments = {("billing", hour - 20 * shard): {"sent": 1}, ("shop", hour): {"sent": 9}}
        records.add(increments, shard=shard)
    with watching_reads(ledger, monkeypatch, outcome_counts=True) as reads:
        counts = records.read("billing", week(clock))
    assert counts == {hour - 20 * shard: {"sent": 1} for shard in range(SHARDS)}
    assert reads.scans == 0
    if isinstance(ledger, SqliteLedger):
        assert reads.batches == 1
        assert "USING PRIMARY KEY" in reads.plans[0]
    else:  # memory: lookups; Firestore: get_all of every shard of the 168 hours
        assert reads.keys == WEEK_HOURS * SHARDS
        batches = -(-WEEK_HOURS * SHARDS // READ_BATCH_KEYS)
        assert reads.batches == (0 if isinstance(ledger, MemoryLedger) else batches)
        assert batches == 4


def test_threads_adding_to_shared_and_own_shards_lose_no_increment(
    ledger: Ledger, clock: ManualClock
) -> None:
    hour = hour_of(clock())
    records = service_counts_of(ledger)

    def add_many(shard: int) -> None:
        for _ in range(10):
            records.add({("billing", hour): {"sent": 1, "complained": 2}}, shard=shard)

    threads = [threading.Thread(target=add_many, args=(n % 3,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    each = {"sent": 20, "complained": 40}
    assert service_count_shards(ledger, "billing", hour) == {0: each, 1: each, 2: each}
    assert records.read("billing", week(clock)) == {hour: {"sent": 60, "complained": 120}}


def test_a_sqlite_ledger_made_before_sharding_keeps_its_counts_as_shard_zero(
    tmp_path: Path, clock: ManualClock
) -> None:
    path = tmp_path / "ledger.db"
    hour = hour_of(clock())
    with sqlite3.connect(path) as old:
        old.executescript(UNSHARDED_SCHEMA)
        old.execute(
            "INSERT INTO service_counts (service_id, hour, sent, bounced, expire_at)"
            " VALUES ('billing', ?, 4, 1, ?)",
            (hour, clock() + 9e9),
        )
    old.close()
    with SqliteLedger(path, claim_lease_s=60, clock=clock) as ledger:
        records = service_counts_of(ledger)
        records.add({("billing", hour): {"sent": 5}}, shard=2)
        assert service_count_shards(ledger, "billing", hour) == {
            0: {"sent": 4, "bounced": 1},
            2: {"sent": 5},
        }
        assert records.read("billing", week(clock)) == {hour: {"sent": 9, "bounced": 1}}


@pytest.mark.usefixtures("firestore_env")
def test_a_firestore_counter_written_before_sharding_counts_as_shard_zero(
    clock: ManualClock,
) -> None:
    hour = hour_of(clock())
    with FirestoreLedger(claim_lease_s=60, clock=clock) as ledger:
        old = ledger._client.collection(FIRESTORE_COLLECTION).document(f"billing@{hour}")
        old.set({"service_id": "billing", "sent": 4, "expire_at": utc(expire_at(hour))})
        records = service_counts_of(ledger)
        records.add({("billing", hour): {"sent": 5}}, shard=1)
        assert service_count_shards(ledger, "billing", hour) == {0: {"sent": 4}, 1: {"sent": 5}}
        assert records.read("billing", week(clock)) == {hour: {"sent": 9}}


# The table as workers made it before the counters were sharded.
UNSHARDED_SCHEMA = """
CREATE TABLE service_counts (
    service_id TEXT NOT NULL,
    hour       INTEGER NOT NULL,
    sent       INTEGER NOT NULL DEFAULT 0,
    recipients INTEGER NOT NULL DEFAULT 0,
    rejected   INTEGER NOT NULL DEFAULT 0,
    failed     INTEGER NOT NULL DEFAULT 0,
    bounced    INTEGER NOT NULL DEFAULT 0,
    complained INTEGER NOT NULL DEFAULT 0,
    expire_at  REAL NOT NULL,
    PRIMARY KEY (service_id, hour)
) WITHOUT ROWID;
"""
