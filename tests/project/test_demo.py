"""`make demo` runs the whole pipeline on its own local stack and says what happened."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # runs the demo's own servers and processes

ROOT = Path(__file__).resolve().parents[2]


def demo_environment() -> dict[str, str]:
    """This environment without the test session's emulator and endpoint settings or make's."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PUBSUB_", "AWS_ENDPOINT"))
        and k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")
    }


def section(output: str, heading: str) -> str:
    """The demo's output under ``== heading``, up to the next heading."""
    assert f"\n== {heading}\n" in output, output
    return output.split(f"\n== {heading}\n", 1)[1].split("\n== ", 1)[0]


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
    dead_letters = section(output, "email-worker dlq list")
    assert "demo-invalid" in dead_letters
    assert "demo-unverified" in dead_letters
    assert "demo-impostor" in dead_letters
    assert "demo-good" not in dead_letters
    assert "SES (moto) accepted 5 message(s) in all" in output


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    # The demo keeps its working directory (with the worker's log): here, in pytest's.
    env = {**demo_environment(), "TMPDIR": str(tmp_path_factory.mktemp("demo"))}
    return subprocess.run(
        [sys.executable, "-m", "demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )


def test_the_demo_shows_sent_rejected_and_dead_lettered_requests_and_exits_zero(
    demo_run: subprocess.CompletedProcess[str],
) -> None:
    assert_the_demo_results(demo_run)


def test_the_demo_shows_the_status_of_the_failed_request(
    demo_run: subprocess.CompletedProcess[str],
) -> None:
    shown = section(demo_run.stdout, "what became of demo-unverified: email-worker status")
    assert "$ email-worker status demo demo-unverified\n" in shown
    assert "failed: identity_not_verified" in shown


def test_the_demo_shows_the_dead_letter_of_the_failed_request(
    demo_run: subprocess.CompletedProcess[str],
) -> None:
    shown = section(demo_run.stdout, "its dead letter: email-worker dlq show")
    assert "$ email-worker dlq show " in shown
    assert re.search(r"Request ID +demo-unverified", shown)
    assert re.search(r"Reason +identity_not_verified: ", shown)


def test_the_demo_replays_the_dead_letter_once_its_cause_is_fixed_and_it_is_sent(
    demo_run: subprocess.CompletedProcess[str],
) -> None:
    output = demo_run.stdout
    assert "== fixing the cause: the sending domain unverified.example is verified" in output
    replay = section(output, "replaying it: email-worker dlq replay")
    assert "Replayed 1 dead letter(s) to projects/demo-project/topics/email-replays." in replay
    assert re.search(r"demo-unverified +sent +1 SES message id\(s\)", replay)
    now = section(output, "what became of demo-unverified now: email-worker status")
    assert "sent to 1 recipient(s)" in now
    assert demo_run.returncode == 0, demo_run.stderr


def test_the_demo_keeps_the_worker_log_and_prints_its_path_last(
    demo_run: subprocess.CompletedProcess[str],
) -> None:
    last = demo_run.stdout.strip().splitlines()[-1]
    found = re.fullmatch(r"The worker's log: (\S+) \(delete (\S+) when done\)", last)
    assert found is not None, last
    log = Path(found.group(1))
    assert log.parent == Path(found.group(2))
    assert '"message": "pulling"' in log.read_text()
