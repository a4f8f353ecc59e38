"""The console by keyboard alone, in a real browser: on every page Tab reaches every control in
the page's order, and each action (look up, filter, confirm, replay, purge) works with Enter."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from playwright.sync_api import Page, expect

from tests.console import test_browser as shared
from tests.console.common import dead_lettered
from tests.console.test_browser import tab_to
from tests.console.test_request_view import record_sent
from tests.support.console_browser import Watched
from tests.support.worker_stack import Stack

# The browser tests' fixtures: chromium, the console over the stack, a page watched for dialogs.
browser, url, watched, page = shared.browser, shared.url, shared.watched, shared.page

PAGES = [
    "/",
    "/recipient",
    "/dead-letters",
    "/dead-letters/confirm?action=replay&service=billing",
    "/dead-letters/confirm?action=purge&service=nobody",
    "/request?service=billing&id=order-7",
    "/request?service=billing&id=dl-1",
]

#: Numbers every control a keyboard user should reach, in the page's order; their count.
NUMBER_CONTROLS = """() => {
    const selector = 'a[href], button, input:not([type=hidden]), select, textarea, [tabindex]';
    const controls = [...document.querySelectorAll(selector)].filter(
        (e) => !e.disabled && e.tabIndex >= 0 && e.getClientRects().length > 0);
    controls.forEach((e, i) => e.setAttribute('data-kb', String(i)));
    return controls.length;
}"""
FOCUSED = "document.activeElement && document.activeElement.getAttribute('data-kb')"


@pytest.fixture
def data(stack: Stack) -> None:
    record_sent(stack, "order-7", at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=3))
    dead_lettered(stack, "dl-1")
    dead_lettered(stack, "dl-2")


def tab_order(page: Page) -> tuple[int, list[int]]:
    """How many controls the page has, and the order Tab visits them in (once round)."""
    total = int(page.evaluate(NUMBER_CONTROLS))
    visited: list[int] = []
    for _ in range(total + 2):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUSED)
        if focused is not None and int(focused) not in visited:
            visited.append(int(focused))
    return total, visited


@pytest.mark.parametrize("path", PAGES)
@pytest.mark.usefixtures("data")
def test_tab_reaches_every_control_of_the_page_in_its_order(page: Page, path: str) -> None:
    page.goto(path)
    total, visited = tab_order(page)
    assert total >= 4  # the skip link and the navigation at least
    assert visited == list(range(total))


@pytest.mark.usefixtures("data")
def test_an_operator_filters_confirms_and_purges_with_the_keyboard_alone(
    page: Page, watched: Watched
) -> None:
    page.goto("/dead-letters")
    tab_to(page, "f-code")
    page.keyboard.type("identity_not_verified")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/dead-letters\?.*code=identity_not_verified"))
    expect(page.locator('[data-field="count"]')).to_have_text("2")
    tab_to(page, "purge-selection")
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("Purge 2 dead letter(s)?")
    tab_to(page, "confirm")
    page.keyboard.press("Enter")
    expect(page.locator("#outcome")).to_have_text("Purged 2 dead letter(s)")
    assert watched.dialogs == []


@pytest.mark.usefixtures("data")
def test_a_request_s_dead_letter_is_replayed_from_its_page_with_the_keyboard_alone(
    page: Page,
) -> None:
    page.goto("/request?service=billing&id=dl-1")
    link = page.get_by_role("link", name="Replay", exact=True)
    link.evaluate("(e) => e.id = 'replay-request'")
    tab_to(page, "replay-request")
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("Replay 1 dead letter(s)?")
    tab_to(page, "confirm")
    page.keyboard.press("Enter")
    expect(page.locator("#outcome")).to_have_text("Replayed 1 dead letter(s)")


@pytest.mark.usefixtures("data")
def test_a_recipient_is_looked_up_with_the_keyboard_alone(page: Page) -> None:
    page.goto("/recipient")
    tab_to(page, "address")
    page.keyboard.type("bob@example.org")
    page.keyboard.press("Enter")
    expect(page.locator("#emails tbody tr")).to_have_count(1)
