"""`make demo` runs the whole pipeline on its own local stack and says what happened."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # runs the demo's own servers and processes

ROOT = Path(__file__).resolve().parents[1]


def demo_environment() -> dict[str, str]:
    """This environment without the test session's emulator and endpoint settings or make's."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PUBSUB_", "AWS_ENDPOINT"))
        and k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")
    }


def assert_the_demo_results(completed: subprocess.CompletedProcess[str]) -> None:
    output = completed.stdout
    assert completed.returncode == 0, output + completed.stderr
    assert "email-worker setup" in output
    assert "1 SES message id(s)" in output
    assert "3 SES message id(s)" in output
    assert "rejected  header_injection" in output
    assert "failed    identity_not_verified" in output
    assert "rejected  publisher_not_allowed" in output
    assert "SES (moto) accepted 4 message(s)" in output
    dead_letters = output.split("== email-worker dlq list", 1)[1]
    assert "demo-invalid" in dead_letters
    assert "demo-unverified" in dead_letters
    assert "demo-impostor" in dead_letters
    assert "demo-good" not in dead_letters


def test_the_demo_shows_sent_rejected_and_dead_lettered_requests_and_exits_zero() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "demo"],
        cwd=ROOT,
        env=demo_environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert_the_demo_results(completed)
