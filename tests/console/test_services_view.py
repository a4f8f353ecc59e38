"""The services page: each service's counts and rates from the ledger's outcome counters, its
pause, weight, share and cap, as HTML with inline SVG charts and as JSON."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from markupsafe import escape

from tests.ledger.counter_shards import watching_reads
from tests.support.clock import ManualClock
from tests.support.console import Console, console_on, stack_ledger
from tests.support.naughty import NAUGHTY_STRINGS
from tests.support.worker_stack import Stack, request
from worker.console.services_view import ServiceWeeks
from worker.ledger import ALL_SERVICES, FirestoreLedger, Ledger, Pause, SqliteLedger
from worker.ledger.final_hours import settle_margin_s
from worker.ledger.send_counts import HOUR_S, SHARDS, hour_of
from worker.ledger.service_count_stores import service_counts_of
from worker.ledger.service_counts import WEEK_HOURS


@pytest.fixture
def console(stack: Stack) -> Iterator[Console]:
    with console_on(stack) as console:
        yield console


def counted(stack: Stack, hours_ago: int, service_id: str = "billing", **kinds: int) -> None:
    with stack_ledger(stack) as ledger:
        hour = hour_of(time.time()) - hours_ago
        service_counts_of(ledger).add({(service_id, hour): kinds})


def paused(stack: Stack, scope: str, by: str, reason: str) -> None:
    with stack_ledger(stack) as ledger:
        ledger.add_pause(Pause(scope, dt.datetime.now(dt.UTC), by=by, reason=reason))


def service(console: Console, service_id: str) -> dict[str, Any]:
    services: list[dict[str, Any]] = console.json("/services")["services"]
    [found] = [s for s in services if s["service_id"] == service_id]
    return found


def test_each_allowed_service_is_listed_in_name_order(console: Console) -> None:
    document = console.json("/services")
    assert [s["service_id"] for s in document["services"]] == ["billing", "shop"]
    assert (document["count"], document["paused"]) == (2, 0)


def test_the_counts_of_the_last_24_hours_and_7_days_come_from_the_ledger(
    console: Console, stack: Stack
) -> None:
    counted(stack, 0, sent=3, recipients=5, rejected=1, failed=2, bounced=1)
    counted(stack, 30, sent=4, recipients=4, complained=1)
    counted(stack, 24 * 7, sent=100, recipients=100)  # older than the page's week
    billing = service(console, "billing")
    day = billing["last_24_hours"]
    assert (day["sent"], day["rejected"], day["failed"], day["recipients"]) == (3, 1, 2, 5)
    assert (day["bounce_rate_percent"], day["complaint_rate_percent"]) == (20.0, 0.0)
    week = billing["last_7_days"]
    assert (week["sent"], week["recipients"], week["bounced"], week["complained"]) == (7, 9, 1, 1)
    assert week["complaint_rate_percent"] == round(100 / 9, 2)
    assert service(console, "shop")["last_7_days"]["sent"] == 0


def test_the_charts_periods_are_24_hours_and_7_days_ending_now(
    console: Console, stack: Stack
) -> None:
    counted(stack, 0, sent=2, recipients=2)
    counted(stack, 25, failed=1)
    billing = service(console, "billing")
    assert len(billing["hourly"]) == 24
    assert len(billing["daily"]) == 7
    assert billing["hourly"][-1]["sent"] == 2
    assert [d["failed"] for d in billing["daily"]] == [0, 0, 0, 0, 0, 1, 0]
    assert sum(d["sent"] for d in billing["daily"]) == 2


def test_without_recipients_there_is_no_rate_to_show(console: Console, stack: Stack) -> None:
    counted(stack, 0, rejected=4)
    day = service(console, "billing")["last_24_hours"]
    assert (day["bounce_rate_percent"], day["complaint_rate_percent"]) == (None, None)


def test_a_paused_service_says_who_paused_it_and_why(console: Console, stack: Stack) -> None:
    paused(stack, "shop", "reputation-breaker", "hard bounces 6.00% (30/500)")
    shop, billing = service(console, "shop"), service(console, "billing")
    assert shop["paused"]
    assert not billing["paused"]
    assert shop["pause"]["by"] == "reputation-breaker"
    assert shop["pause"]["reason"] == "hard bounces 6.00% (30/500)"
    page = console.get("/services").text
    assert "reputation-breaker" in page
    assert "hard bounces 6.00% (30/500)" in page


def test_a_pause_of_every_service_shows_on_each(console: Console, stack: Stack) -> None:
    paused(stack, ALL_SERVICES, "alice", "incident 42")
    document = console.json("/services")
    assert document["paused"] == 2
    assert all(s["pause"]["all_services"] for s in document["services"])


def test_weights_shares_and_the_daily_cap_come_from_the_configuration(
    console: Console, stack: Stack
) -> None:
    stack.write_service(
        "billing",
        service_role_arn="arn:aws:iam::123456789012:role/email-sender",
        weight=3,
        max_per_day=1000,
    )
    counted(stack, 2, sent=2, recipients=7)
    counted(stack, 26, sent=1, recipients=50)  # outside the cap's 25-hour window
    billing, shop = service(console, "billing"), service(console, "shop")
    assert (billing["weight"], billing["share_percent"]) == (3.0, 75.0)
    assert (shop["weight"], shop["share_percent"]) == (1.0, 25.0)
    assert (billing["max_per_day"], billing["sent_in_cap_window"]) == (1000, 7)
    assert shop["max_per_day"] is None


def test_a_service_whose_configuration_cannot_be_read_says_why_and_keeps_its_counts(
    console: Console, stack: Stack
) -> None:
    stack.write_service("shop", weight="heavy")
    counted(stack, 0, "shop", sent=1, recipients=1)
    shop = service(console, "shop")
    assert "invalid" in shop["config_error"]
    assert (shop["weight"], shop["share_percent"]) == (None, None)
    assert shop["last_24_hours"]["sent"] == 1
    assert service(console, "billing")["share_percent"] == 100.0


def test_the_html_page_draws_labelled_svg_charts_and_repeats_the_numbers_in_tables(
    console: Console, stack: Stack
) -> None:
    counted(stack, 0, sent=3, recipients=3, failed=1)
    response = console.get("/services")
    assert response.status_code == 200
    html = response.text
    assert html.count('<svg role="img"') == 8  # four charts per service
    assert '<title id="billing-hourly-counts-title">Requests per hour' in html
    assert "in all 3 sent, 0 rejected, 1 failed." in html
    assert 'id="hourly-billing"' in html
    assert 'id="daily-shop"' in html
    assert "<script" not in html
    assert "charts" not in console.json("/services")["services"][0]


def test_a_page_view_reads_a_week_of_counters_per_service_by_key(
    console: Console, stack: Stack
) -> None:
    counted(stack, WEEK_HOURS - 1, sent=1)  # the oldest hour shown
    counted(stack, WEEK_HOURS, sent=1)  # one hour older: not read
    assert service(console, "billing")["last_7_days"]["sent"] == 1


def test_the_worker_counts_what_a_run_produced_and_the_page_shows_it(
    stack: Stack, moto: Any
) -> None:
    with stack.running():
        stack.publish_as("billing", request(request_id="ok-1"))
        stack.publish_as("billing", request(request_id="ok-2", to=["a@example.org", "b@x.org"]))
        stack.publish_as("billing", request(request_id="bad-1", to=[]))
        unverified = {"from": "Billing <billing@unverified.example>"}
        stack.publish_as("billing", request(request_id="fail-1", **unverified))
        stack.results(4)
    # The worker stopped gracefully: its last counts were flushed to the ledger.
    now = hour_of(time.time())
    with stack_ledger(stack) as ledger:
        hours = service_counts_of(ledger).read("billing", range(now - 1, now + 1))
    ledger_day = {k: sum(h.get(k, 0) for h in hours.values()) for k in ("sent", "recipients")}
    with console_on(stack) as console:
        day = service(console, "billing")["last_24_hours"]
    assert (day["sent"], day["recipients"], day["rejected"], day["failed"]) == (2, 3, 1, 1)
    assert ledger_day == {"sent": 2, "recipients": 3}


def test_naughty_pause_reasons_and_authors_render_as_text(console: Console, stack: Stack) -> None:
    for naughty in NAUGHTY_STRINGS[::4]:
        with stack_ledger(stack) as ledger:
            ledger.remove_pause("shop")
        paused(stack, "shop", naughty, naughty)
        html = console.get("/services").text
        assert str(escape(naughty)) in html
        if "<" in naughty:
            assert naughty not in html


def test_without_allowed_services_the_page_says_what_to_set(stack: Stack) -> None:
    with console_on(stack, EMAIL_WORKER_ALLOWED_SERVICES="") as console:
        response = console.get("/services")
    assert response.status_code == 200
    assert "EMAIL_WORKER_ALLOWED_SERVICES" in response.text


# -- what a view reads -------------------------------------------------------------------


def test_a_second_view_reads_only_the_counters_of_the_hours_not_yet_final(
    console: Console, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    counted(stack, 30, sent=4)
    ledger = console.sources.ledger
    with watching_reads(ledger, monkeypatch, outcome_counts=True) as first:
        assert service(console, "billing")["last_7_days"]["sent"] == 4
    with watching_reads(ledger, monkeypatch, outcome_counts=True) as second:
        assert service(console, "billing")["last_7_days"]["sent"] == 4
    services = 2
    assert first.keys == services * WEEK_HOURS * SHARDS
    # The current hour, and in an hour's first minutes the one before it.
    assert second.keys in (services * SHARDS, services * 2 * SHARDS)


def test_counts_added_in_the_current_hour_after_a_view_show_in_the_next(
    console: Console, stack: Stack
) -> None:
    counted(stack, 0, sent=1)
    assert service(console, "billing")["last_24_hours"]["sent"] == 1
    counted(stack, 0, sent=2, failed=1)
    day = service(console, "billing")["last_24_hours"]
    assert (day["sent"], day["failed"]) == (3, 1)


# -- ServiceWeeks, on a clock the test moves ---------------------------------------------

# The middle of an hour: only the current hour can still change.
MIDDLE = 1_800_000_000.0 + HOUR_S / 2


@pytest.fixture(params=["sqlite", pytest.param("firestore", marks=pytest.mark.integration)])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    clock = ManualClock(MIDDLE)
    built: Ledger
    if request.param == "sqlite":
        built = SqliteLedger(tmp_path / "ledger.db", claim_lease_s=30, clock=clock)
    else:
        request.getfixturevalue("firestore_env")
        built = FirestoreLedger(claim_lease_s=30, clock=clock)
    yield built
    built.close()


def add(ledger: Ledger, hour: int, **kinds: int) -> None:
    service_counts_of(ledger).add({("billing", hour): kinds})


def test_the_weeks_totals_stay_exact_as_hours_become_final(ledger: Ledger) -> None:
    weeks = ServiceWeeks(ledger)
    now = MIDDLE
    for step in range(12):  # six hours, every half hour, one count in the margin
        hour = hour_of(now)
        add(ledger, hour, sent=step + 1)
        if now % HOUR_S < settle_margin_s(5.0):
            add(ledger, hour - 1, failed=1)
        week = range(hour - WEEK_HOURS + 1, hour + 1)
        assert weeks.read("billing", now) == service_counts_of(ledger).read("billing", week)
        now += HOUR_S / 2 + (-100 if step % 2 else 100)


def test_hours_that_left_the_week_are_dropped_from_memory(ledger: Ledger) -> None:
    weeks = ServiceWeeks(ledger)
    weeks.read("billing", MIDDLE)
    weeks.read("billing", MIDDLE + 3 * HOUR_S)
    first = hour_of(MIDDLE + 3 * HOUR_S) - WEEK_HOURS + 1
    assert weeks.final.hours_kept("billing") == list(range(first, first + WEEK_HOURS - 1))


def test_the_page_keeps_the_final_hours_of_at_most_max_services_services(
    ledger: Ledger,
) -> None:
    weeks = ServiceWeeks(ledger, max_services=2)
    for service_id in ("billing", "shop", "news"):
        weeks.read(service_id, MIDDLE)
    assert weeks.final.services() == 2
    assert weeks.final.hours_kept("billing") == []
