"""The instances' heartbeats every ledger backend keeps, checked on memory, SQLite and
Firestore."""

from __future__ import annotations

from tests.ledger.common import START
from tests.support.clock import ManualClock
from worker.ledger import Heartbeat, Ledger

GROUP = "123456789012/eu-west-2"


def instances(ledger: Ledger, group: str = GROUP) -> list[str]:
    return [beat.instance for beat in ledger.heartbeats(group)]


def test_a_new_ledger_knows_no_live_instance(ledger: Ledger) -> None:
    assert ledger.heartbeats(GROUP) == []


def test_a_heartbeat_is_kept_with_its_time_and_expiry(ledger: Ledger) -> None:
    stored = ledger.beat(GROUP, "worker-a", expire_after_s=15)

    assert stored == Heartbeat(GROUP, "worker-a", beat_at=START, expire_at=START + 15)
    assert ledger.heartbeats(GROUP) == [stored]


def test_every_live_instance_of_a_group_is_listed_once_by_instance(ledger: Ledger) -> None:
    for instance in ("worker-b", "worker-a", "worker-b"):
        ledger.beat(GROUP, instance, expire_after_s=15)

    assert instances(ledger) == ["worker-a", "worker-b"]


def test_the_heartbeats_of_another_group_are_not_listed(ledger: Ledger) -> None:
    ledger.beat(GROUP, "worker-a", expire_after_s=15)
    ledger.beat("210987654321/us-east-1", "worker-b", expire_after_s=15)

    assert instances(ledger) == ["worker-a"]


def test_an_instance_stops_counting_once_its_last_heartbeat_expires(
    ledger: Ledger, clock: ManualClock
) -> None:
    ledger.beat(GROUP, "worker-a", expire_after_s=15)
    ledger.beat(GROUP, "worker-b", expire_after_s=15)
    clock.now += 10
    ledger.beat(GROUP, "worker-a", expire_after_s=15)

    clock.now += 6  # worker-b's heartbeat is 16 s old; worker-a's 6 s
    assert instances(ledger) == ["worker-a"]


def test_a_heartbeat_written_again_moves_its_expiry_forward(
    ledger: Ledger, clock: ManualClock
) -> None:
    ledger.beat(GROUP, "worker-a", expire_after_s=15)
    clock.now += 10
    ledger.beat(GROUP, "worker-a", expire_after_s=15)

    assert [beat.expire_at for beat in ledger.heartbeats(GROUP)] == [START + 25]


def test_an_ended_heartbeat_stops_counting_at_once(ledger: Ledger) -> None:
    ledger.beat(GROUP, "worker-a", expire_after_s=15)
    ledger.beat(GROUP, "worker-b", expire_after_s=15)

    ledger.end_heartbeat(GROUP, "worker-b")
    ledger.end_heartbeat(GROUP, "worker-c")  # never beat: nothing to remove

    assert instances(ledger) == ["worker-a"]


def test_an_instance_beating_again_after_its_heartbeat_expired_counts_again(
    ledger: Ledger, clock: ManualClock
) -> None:
    ledger.beat(GROUP, "worker-a", expire_after_s=15)
    clock.now += 60
    ledger.beat(GROUP, "worker-a", expire_after_s=15)

    assert instances(ledger) == ["worker-a"]
