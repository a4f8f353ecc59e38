"""Schedule records: requests kept until their ``send_at``, in the ledger's own store.

One record per (service_id, request_id), the ledger's key, holding the request's bytes as
they arrived, the Pub/Sub message id they came with, their content hash and the due time.
:class:`Schedules` decides everything on the same primitives as the ledger's claims
(:class:`~worker.ledger.records.Records`: insert if absent, read with a version, write only
at that version), plus one range read per backend (:class:`ScheduleRecords.due`): the keys of
the records still to send that are due before a time, read from an index, never a scan.

A due record is *taken* with a short lease (``lease_s``) by one dispatcher at a time, and
*finished* once its delivery is settled; a dispatcher that dies leaves a lease that runs out,
and another takes the record again. That makes the dispatch at-least-once: the send is
exactly once because the dispatched request is claimed in the ledger like any redelivery.
A record stays after it is finished or cancelled, until the ledger's retention has passed
since its due time, so a late cancel is told it came too late.

The backends' stores are in :mod:`~worker.ledger.schedules_sqlite`,
:mod:`~worker.ledger.schedules_firestore` and :mod:`~worker.ledger.schedules_memory`;
:func:`~worker.ledger.schedule_stores.schedules_of` gives a ledger's one :class:`Schedules`.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TypeVar

from worker.ledger.base import CLAIM_ROUNDS, Ledger, naming
from worker.ledger.model import LedgerKey, LedgerUnavailable
from worker.ledger.records import Records

__all__ = [
    "AddAnswer",
    "CancelAnswer",
    "Schedule",
    "ScheduleRecords",
    "ScheduleState",
    "Schedules",
]

_T = TypeVar("_T")

#: How often a dispatcher deletes the records whose retention has passed.
SWEEP_INTERVAL_S = 3600.0


class ScheduleState(enum.StrEnum):
    SCHEDULED = "scheduled"  # waiting for its time, or being dispatched under a lease
    DONE = "done"  # dispatched, and its delivery settled: the ledger holds its outcome
    CANCELLED = "cancelled"


class AddAnswer(enum.StrEnum):
    ADDED = "added"  # recorded now
    KNOWN = "known"  # the same request was recorded before (a redelivery): see its state
    CONFLICT = "conflict"  # the request_id was recorded for other content


class CancelAnswer(enum.StrEnum):
    CANCELLED = "cancelled"  # it will not be sent (also when it was cancelled before)
    TOO_LATE = "too_late"  # already sent, or being dispatched now
    NOT_FOUND = "not_found"  # no such scheduled request (never, or its record expired)


@dataclass(frozen=True)
class Schedule:
    """A request to send at ``due_at`` (epoch seconds). The repr leaves out the bytes."""

    key: LedgerKey
    due_at: float
    data: bytes = field(repr=False)
    #: The Pub/Sub message id the request arrived with: a request without a request_id
    #: takes it as its id, so the dispatched delivery carries it again.
    message_id: str
    content_hash: str
    state: ScheduleState = ScheduleState.SCHEDULED
    owner: str | None = None
    lease_until: float | None = None
    created_at: float = 0.0
    expire_at: float = 0.0

    def leased(self, now: float) -> bool:
        """Whether a dispatcher holds it now."""
        return self.lease_until is not None and self.lease_until > now


class ScheduleRecords(Records[LedgerKey, Schedule]):
    """The schedule records of one backend: the ledger's primitives, and the range reads."""

    #: The largest request the backend can keep (None: no limit of its own).
    max_data_bytes: int | None = None

    @abc.abstractmethod
    def due(self, before: float, limit: int) -> list[LedgerKey]:
        """Keys of at most ``limit`` records still scheduled with ``due_at <= before``,
        earliest first (from an index, whatever the number of records)."""

    @abc.abstractmethod
    def of_service(self, service_id: str, before: float | None, limit: int) -> list[Schedule]:
        """At most ``limit`` of ``service_id``'s records still scheduled, due before
        ``before`` if given, earliest first."""

    def sweep(self, now: float) -> int:
        """Delete the records whose retention has passed; how many went. Firestore's TTL
        policy does it there: by default nothing."""
        return 0


class Schedules:
    """The scheduling protocol on ``ledger``'s store (see the module docstring)."""

    def __init__(self, ledger: Ledger, records: ScheduleRecords) -> None:
        self._ledger = ledger
        self._records = records
        self._next_sweep = 0.0

    @property
    def clock(self) -> Callable[[], float]:
        return self._ledger._clock

    @property
    def max_data_bytes(self) -> int | None:
        """The largest request this store can keep, or None."""
        return self._records.max_data_bytes

    def add(self, schedule: Schedule) -> tuple[AddAnswer, Schedule]:
        """Record ``schedule`` unless its key has a record; the answer and the stored one."""
        now = self.clock()
        fresh = replace(
            schedule,
            state=ScheduleState.SCHEDULED,
            owner=None,
            lease_until=None,
            created_at=now,
            expire_at=max(now, schedule.due_at) + self._ledger._retention_s,
        )

        def add() -> tuple[AddAnswer, Schedule]:
            for _ in range(CLAIM_ROUNDS):
                if self._records.insert_if_absent(fresh.key, fresh):
                    return AddAnswer.ADDED, fresh
                read = self._records.read(fresh.key)
                if read is None:
                    continue
                stored = read[0]
                same = stored.content_hash == fresh.content_hash
                return (AddAnswer.KNOWN if same else AddAnswer.CONFLICT), stored
            raise LedgerUnavailable(naming("the schedule kept changing while adding", fresh.key))

        return self._ledger._writing(naming("schedule", fresh.key), add)

    def get(self, key: LedgerKey) -> Schedule | None:
        """The record of ``key``, or None (none, or expired)."""
        read = self._ledger._reading(naming("read the schedule of", key), lambda: self._read(key))
        return None if read is None else read[0]

    def take_due(self, *, owner: str, lease_s: float, limit: int) -> list[Schedule]:
        """Lease to ``owner`` for ``lease_s`` at most ``limit`` records due now that nobody
        holds; return them. Another dispatcher's write in between makes a record's take fail,
        and it is left to that one."""

        def take() -> list[Schedule]:
            now = self.clock()
            if now >= self._next_sweep:
                self._records.sweep(now)
                self._next_sweep = now + SWEEP_INTERVAL_S
            taken = []
            for key in self._records.due(now, limit):
                read = self._read(key)
                if read is None:
                    continue
                stored, version = read
                if stored.state is not ScheduleState.SCHEDULED or stored.leased(now):
                    continue
                leased = replace(stored, owner=owner, lease_until=now + lease_s)
                if self._records.write_if_version(key, leased, version):
                    taken.append(leased)
            return taken

        return self._ledger._writing("take the due schedules", take)

    def finish(self, key: LedgerKey, *, owner: str) -> bool:
        """Mark ``owner``'s leased record sent (its delivery settled); False if not its."""
        return self._change(key, owner, "finish", lambda s: replace(s, state=ScheduleState.DONE))

    def release(self, key: LedgerKey, *, owner: str) -> bool:
        """Give up ``owner``'s lease, for the record to be taken again."""
        return self._change(key, owner, "release", lambda s: s)

    def defer(self, key: LedgerKey, *, owner: str, due_at: float) -> bool:
        """Give up ``owner``'s lease on a record whose request is held, making it due again
        at ``due_at`` (kept at least the retention past it); False if not its."""
        retention_s = self._ledger._retention_s

        def later(stored: Schedule) -> Schedule:
            expire_at = max(stored.expire_at, due_at + retention_s)
            return replace(stored, due_at=due_at, expire_at=expire_at)

        return self._change(key, owner, "defer", later)

    def cancel(self, key: LedgerKey) -> tuple[CancelAnswer, Schedule | None]:
        """Cancel ``key``'s record unless it is sent or being dispatched."""

        def cancel() -> tuple[CancelAnswer, Schedule | None]:
            for _ in range(CLAIM_ROUNDS):
                read = self._read(key)
                if read is None:
                    return CancelAnswer.NOT_FOUND, None
                stored, version = read
                if stored.state is ScheduleState.CANCELLED:
                    return CancelAnswer.CANCELLED, stored
                if stored.state is ScheduleState.DONE or stored.leased(self.clock()):
                    return CancelAnswer.TOO_LATE, stored
                cancelled = replace(stored, state=ScheduleState.CANCELLED, owner=None)
                if self._records.write_if_version(key, cancelled, version):
                    return CancelAnswer.CANCELLED, cancelled
            raise LedgerUnavailable(naming("the schedule kept changing while cancelling", key))

        return self._ledger._writing(naming("cancel the schedule of", key), cancel)

    def scheduled(
        self, service_id: str, *, due_before: float | None = None, limit: int = 1000
    ) -> list[Schedule]:
        """``service_id``'s records still to send, earliest first."""
        now = self.clock()
        found = self._ledger._reading(
            "list the schedules of " + service_id,
            lambda: self._records.of_service(service_id, due_before, limit),
        )
        return [schedule for schedule in found if schedule.expire_at >= now]

    # -- helpers ---------------------------------------------------------------------------

    def _read(self, key: LedgerKey) -> tuple[Schedule, object] | None:
        read = self._records.read(key)
        if read is None or read[0].expire_at < self.clock():
            return None
        return read

    def _change(
        self, key: LedgerKey, owner: str, action: str, change: Callable[[Schedule], Schedule]
    ) -> bool:
        def write() -> bool:
            read = self._read(key)
            if read is None or read[0].owner != owner:
                return False
            if read[0].state is not ScheduleState.SCHEDULED:
                return False
            unleased = replace(change(read[0]), owner=None, lease_until=None)
            return self._records.write_if_version(key, unleased, read[1])

        return self._ledger._writing(naming(action + " the schedule of", key), write)
