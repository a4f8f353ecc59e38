"""The console in a real browser: Debian's chromium, headless, driven by Playwright, against
``email-worker console`` over the local stack (Pub/Sub emulator, moto, SQLite ledger), with a
worker running where a scenario needs one. Each page is also checked with axe-core."""

from __future__ import annotations

import datetime as dt
import email
import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.console.common import dead_lettered
from tests.console.test_request_view import record_sent
from tests.support.console import stack_ledger
from tests.support.console_browser import (
    CHROMIUM,
    Watched,
    console_server,
    keep_screenshot,
    serious_violations,
)
from tests.support.naughty import NAUGHTY_STRINGS
from tests.support.worker_stack import Stack, request
from worker.ledger import Pause
from worker.ledger.send_counts import hour_of
from worker.ledger.service_count_stores import service_counts_of


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def url(stack: Stack) -> Iterator[str]:
    with stack_ledger(stack):
        pass  # the console looks only in a ledger that exists
    with console_server(stack) as url:
        yield url


@pytest.fixture
def watched() -> Watched:
    return Watched()


@pytest.fixture
def page(browser: Browser, url: str, watched: Watched) -> Iterator[Page]:
    context = browser.new_context(base_url=url)
    page = context.new_page()
    watched.attach(page)
    try:
        yield page
    finally:
        context.close()


def tab_to(page: Page, element_id: str) -> None:
    """Press Tab until the element has the focus, as a keyboard user would."""
    for _ in range(15):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == element_id:
            return
    raise AssertionError(f"#{element_id} cannot be reached with Tab")


def accessible(page: Page) -> None:
    assert serious_violations(page) == []


def test_a_support_user_finds_a_request_by_id_by_keyboard_and_reads_the_statuses(
    page: Page, stack: Stack, watched: Watched
) -> None:
    record_sent(stack, "order-7")
    page.goto("/")
    accessible(page)
    keep_screenshot(page, "home")
    tab_to(page, "service")  # past the skip link and the navigation
    page.keyboard.type("billing")
    page.keyboard.press("Tab")
    page.keyboard.type("order-7")
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_contain_text("Request order-7 of service billing")
    rows = page.locator("#recipients tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("alice@example.org")
    expect(rows.nth(0)).to_contain_text("delivered")
    expect(rows.nth(1)).to_contain_text("bob@example.org")
    expect(rows.nth(1)).to_contain_text("bounced")
    accessible(page)
    keep_screenshot(page, "request")
    assert watched.dialogs == []
    assert watched.errors == []


def test_a_support_user_finds_what_was_sent_to_a_recipient(
    page: Page, stack: Stack, watched: Watched
) -> None:
    record_sent(stack, "order-7", at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=3))
    page.goto("/recipient")
    accessible(page)
    page.get_by_label("Email address (exactly as sent)").fill("bob@example.org")
    page.get_by_role("button", name="Look up").click()
    rows = page.locator("#emails tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.nth(0)).to_contain_text("order-7")
    expect(rows.nth(0)).to_contain_text("bounced")
    assert "bob@example.org" not in page.url
    accessible(page)
    keep_screenshot(page, "recipient")
    page.get_by_role("link", name="order-7").click()
    expect(page.locator("h1")).to_contain_text("Request order-7 of service billing")
    assert watched.dialogs == []
    assert watched.errors == []


def wait_for_sent(moto: Any, count: int, timeout_s: float = 60.0) -> list[Any]:
    deadline = time.monotonic() + timeout_s
    while len(moto.sent_messages()) < count and time.monotonic() < deadline:
        time.sleep(0.3)
    return list(moto.sent_messages())


def test_an_operator_filters_by_code_fixes_the_cause_replays_and_each_is_sent_once(
    page: Page, stack: Stack, moto: Any, watched: Watched
) -> None:
    other = dead_lettered(stack, "other", code="throttled", message="Rate exceeded")
    with stack.running():
        for index in range(3):
            unverified = request(
                request_id=f"inv-{index}",
                subject=f"Invoice {index}",
                **{"from": "Billing <billing@unverified.example>"},
            )
            stack.publish_as("billing", unverified)
        page.goto("/dead-letters")
        page.get_by_label("Error code").fill("identity_not_verified")
        page.get_by_role("button", name="Filter").click()
        for _ in range(60):  # the worker forwards dead letters just after their results
            if page.locator('[data-field="count"]').inner_text() == "3":
                break
            time.sleep(0.5)
            page.reload()
        expect(page.locator('[data-field="count"]')).to_have_text("3")
        accessible(page)
        keep_screenshot(page, "dead-letters")

        moto.verify_email_identity("unverified.example")
        page.get_by_role("link", name="Replay these 3").click()
        expect(page.locator("h1")).to_have_text("Replay 3 dead letter(s)?")
        accessible(page)
        keep_screenshot(page, "confirm")
        page.get_by_role("button", name="Replay 3 dead letter(s)").click()
        expect(page.locator("#outcome")).to_have_text("Replayed 3 dead letter(s)")
        accessible(page)
        sent = wait_for_sent(moto, 3)
        time.sleep(2)  # and nothing more comes
    subjects = sorted(
        str(email.message_from_string(m.raw_data)["Subject"]) for m in moto.sent_messages()
    )
    assert subjects == ["Invoice 0", "Invoice 1", "Invoice 2"], sent
    page.goto("/dead-letters?format=json")
    page.goto("/dead-letters")
    expect(page.locator('[data-field="count"]')).to_have_text("1")
    expect(page.locator("#dead-letter-list tbody")).to_contain_text(other)
    assert watched.dialogs == []


def test_purge_asks_for_confirmation_and_removes_exactly_the_selection(
    page: Page, stack: Stack, watched: Watched
) -> None:
    kept = [dead_lettered(stack, "b1"), dead_lettered(stack, "b2")]
    doomed = dead_lettered(stack, "s1", service_id="shop", sender="shop@example.com")
    page.goto("/dead-letters?service=shop")
    expect(page.locator('[data-field="count"]')).to_have_text("1")
    page.get_by_role("link", name="Purge these 1").click()
    expect(page.locator("h1")).to_have_text("Purge 1 dead letter(s)?")
    expect(page.locator("#selection tbody")).to_contain_text(doomed)
    assert page.locator("#selection tbody tr").count() == 1
    page.get_by_role("button", name="Purge 1 dead letter(s)").click()
    expect(page.locator("#outcome")).to_have_text("Purged 1 dead letter(s)")
    page.goto("/dead-letters")
    expect(page.locator('[data-field="count"]')).to_have_text("2")
    listing = page.locator("#dead-letter-list tbody").inner_text()
    assert all(message_id in listing for message_id in kept)
    assert doomed not in listing
    assert watched.dialogs == []


INJECTED = "script, iframe, img, svg, object, embed, meta[http-equiv], style, h1 + h1"


def test_naughty_strings_render_inert(page: Page, stack: Stack, watched: Watched) -> None:
    chosen = NAUGHTY_STRINGS[::4]  # each payload once
    for index, naughty in enumerate(chosen):
        dead_lettered(
            stack,
            f"n{index}",
            message=naughty,
            subject=naughty,
            tags={"kind": naughty[:256]},
            sender=f"{naughty} <billing@example.com>",
        )
    page.goto("/dead-letters")
    expect(page.locator('[data-field="count"]')).to_have_text(str(len(chosen)))
    assert page.locator(f"main :is({INJECTED})").count() == 0
    assert page.locator("h1").count() == 1
    assert page.locator("#dead-letter-list tbody tr").count() == len(chosen)
    assert page.locator("#dead-letter-list tbody td").count() == 9 * len(chosen)
    body = page.locator("#dead-letter-list tbody").inner_text()
    assert "<script>alert(1)</script>" in body
    accessible(page)
    page.goto("/request?service=billing&id=n0")
    expect(page.locator("#dead-letters li")).to_contain_text("<script>alert(1)</script>")
    assert page.locator(f"main :is({INJECTED})").count() == 0
    accessible(page)
    time.sleep(0.5)  # give any injected handler its chance
    assert watched.dialogs == []
    assert watched.errors == []


PAUSE_REASON = "<script>alert(1)</script> <img src=x onerror=alert(1)> </p><h1>injected</h1>"


def ledger_last_day(stack: Stack, service_id: str) -> dict[str, int]:
    now = hour_of(time.time())
    with stack_ledger(stack) as ledger:
        hours = service_counts_of(ledger).read(service_id, range(now - 23, now + 1))
    kinds = ("sent", "rejected", "failed", "recipients")
    return {kind: sum(h.get(kind, 0) for h in hours.values()) for kind in kinds}


def test_the_services_page_shows_the_counts_of_a_run_as_the_ledger_holds_them_and_a_pause(
    page: Page, stack: Stack, moto: Any, watched: Watched
) -> None:
    with stack.running():
        stack.publish_as("billing", request(request_id="s-1"))
        stack.publish_as("billing", request(request_id="s-2", to=["a@example.org", "b@x.org"]))
        stack.publish_as("billing", request(request_id="s-3", to=[]))
        stack.publish_as(
            "billing", request(request_id="s-4", **{"from": "Billing <b@unverified.example>"})
        )
        stack.results(4)
    with stack_ledger(stack) as ledger:
        since = dt.datetime.now(dt.UTC)
        ledger.add_pause(Pause("shop", since, by="reputation-breaker", reason=PAUSE_REASON))
    expected = ledger_last_day(stack, "billing")
    assert expected == {"sent": 2, "rejected": 1, "failed": 1, "recipients": 3}
    page.goto("/")
    tab_to(page, "nav-services")
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("Services")
    day = page.locator('#totals-billing tr[data-period="1"]')
    for kind, count in expected.items():
        expect(day.locator(f'[data-field="{kind}"]')).to_have_text(str(count))
    expect(page.locator('#service-billing [data-field="pause"]')).to_contain_text("not paused")
    shop = page.locator("#service-shop")
    expect(shop.locator('[data-field="paused-by"]')).to_have_text("reputation-breaker")
    expect(shop.locator('[data-field="pause-reason"]')).to_have_text(PAUSE_REASON)
    assert page.locator(f"main :is({INJECTED.replace('svg, ', '')})").count() == 0
    assert page.locator("main svg[role=img]").count() == 8
    assert page.locator("h1").count() == 1
    accessible(page)
    keep_screenshot(page, "services")
    time.sleep(0.5)  # give any injected handler its chance
    assert watched.dialogs == []
    assert watched.errors == []
