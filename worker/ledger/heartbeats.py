"""Heartbeats: which worker instances are alive, by the group whose quota they share.

Each instance writes its heartbeat every few seconds into the same store as the requests'
records, and counts the live heartbeats of its group to know its share of that group's SES
sending rate (:mod:`worker.processing.quota_pacer`). A group is an opaque string (the pacer
uses ``<AWS account>/<region>``); an instance is any id unique to one process.

A heartbeat expires ``expire_after_s`` after it was written: an instance that died without
saying goodbye stops counting once its last heartbeat has expired, and one that stops cleanly
removes its own at once. Reads skip expired heartbeats; the stores delete them later (SQLite's
sweep, Firestore's TTL policy on ``expire_at``).
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.ledger.model import LedgerUnavailable
from worker.ledger.records import Records

__all__ = ["Heartbeat", "HeartbeatKey", "remove", "upsert"]

#: (group, instance)
HeartbeatKey = tuple[str, str]

# How often a write re-reads when the record changes under it (only its own instance writes
# it, so more than one round means a clean stop raced the last beat).
_ROUNDS = 3


@dataclass(frozen=True)
class Heartbeat:
    """Instance ``instance`` of ``group`` was alive at ``beat_at`` (epoch seconds) and counts
    as alive until ``expire_at``."""

    group: str
    instance: str
    beat_at: float
    expire_at: float

    @property
    def key(self) -> HeartbeatKey:
        return (self.group, self.instance)

    def live_at(self, now: float) -> bool:
        return self.expire_at >= now


def upsert(records: Records[HeartbeatKey, Heartbeat], heartbeat: Heartbeat) -> None:
    """Store ``heartbeat`` over whatever its instance wrote before."""
    for _ in range(_ROUNDS):
        if records.insert_if_absent(heartbeat.key, heartbeat):
            return
        read = records.read(heartbeat.key)
        if read is None:
            continue  # removed in between: insert again
        if records.write_if_version(heartbeat.key, heartbeat, read[1]):
            return
    raise LedgerUnavailable(f"the heartbeat of {heartbeat.instance} kept changing")


def remove(records: Records[HeartbeatKey, Heartbeat], key: HeartbeatKey) -> None:
    """Delete the heartbeat of ``key``, if there is one."""
    for _ in range(_ROUNDS):
        read = records.read(key)
        if read is None or records.delete_if_version(key, read[1]):
            return
    raise LedgerUnavailable(f"the heartbeat of {key[1]} kept changing")
