"""The dead-letter pages: filter by service, code and age; confirm naming the count; replay
and purge exactly the selection, under the CLI's rules (the ledger vouches for replays)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.console.common import dead_lettered, replay_subscription
from tests.support.console import Console, console_on
from tests.support.worker_stack import Stack
from worker.formats.pubsub import REQUEST_ID_ATTRIBUTE


@pytest.fixture
def console(stack: Stack) -> Iterator[Console]:
    with console_on(stack) as console:
        yield console


def listed_ids(console: Console, **filters: str) -> list[str]:
    return [d["message_id"] for d in console.json("/dead-letters", **filters)["dead_letters"]]


@pytest.fixture
def three(stack: Stack) -> dict[str, str]:
    """Two dead letters of billing (two codes) and one of shop."""
    return {
        "unverified": dead_lettered(stack, "r1"),
        "throttled": dead_lettered(stack, "r2", code="throttled", message="Rate exceeded"),
        "shop": dead_lettered(stack, "s1", service_id="shop", sender="shop@example.com"),
    }


def test_dead_letters_filter_by_service_and_code(console: Console, three: dict[str, str]) -> None:
    assert sorted(listed_ids(console)) == sorted(three.values())
    assert listed_ids(console, service="shop") == [three["shop"]]
    assert listed_ids(console, service="billing", code="throttled") == [three["throttled"]]


def test_dead_letters_filter_by_age(console: Console, three: dict[str, str]) -> None:
    assert sorted(listed_ids(console, newer_than_h="1")) == sorted(three.values())
    assert listed_ids(console, older_than_h="1") == []


def test_each_dead_letter_says_what_its_code_means_and_what_to_do(
    console: Console, three: dict[str, str]
) -> None:
    [entry] = console.json("/dead-letters", code="throttled")["dead_letters"]
    assert entry["meaning"].startswith("SES's sending rate or quota")
    assert entry["advice"] == "Replay once the sending rate is back under SES's quota."


def test_the_confirmation_names_the_count_of_the_selection(
    console: Console, three: dict[str, str]
) -> None:
    response = console.get("/dead-letters/confirm?action=purge&service=billing")
    assert response.status_code == 200
    assert 'Purge <span data-field="count">2</span> dead letter(s)?' in response.text
    document = console.json("/dead-letters/confirm", action="purge", service="billing")
    assert sorted(document["message_ids"]) == sorted([three["unverified"], three["throttled"]])


def test_purge_removes_exactly_the_confirmed_selection(
    console: Console, three: dict[str, str]
) -> None:
    ids = console.json("/dead-letters/confirm", action="purge", code="throttled")["message_ids"]
    response = console.act("purge", ids)
    assert response.status_code == 200
    assert 'Purged <span data-field="done">1</span>' in response.text
    assert sorted(listed_ids(console)) == sorted([three["unverified"], three["shop"]])


def test_replay_publishes_the_selection_to_the_replay_topic_and_removes_it(
    console: Console, stack: Stack, three: dict[str, str]
) -> None:
    ids = console.json("/dead-letters/confirm", action="replay", service="billing")["message_ids"]
    response = console.act("replay", ids)
    assert response.status_code == 200
    assert 'Replayed <span data-field="done">2</span>' in response.text
    assert listed_ids(console) == [three["shop"]]
    replayed = stack.emulator.pull(replay_subscription(stack), 2)
    assert sorted(m.message.attributes[REQUEST_ID_ATTRIBUTE] for m in replayed) == ["r1", "r2"]


def test_a_replay_the_ledger_cannot_vouch_for_is_refused_and_stays(
    console: Console, stack: Stack
) -> None:
    unknown = dead_lettered(stack, "never-recorded", recorded=False)
    document = console.json("/dead-letters/confirm", action="replay")
    assert document["count"] == 0
    assert "the ledger has no record of it" in document["refused"][unknown]
    response = console.act("replay", [unknown])
    assert response.status_code == 200
    assert "cannot vouch" in response.text
    assert stack.nothing_more(replay_subscription(stack))
    assert listed_ids(console) == [unknown]


def test_an_unknown_action_is_refused(console: Console) -> None:
    assert console.get("/dead-letters/confirm?action=delete-everything").status_code == 400


def test_a_missing_dead_letter_subscription_is_a_clear_503(stack: Stack) -> None:
    with console_on(stack, EMAIL_WORKER_DEAD_LETTER_SUBSCRIPTION="no-such-subscription") as console:
        response = console.get("/dead-letters")
    assert response.status_code == 503
    assert "Pub/Sub cannot be used now" in response.text
    assert "Traceback" not in response.text
