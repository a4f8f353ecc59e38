"""`make demo` runs the whole pipeline on its own local stack and says what happened."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_make_demo_in_a_fresh_clone_prints_the_demo_results(tmp_path: Path) -> None:
    # The clone has committed files only. Building its own venv takes minutes, so it borrows
    # this checkout's, through a symlink that make's `venv` rule must see as up to date: a
    # `uv sync` there would re-point the shared venv's editable install at the clone.
    shared_venv = (ROOT / ".venv").resolve()
    synced = shared_venv / ".synced"
    if not synced.is_file():
        pytest.skip(f"{synced} is missing: build the venv with `make venv` first")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    (clone / ".venv").symlink_to(shared_venv, target_is_directory=True)
    older = synced.stat().st_mtime_ns - 1_000_000_000
    for name in ("pyproject.toml", "uv.lock"):
        os.utime(clone / name, ns=(older, older))
    env = demo_environment()
    up_to_date = subprocess.run(
        ["make", "-q", "venv"], cwd=clone, env=env, capture_output=True, timeout=60, check=False
    )
    assert up_to_date.returncode == 0, "make would re-sync the shared venv"
    # The shared venv's editable install points at this checkout; a fresh clone's own venv
    # would point at the clone, so the worker the demo runs is taken from the clone.
    env["PYTHONPATH"] = str(clone)

    completed = subprocess.run(
        ["make", "demo"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert_the_demo_results(completed)
