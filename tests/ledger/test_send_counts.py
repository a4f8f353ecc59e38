"""The services' hourly send counters every ledger backend keeps: memory, SQLite and Firestore."""

from __future__ import annotations

import threading

from tests.support.clock import ManualClock
from worker.ledger import Ledger
from worker.ledger.send_counts import HOUR_S, hour_of, window_hours


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
