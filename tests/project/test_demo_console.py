"""`make console` serves the web console over the demo's local stack and prints its URL."""

from __future__ import annotations

import json
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.project.test_demo import ROOT, demo_environment

pytestmark = pytest.mark.integration  # runs the demo's own servers and processes

START_S = 150.0


class Running:
    """``python -m demo.console`` with its output read line by line as it comes."""

    def __init__(self, tmp: Path) -> None:
        self.child = subprocess.Popen(
            [sys.executable, "-m", "demo.console"],
            cwd=ROOT,
            env={**demo_environment(), "TMPDIR": str(tmp)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.child.stdout is not None
        for line in self.child.stdout:
            self.lines.put(line)

    def wait_for(self, pattern: str, timeout_s: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                continue
            self.seen.append(line)
            found = re.search(pattern, line)
            if found:
                return found
        raise AssertionError(f"no {pattern!r} in:\n{''.join(self.seen)}")

    def stop(self) -> int:
        if self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)
        return self.child.wait(timeout=60)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    started = Running(tmp_path_factory.mktemp("console-demo"))
    try:
        yield started
    finally:
        if started.child.poll() is None:
            started.child.kill()
            started.child.wait()


def test_make_console_runs_the_console_module() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "\nconsole: venv\n\t.venv/bin/python -m demo.console\n" in makefile


def test_make_console_prints_the_url_of_a_console_showing_the_demo_s_dead_letters_then_stops(
    running: Running,
) -> None:
    url = running.wait_for(r"The console: (http://127\.0\.0\.1:\d+/)", START_S).group(1)
    with urllib.request.urlopen(f"{url}dead-letters?format=json", timeout=30) as response:
        listed = json.load(response)
    requests = {d["request_id"] for d in listed["dead_letters"]}
    assert requests == {"demo-invalid", "demo-unverified", "demo-impostor"}
    assert running.stop() == 0
    running.wait_for(r"console: stopped, with everything it started", 10)
