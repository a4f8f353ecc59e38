"""The pause records every ledger backend keeps, checked on memory, SQLite and Firestore."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from tests.ledger.common import START
from worker.ledger import ALL_SERVICES, Ledger, Pause

SINCE = datetime.fromtimestamp(START, UTC)
SUBSCRIPTION = "projects/p/subscriptions/email-requests-billing-worker"
PUSH_CONFIG = '{"pushEndpoint": "https://worker.example/pubsub/push"}'


def billing(**fields: Any) -> Pause:
    return replace(Pause("billing", since=SINCE, by="alice"), **fields)


def test_nothing_is_paused_in_a_new_ledger(ledger: Ledger) -> None:
    assert ledger.pauses() == []


def test_a_pause_is_kept_with_its_time_author_reason_and_saved_push_configs(
    ledger: Ledger,
) -> None:
    pause = billing(reason="SES reputation review", saved_push_configs={SUBSCRIPTION: PUSH_CONFIG})

    assert ledger.add_pause(pause) == pause
    assert ledger.pauses() == [pause]


def test_pauses_are_listed_by_scope_with_all_services_first(ledger: Ledger) -> None:
    ledger.add_pause(billing(scope="shop"))
    ledger.add_pause(billing())
    ledger.add_pause(billing(scope=ALL_SERVICES))

    assert [pause.scope for pause in ledger.pauses()] == [ALL_SERVICES, "billing", "shop"]
    assert [pause.everything for pause in ledger.pauses()] == [True, False, False]


def test_pausing_a_paused_service_again_keeps_the_first_record(ledger: Ledger) -> None:
    first = billing(reason="first", saved_push_configs={SUBSCRIPTION: PUSH_CONFIG})
    ledger.add_pause(first)

    again = billing(by="bob", reason="second", saved_push_configs={SUBSCRIPTION: "{}"})
    assert ledger.add_pause(again) == first
    assert ledger.pauses() == [first]


def test_pausing_again_adds_push_configs_saved_for_other_subscriptions(ledger: Ledger) -> None:
    ledger.add_pause(billing(saved_push_configs={SUBSCRIPTION: PUSH_CONFIG}))
    other = "projects/p/subscriptions/other"

    stored = ledger.add_pause(billing(by="bob", saved_push_configs={other: "{}"}))

    assert stored == billing(saved_push_configs={SUBSCRIPTION: PUSH_CONFIG, other: "{}"})
    assert ledger.pauses() == [stored]


def test_removing_a_pause_returns_it_and_it_is_gone(ledger: Ledger) -> None:
    pause = billing(saved_push_configs={SUBSCRIPTION: PUSH_CONFIG})
    ledger.add_pause(pause)
    ledger.add_pause(billing(scope="shop"))

    assert ledger.remove_pause("billing") == pause
    assert [p.scope for p in ledger.pauses()] == ["shop"]


def test_removing_a_pause_that_is_not_there_returns_none(ledger: Ledger) -> None:
    assert ledger.remove_pause("billing") is None
