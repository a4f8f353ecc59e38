"""Large selections in a real browser: replaying or purging 60 dead letters goes to the job's
page, streamed as the job goes (no script) and ending with the outcome; every request is sent
once, and a purge removes exactly the selection. Operated by keyboard alone."""

from __future__ import annotations

import email
import threading
import time
from typing import Any

from playwright.sync_api import Page, expect

from tests.console import test_browser as shared
from tests.console.common import dead_lettered
from tests.console.test_browser import accessible, tab_to, wait_for_sent
from tests.console.test_jobs import held_work, jobs_of
from tests.support.console import console_on
from tests.support.console_browser import Watched
from tests.support.worker_stack import Stack
from worker.console.jobs import INLINE_LIMIT

# The browser tests' fixtures: chromium, the console over the stack, a page watched for dialogs.
browser, url, watched, page = shared.browser, shared.url, shared.watched, shared.page

LARGE = 60
JOB_URL = "**/jobs/*"


def confirm_by_keyboard(page: Page, action: str) -> None:
    """On the confirmation page, reach its button with Tab and press Enter."""
    expect(page.locator("h1")).to_have_text(f"{action.capitalize()} {LARGE} dead letter(s)?")
    tab_to(page, "confirm")
    page.keyboard.press("Enter")


def test_replaying_60_dead_letters_shows_the_job_until_done_and_each_is_sent_once(
    page: Page, stack: Stack, moto: Any, watched: Watched
) -> None:
    assert LARGE > INLINE_LIMIT
    for index in range(LARGE):
        dead_lettered(stack, f"bulk-{index}", subject=f"Bulk {index}")
    with stack.running():
        page.goto("/dead-letters?code=identity_not_verified")
        expect(page.locator('[data-field="count"]')).to_have_text(str(LARGE))
        page.get_by_role("link", name=f"Replay these {LARGE}").click()
        confirm_by_keyboard(page, "replay")
        page.wait_for_url(JOB_URL)
        # The page comes as the job goes, and ends with the outcome: nothing here reloads it.
        expect(page.locator("#outcome")).to_have_text(
            f"Replayed {LARGE} dead letter(s)", timeout=60_000
        )
        accessible(page)
        wait_for_sent(moto, LARGE)
        time.sleep(2)  # and nothing more comes
    subjects = sorted(
        str(email.message_from_string(m.raw_data)["Subject"]) for m in moto.sent_messages()
    )
    assert subjects == sorted(f"Bulk {index}" for index in range(LARGE))
    page.goto("/dead-letters")
    expect(page.locator('[data-field="count"]')).to_have_text("0")
    assert watched.dialogs == []
    assert watched.errors == []


def test_purging_60_dead_letters_shows_the_job_until_done_and_removes_exactly_them(
    page: Page, stack: Stack, watched: Watched
) -> None:
    kept = [dead_lettered(stack, "kept-1"), dead_lettered(stack, "kept-2")]
    for index in range(LARGE):
        dead_lettered(stack, f"s{index}", service_id="shop", sender="shop@example.com")
    page.goto("/dead-letters?service=shop")
    expect(page.locator('[data-field="count"]')).to_have_text(str(LARGE))
    page.get_by_role("link", name=f"Purge these {LARGE}").click()
    confirm_by_keyboard(page, "purge")
    page.wait_for_url(JOB_URL)
    expect(page.locator("#outcome")).to_have_text(f"Purged {LARGE} dead letter(s)", timeout=60_000)
    accessible(page)
    page.goto("/dead-letters")
    expect(page.locator('[data-field="count"]')).to_have_text("2")
    listing = page.locator("#dead-letter-list tbody").inner_text()
    assert all(message_id in listing for message_id in kept)
    assert watched.dialogs == []
    assert watched.errors == []


def test_a_job_s_page_with_its_progress_passes_the_accessibility_check(
    page: Page, stack: Stack
) -> None:
    # A job held at 20 of 60, its page rendered by the console in process, shown by chromium
    # with the real console's stylesheet.
    release = threading.Event()
    with console_on(stack) as console:
        job = jobs_of(console).start(
            "replay", "local", LARGE, held_work(release, 20), lambda _: None
        )
        threading.Timer(0.5, release.set).start()
        html = console.get(f"/jobs/{job.id}").text
    page.goto("/")
    page.set_content(html)
    expect(page.locator("#progress li").first).to_have_text(f"20 of {LARGE} dealt with")
    expect(page.locator("#outcome")).to_be_visible()
    accessible(page)
