"""Send counters: how many recipients each service sent, by the hour, over every instance.

A service's ``max_per_day`` (its configuration document) is checked against the sum of its
counters over the last day. Counters per service and hour, not a record per email: the
worker adds its sends in memory and writes them every few seconds
(:mod:`worker.processing.daily_cap`), one increment per service and hour, which every backend
applies atomically (SQLite's upsert, Firestore's ``Increment``, memory under its lock), so
instances never overwrite each other's counts. Counters expire two days after their hour.

Each (service, hour) is split into :data:`SHARDS` counters, the usual distributed counter:
Firestore sustains about one write a second to one document, and every instance flushes
into the current hour's counter every few seconds, so ten instances on one document would
write it about twice a second. A flush increments one shard, drawn at random for that flush
(:func:`pick_shard`); a read sums every shard of the hours it needs, fetched by key
(Firestore: ``get_all`` of at most :data:`READ_BATCH_KEYS` ids; SQLite: one range of the
primary key; memory: dictionary lookups), never a scan. A random shard per flush, rather than
one fixed per instance, spreads the writes evenly whatever the number of instances: with a
fixed shard, chance decides how many instances share one (ten instances on eight shards
leave some shard two or three of them), while increments do not care where they land.
Eight shards keep a document at a quarter of the guideline's rate with ten instances
flushing every five seconds, and to 40 instances within it; the price is the reads: a day of
one service is 25 x 8 = 200 keys, a week 168 x 8 = 1,344 (Firestore bills each key read,
found or not). Readers pay it once: they keep the totals of hours that can no longer change
(:mod:`worker.ledger.final_hours`) and read again only the current hour's 8 keys (16 in an
hour's first minutes).

Shard 0 keeps the id a counter had before sharding (Firestore ``service@hour``; SQLite's
rows are moved to shard 0 by :func:`worker.ledger.sqlite_schema.add_shard_key`), so counters
written by an older worker are still counted.

This module holds what the backends share: the hour and shard arithmetic and SQLite's
statements.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from typing import TypeVar

__all__ = [
    "COUNTER_RETENTION_S",
    "HOUR_S",
    "READ_BATCH_KEYS",
    "SHARDS",
    "SQLITE_ADD",
    "SQLITE_SCHEMA",
    "SQLITE_SUM",
    "SQLITE_SWEEP",
    "WINDOW_HOURS",
    "Increments",
    "batches",
    "check_shard",
    "counter_document_id",
    "hour_of",
    "pick_shard",
    "window_hours",
]

HOUR_S = 3600
#: Counters summed for "the last day": the current hour and the 24 before it, so that no 24
#: hours ever hold more than the cap (the window is between 24 and 25 hours long).
WINDOW_HOURS = 25
#: How long a counter is kept after its hour began.
COUNTER_RETENTION_S = 2 * 24 * HOUR_S
#: Counters per service and hour (send and outcome counters alike). Changing it keeps
#: existing counts readable only if it grows: a read sums shards 0 to SHARDS - 1.
SHARDS = 8
#: Most Firestore documents one ``get_all`` asks for: a day of one service is one call, a
#: week four.
READ_BATCH_KEYS = 400

#: Recipients to add, by (service id, hour).
Increments = Mapping[tuple[str, int], int]

_T = TypeVar("_T")


def hour_of(epoch_s: float) -> int:
    """The number of the hour ``epoch_s`` falls in (hours since the epoch)."""
    return int(epoch_s // HOUR_S)


def window_hours(epoch_s: float) -> range:
    """The hours whose counters make up the day ending at ``epoch_s``."""
    now = hour_of(epoch_s)
    return range(now - WINDOW_HOURS + 1, now + 1)


def pick_shard() -> int:
    """The shard a flush increments: a fresh random one each time."""
    return random.randrange(SHARDS)  # noqa: S311 (spreading load, not a secret)


def check_shard(shard: int | None) -> int:
    """``shard``, or a :func:`pick_shard` if None; ValueError if it is not one of the
    :data:`SHARDS`."""
    if shard is None:
        return pick_shard()
    if not 0 <= shard < SHARDS:
        raise ValueError(f"a counter shard is 0 to {SHARDS - 1}, not {shard}")
    return shard


def counter_document_id(service_id: str, hour: int, shard: int = 0) -> str:
    """Firestore's document id of a counter shard (service ids are ``[a-z0-9_-]``); shard 0
    keeps the id of the counters written before sharding."""
    return f"{service_id}@{hour}" if shard == 0 else f"{service_id}@{hour}@{shard}"


def batches(items: Sequence[_T], size: int = READ_BATCH_KEYS) -> Iterator[list[_T]]:
    """``items`` in consecutive slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS send_counts (
    service_id TEXT NOT NULL,
    hour       INTEGER NOT NULL,
    shard      INTEGER NOT NULL DEFAULT 0,
    recipients INTEGER NOT NULL,
    expire_at  REAL NOT NULL,
    PRIMARY KEY (service_id, hour, shard)
) WITHOUT ROWID;
"""
SQLITE_ADD = """
INSERT INTO send_counts (service_id, hour, shard, recipients, expire_at)
VALUES (:service_id, :hour, :shard, :recipients, :expire_at)
ON CONFLICT (service_id, hour, shard) DO UPDATE SET
    recipients = recipients + excluded.recipients
"""
# A range of the primary key: every shard of the hours asked for, summed by hour.
SQLITE_SUM = """
SELECT hour, SUM(recipients) FROM send_counts
WHERE service_id = :service_id AND hour BETWEEN :first AND :last
GROUP BY hour
"""
SQLITE_SWEEP = "DELETE FROM send_counts WHERE expire_at < :now"
