"""HeldMessages: what an operator's sweep of the dead letters holds, renews and lets go of,
on its own, with a clock the test moves and the deadline changes it asks for recorded."""

from __future__ import annotations

import logging

import pytest
from google.cloud.pubsub_v1.types import PubsubMessage, ReceivedMessage

from worker.ops.leases import HeldMessages

LEASE_S = 60


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Deadlines:
    """Records each deadline change asked for: (ack ids, seconds)."""

    def __init__(self) -> None:
        self.changes: list[tuple[list[str], int]] = []

    def __call__(self, ack_ids: list[str], seconds: int) -> None:
        self.changes.append((list(ack_ids), seconds))


def received(message_id: str, ack_id: str) -> ReceivedMessage:
    return ReceivedMessage(ack_id=ack_id, message=PubsubMessage(message_id=message_id, data=b"{}"))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def deadlines() -> Deadlines:
    return Deadlines()


@pytest.fixture
def held(deadlines: Deadlines, clock: Clock) -> HeldMessages:
    return HeldMessages(deadlines, LEASE_S, clock=clock)


def test_holding_new_messages_returns_them_and_extends_their_lease(
    held: HeldMessages, deadlines: Deadlines
) -> None:
    fresh = held.hold([received("m1", "a1"), received("m2", "a2")])
    assert [m.message.message_id for m in fresh] == ["m1", "m2"]
    assert deadlines.changes == [(["a1", "a2"], LEASE_S)]
    assert held.held == {"m1": "a1", "m2": "a2"}


def test_a_message_delivered_again_is_not_returned_but_held_under_its_new_ack_id(
    held: HeldMessages, deadlines: Deadlines
) -> None:
    held.hold([received("m1", "a1")])
    again = held.hold([received("m1", "a1-again"), received("m2", "a2")])
    assert [m.message.message_id for m in again] == ["m2"]
    assert deadlines.changes[-1] == (["a2"], LEASE_S)
    assert held.held == {"m1": "a1-again", "m2": "a2"}


def test_holding_only_messages_seen_before_changes_no_deadline(
    held: HeldMessages, deadlines: Deadlines
) -> None:
    held.hold([received("m1", "a1")])
    assert held.hold([received("m1", "a1-again")]) == []
    assert len(deadlines.changes) == 1


def test_the_lease_is_renewed_once_half_of_it_has_passed_and_not_before(
    held: HeldMessages, deadlines: Deadlines, clock: Clock
) -> None:
    held.hold([received("m1", "a1"), received("m2", "a2")])
    clock.now += LEASE_S / 2
    held.renew_if_due()
    assert len(deadlines.changes) == 1
    clock.now += 1
    held.renew_if_due()
    assert deadlines.changes[-1] == (["a1", "a2"], LEASE_S)


def test_the_next_renewal_counts_from_the_last_one(
    held: HeldMessages, deadlines: Deadlines, clock: Clock
) -> None:
    held.hold([received("m1", "a1")])
    clock.now += LEASE_S / 2 + 1
    held.renew_if_due()
    clock.now += LEASE_S / 2
    held.renew_if_due()
    assert len(deadlines.changes) == 2  # the hold and the first renewal
    clock.now += 1
    held.renew_if_due()
    assert len(deadlines.changes) == 3


def test_a_renewal_is_under_the_latest_ack_ids_and_leaves_out_what_was_consumed(
    held: HeldMessages, deadlines: Deadlines, clock: Clock
) -> None:
    held.hold([received("m1", "a1"), received("m2", "a2"), received("m3", "a3")])
    held.hold([received("m1", "a1-again")])
    held.consumed(["m2"])
    clock.now += LEASE_S
    held.renew_if_due()
    assert deadlines.changes[-1] == (["a1-again", "a3"], LEASE_S)


def test_nothing_held_means_nothing_to_renew(
    held: HeldMessages, deadlines: Deadlines, clock: Clock
) -> None:
    clock.now += 10 * LEASE_S
    held.renew_if_due()
    assert deadlines.changes == []


def test_release_hands_back_what_was_not_consumed(held: HeldMessages, deadlines: Deadlines) -> None:
    held.hold([received("m1", "a1"), received("m2", "a2"), received("m3", "a3")])
    held.consumed(["m2", "unknown"])
    held.release()
    assert deadlines.changes[-1] == (["a1", "a3"], 0)
    assert held.held == {}


def test_a_second_release_changes_nothing(held: HeldMessages, deadlines: Deadlines) -> None:
    held.hold([received("m1", "a1")])
    held.release()
    held.release()
    assert deadlines.changes == [(["a1"], LEASE_S), (["a1"], 0)]


def test_releasing_when_everything_was_consumed_changes_no_deadline(
    held: HeldMessages, deadlines: Deadlines
) -> None:
    held.hold([received("m1", "a1")])
    held.consumed(["m1"])
    held.release()
    assert deadlines.changes == [(["a1"], LEASE_S)]


def test_leaving_the_context_after_an_error_releases_what_is_held(
    deadlines: Deadlines, clock: Clock
) -> None:
    def interrupted_sweep() -> None:
        with HeldMessages(deadlines, LEASE_S, clock=clock) as held:
            held.hold([received("m1", "a1")])
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted_sweep()
    assert deadlines.changes[-1] == (["a1"], 0)


def test_a_release_pubsub_refuses_is_logged_not_raised_and_not_repeated(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []

    def refusing(ack_ids: list[str], seconds: int) -> None:
        calls.append(seconds)
        if seconds == 0:
            raise ConnectionError("pubsub down")

    held = HeldMessages(refusing, LEASE_S, clock=clock)
    held.hold([received("m1", "a1")])
    with caplog.at_level(logging.WARNING, logger="worker.ops.leases"):
        held.release()
        held.release()
    assert calls == [LEASE_S, 0]
    [record] = caplog.records
    assert "could not release 1 dead letters" in record.getMessage()
    assert "pubsub down" in record.getMessage()
