"""Schedule records on every ledger backend: memory, SQLite and the Firestore emulator."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.ledger.common import RETENTION_S, START
from tests.support.clock import ManualClock
from worker.ledger import Ledger, LedgerKey, SqliteLedger
from worker.ledger.schedule_stores import schedules_of
from worker.ledger.schedules import AddAnswer, CancelAnswer, Schedule, ScheduleState

KEY = LedgerKey("billing", "invoice-1")
LEASE_S = 20.0


def schedule(key: LedgerKey = KEY, *, due_in_s: float = 120.0, digest: str = "h1") -> Schedule:
    return Schedule(
        key=key,
        due_at=START + due_in_s,
        data=b'{"version": 1}',
        message_id="m-" + key.request_id,
        content_hash=digest,
    )


def test_a_scheduled_request_is_kept_with_its_bytes_and_due_time(ledger: Ledger) -> None:
    answer, stored = schedules_of(ledger).add(schedule())

    assert answer is AddAnswer.ADDED
    kept = schedules_of(ledger).get(KEY)
    assert kept is not None
    assert kept == stored
    assert (kept.data, kept.message_id) == (b'{"version": 1}', "m-invoice-1")
    assert kept.due_at == START + 120
    assert kept.state is ScheduleState.SCHEDULED
    assert kept.expire_at == START + 120 + RETENTION_S


def test_scheduling_the_same_request_again_finds_it_and_other_content_conflicts(
    ledger: Ledger,
) -> None:
    book = schedules_of(ledger)
    book.add(schedule())

    assert book.add(schedule(due_in_s=500))[0] is AddAnswer.KNOWN
    assert book.add(schedule(digest="other"))[0] is AddAnswer.CONFLICT
    kept = book.get(KEY)
    assert kept is not None
    assert kept.due_at == START + 120


def test_a_record_is_not_taken_before_it_is_due(ledger: Ledger, clock: ManualClock) -> None:
    book = schedules_of(ledger)
    book.add(schedule())
    clock.now = START + 119

    assert book.take_due(owner="a", lease_s=LEASE_S, limit=10) == []


def test_a_due_record_is_taken_by_one_dispatcher_only(ledger: Ledger, clock: ManualClock) -> None:
    book = schedules_of(ledger)
    book.add(schedule())
    clock.now = START + 121

    taken = book.take_due(owner="a", lease_s=LEASE_S, limit=10)
    assert [(s.key, s.owner) for s in taken] == [(KEY, "a")]
    assert book.take_due(owner="b", lease_s=LEASE_S, limit=10) == []


def test_a_lease_that_ran_out_lets_another_dispatcher_take_the_record(
    ledger: Ledger, clock: ManualClock
) -> None:
    book = schedules_of(ledger)
    book.add(schedule())
    clock.now = START + 121
    book.take_due(owner="a", lease_s=LEASE_S, limit=10)
    clock.now += LEASE_S + 1

    assert [s.owner for s in book.take_due(owner="b", lease_s=LEASE_S, limit=10)] == ["b"]
    assert not book.finish(KEY, owner="a")
    assert book.finish(KEY, owner="b")


def test_a_finished_record_is_not_taken_again_and_a_cancel_is_too_late(
    ledger: Ledger, clock: ManualClock
) -> None:
    book = schedules_of(ledger)
    book.add(schedule())
    clock.now = START + 121
    book.take_due(owner="a", lease_s=LEASE_S, limit=10)
    assert book.finish(KEY, owner="a")
    clock.now += LEASE_S + 1

    assert book.take_due(owner="b", lease_s=LEASE_S, limit=10) == []
    assert book.cancel(KEY)[0] is CancelAnswer.TOO_LATE
    kept = book.get(KEY)
    assert kept is not None
    assert kept.state is ScheduleState.DONE


def test_a_released_record_is_taken_again(ledger: Ledger, clock: ManualClock) -> None:
    book = schedules_of(ledger)
    book.add(schedule())
    clock.now = START + 121
    book.take_due(owner="a", lease_s=LEASE_S, limit=10)

    assert book.release(KEY, owner="a")
    assert [s.owner for s in book.take_due(owner="b", lease_s=LEASE_S, limit=10)] == ["b"]


def test_a_cancelled_record_is_never_taken(ledger: Ledger, clock: ManualClock) -> None:
    book = schedules_of(ledger)
    book.add(schedule())

    assert book.cancel(KEY)[0] is CancelAnswer.CANCELLED
    assert book.cancel(KEY)[0] is CancelAnswer.CANCELLED
    clock.now = START + 121
    assert book.take_due(owner="a", lease_s=LEASE_S, limit=10) == []


def test_a_cancel_while_a_dispatcher_holds_the_record_is_too_late(
    ledger: Ledger, clock: ManualClock
) -> None:
    book = schedules_of(ledger)
    book.add(schedule())
    clock.now = START + 121
    book.take_due(owner="a", lease_s=LEASE_S, limit=10)

    assert book.cancel(KEY)[0] is CancelAnswer.TOO_LATE


def test_a_cancel_of_an_unknown_request_finds_nothing(ledger: Ledger) -> None:
    assert schedules_of(ledger).cancel(KEY) == (CancelAnswer.NOT_FOUND, None)


def test_the_take_is_bounded_and_earliest_first(ledger: Ledger, clock: ManualClock) -> None:
    book = schedules_of(ledger)
    for index in range(5):
        book.add(schedule(LedgerKey("billing", f"r{index}"), due_in_s=100 - index))
    clock.now = START + 200

    first = book.take_due(owner="a", lease_s=LEASE_S, limit=3)
    rest = book.take_due(owner="b", lease_s=LEASE_S, limit=10)
    assert len(first) == 3
    assert sorted(s.key.request_id for s in first + rest) == [f"r{i}" for i in range(5)]


def test_a_service_lists_only_its_own_pending_records_due_before_a_time(
    ledger: Ledger,
) -> None:
    book = schedules_of(ledger)
    book.add(schedule(LedgerKey("billing", "late"), due_in_s=900))
    book.add(schedule(LedgerKey("billing", "soon"), due_in_s=60))
    book.add(schedule(LedgerKey("billing", "gone"), due_in_s=70))
    book.add(schedule(LedgerKey("shop", "other"), due_in_s=60))
    book.cancel(LedgerKey("billing", "gone"))

    assert [s.key.request_id for s in book.scheduled("billing")] == ["soon", "late"]
    listed = book.scheduled("billing", due_before=START + 100)
    assert [s.key.request_id for s in listed] == ["soon"]


def test_records_past_their_retention_are_gone(ledger: Ledger, clock: ManualClock) -> None:
    book = schedules_of(ledger)
    book.add(schedule())
    clock.now = START + 120 + RETENTION_S + 1

    assert book.take_due(owner="a", lease_s=LEASE_S, limit=10) == []
    assert book.get(KEY) is None
    assert book.scheduled("billing") == []


def test_sqlite_deletes_the_records_past_their_retention(
    tmp_path: Path, clock: ManualClock
) -> None:
    path = tmp_path / "ledger.db"
    with SqliteLedger(path, claim_lease_s=30, retention_s=RETENTION_S, clock=clock) as ledger:
        book = schedules_of(ledger)
        book.add(schedule())
        book.add(schedule(LedgerKey("billing", "later"), due_in_s=RETENTION_S))
        clock.now = START + 120 + RETENTION_S + 1
        book.take_due(owner="a", lease_s=LEASE_S, limit=10)
    with sqlite3.connect(path) as conn:
        left = conn.execute("SELECT request_id FROM schedules").fetchall()
    assert left == [("later",)]


def test_a_deferred_record_is_left_out_of_the_due_reads_until_its_new_time(
    ledger: Ledger, clock: ManualClock
) -> None:
    book = schedules_of(ledger)
    book.add(schedule())
    book.add(schedule(LedgerKey("billing", "next"), due_in_s=130))
    clock.now = START + 121
    [taken] = book.take_due(owner="a", lease_s=LEASE_S, limit=1)

    assert book.defer(KEY, owner="a", due_at=START + 3600)
    clock.now = START + 131
    # Neither leased nor due: the other record is taken, though only one is taken at a time.
    other = LedgerKey("billing", "next")
    assert [s.key for s in book.take_due(owner="b", lease_s=LEASE_S, limit=1)] == [other]
    book.finish(other, owner="b")
    clock.now = START + 3599
    assert book.take_due(owner="b", lease_s=LEASE_S, limit=10) == []
    clock.now = START + 3600
    assert [s.key for s in book.take_due(owner="b", lease_s=LEASE_S, limit=10)] == [KEY]
    assert taken.key == KEY


def test_a_deferred_record_is_kept_the_retention_past_its_new_time(
    ledger: Ledger, clock: ManualClock
) -> None:
    book = schedules_of(ledger)
    book.add(schedule())
    clock.now = START + 121
    book.take_due(owner="a", lease_s=LEASE_S, limit=1)
    book.defer(KEY, owner="a", due_at=START + 2 * RETENTION_S)

    clock.now = START + 120 + RETENTION_S + 1
    kept = book.get(KEY)
    assert kept is not None
    assert kept.expire_at == START + 3 * RETENTION_S
    assert kept.state is ScheduleState.SCHEDULED


def test_only_the_dispatcher_holding_the_record_can_defer_it(
    ledger: Ledger, clock: ManualClock
) -> None:
    book = schedules_of(ledger)
    book.add(schedule())
    clock.now = START + 121
    book.take_due(owner="a", lease_s=LEASE_S, limit=1)

    assert not book.defer(KEY, owner="b", due_at=START + 3600)
    kept = book.get(KEY)
    assert kept is not None
    assert kept.due_at == START + 120
