"""Send counters: how many recipients each service sent, by the hour, over every instance.

A service's ``max_per_day`` (its configuration document) is checked against the sum of its
counters over the last day. One counter per service and hour, not a record per email: the
worker adds its sends in memory and writes them every few seconds
(:mod:`worker.processing.daily_cap`), one increment per service and hour, which every backend
applies atomically (SQLite's upsert, Firestore's ``Increment``, memory under its lock), so
instances never overwrite each other's counts. Counters expire two days after their hour.

This module holds what the backends share: the hour arithmetic and SQLite's statements.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "COUNTER_RETENTION_S",
    "HOUR_S",
    "SQLITE_ADD",
    "SQLITE_SCHEMA",
    "SQLITE_SUM",
    "SQLITE_SWEEP",
    "WINDOW_HOURS",
    "Increments",
    "counter_document_id",
    "hour_of",
    "window_hours",
]

HOUR_S = 3600
#: Counters summed for "the last day": the current hour and the 24 before it, so that no 24
#: hours ever hold more than the cap (the window is between 24 and 25 hours long).
WINDOW_HOURS = 25
#: How long a counter is kept after its hour began.
COUNTER_RETENTION_S = 2 * 24 * HOUR_S

#: Recipients to add, by (service id, hour).
Increments = Mapping[tuple[str, int], int]


def hour_of(epoch_s: float) -> int:
    """The number of the hour ``epoch_s`` falls in (hours since the epoch)."""
    return int(epoch_s // HOUR_S)


def window_hours(epoch_s: float) -> range:
    """The hours whose counters make up the day ending at ``epoch_s``."""
    now = hour_of(epoch_s)
    return range(now - WINDOW_HOURS + 1, now + 1)


def counter_document_id(service_id: str, hour: int) -> str:
    """Firestore's document id of a counter (service ids are ``[a-z0-9_-]``)."""
    return f"{service_id}@{hour}"


SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS send_counts (
    service_id TEXT NOT NULL,
    hour       INTEGER NOT NULL,
    recipients INTEGER NOT NULL,
    expire_at  REAL NOT NULL,
    PRIMARY KEY (service_id, hour)
) WITHOUT ROWID;
"""
SQLITE_ADD = """
INSERT INTO send_counts (service_id, hour, recipients, expire_at)
VALUES (:service_id, :hour, :recipients, :expire_at)
ON CONFLICT (service_id, hour) DO UPDATE SET recipients = recipients + excluded.recipients
"""
SQLITE_SUM = """
SELECT COALESCE(SUM(recipients), 0) FROM send_counts
WHERE service_id = :service_id AND hour BETWEEN :first AND :last
"""
SQLITE_SWEEP = "DELETE FROM send_counts WHERE expire_at < :now"
