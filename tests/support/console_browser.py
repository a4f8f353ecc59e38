"""The console as a real server (``email-worker console``) and Debian's chromium driven by
Playwright, for the browser tests (tests/console/test_browser.py).

Chromium is the system's (``/usr/bin/chromium``; ``.ci/run`` installs it with apt), launched
headless: Playwright downloads no browser. Accessibility is checked with axe-core, which
axe-playwright-python ships (a pinned dev dependency).
"""

from __future__ import annotations

import os
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.ports import LOOPBACK, free_port
from tests.support.process import ManagedProcess
from tests.support.worker_stack import Stack

CHROMIUM = "/usr/bin/chromium"
EMAIL_WORKER = str(Path(sys.executable).parent / "email-worker")
#: Set to a directory to keep a screenshot of each page the tests visit (docs/console.md's).
SCREENSHOTS_VARIABLE = "CONSOLE_TEST_SCREENSHOTS"


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@contextmanager
def console_server(stack: Stack, **overrides: str) -> Iterator[str]:
    """``email-worker console`` on a free loopback port over ``stack``; yields its URL."""
    port = free_port()
    env = {
        **os.environ,
        **stack.env,
        "PUBSUB_EMULATOR_HOST": stack.emulator.host,
        "EMAIL_WORKER_CONSOLE_PORT": str(port),
        **overrides,
    }
    url = f"http://{LOOPBACK}:{port}"
    process = ManagedProcess("console", [EMAIL_WORKER, "console"], env)
    process.start(lambda: _answers(f"{url}/static/console.css"), timeout_s=30)
    try:
        yield url
    finally:
        process.stop()


@dataclass
class Watched:
    """What a page did that it should not: dialogs opened, errors in its console."""

    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        def on_dialog(dialog: Any) -> None:
            self.dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("dialog", on_dialog)
        page.on(
            "console",
            lambda message: self.errors.append(message.text) if message.type == "error" else None,
        )
        page.on("pageerror", lambda error: self.errors.append(str(error)))


def serious_violations(page: Any) -> list[str]:
    """axe-core's serious and critical violations on the page, as "rule: help" lines."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{v['id']}: {v['help']} ({len(v['nodes'])} element(s))"
        for v in results.response["violations"]
        if v.get("impact") in ("serious", "critical")
    ]


def keep_screenshot(page: Any, name: str) -> None:
    """A screenshot for the docs, when the tests are asked to keep them."""
    directory = os.environ.get(SCREENSHOTS_VARIABLE)
    if directory:
        page.screenshot(path=str(Path(directory) / f"console-{name}.png"), full_page=True)
