"""The issue's "done when", as a new user would do it: ``email-worker`` processes for setup,
send, dlq list and dlq replay, against the emulator, with a worker and moto."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.support.pubsub_emulator import unique_name
from tests.support.worker_stack import make_stack

EMAIL_WORKER = str(Path(sys.executable).parent / "email-worker")


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EMAIL_WORKER, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_setup_send_fail_list_fix_and_replay(
    pubsub_env: Any, fault_proxy: Any, moto: Any, tmp_path: Path
) -> None:
    stack = make_stack(pubsub_env, tmp_path, fault_proxy.endpoint)
    suffix = unique_name("e2e")
    # Names of our own, created by `setup` (the stack's resources are not used).
    stack.env.update(
        EMAIL_WORKER_REQUESTS_TOPIC=f"email-requests-{suffix}",
        EMAIL_WORKER_RESULTS_TOPIC=f"email-results-{suffix}",
        EMAIL_WORKER_DEAD_LETTER_TOPIC=f"email-requests-dead-letter-{suffix}",
        EMAIL_WORKER_SUBSCRIPTION=f"email-requests-worker-{suffix}",
        EMAIL_WORKER_DEAD_LETTER_SUBSCRIPTION=f"email-requests-dead-letter-ops-{suffix}",
        EMAIL_WORKER_SERVICE_ID="billing",
    )
    env = {**stack.env, "PUBSUB_EMULATOR_HOST": pubsub_env.host, "COLUMNS": "200"}

    setup = run(env, "setup")
    assert setup.returncode == 0, setup.stderr
    # Three topics, the dead-letter and worker subscriptions, and billing's results one.
    assert setup.stdout.count("created") == 6

    with stack.running():
        sent = run(
            env, "send", "--to", "me@example.org", "--subject", "Hi", "--text", "Hello", "--wait"
        )
        assert sent.returncode == 0, sent.stderr
        [ses_message] = moto.sent_messages()
        assert ses_message.message_id in sent.stdout

        failed = run(
            env,
            "send",
            "--to",
            "me@example.org",
            "--from",
            "billing@unverified.example",
            "--subject",
            "Hi",
            "--text",
            "Hello",
            "--wait",
        )
        assert failed.returncode == 3, failed.stderr
        assert "identity_not_verified" in failed.stdout

    listing = run(env, "dlq", "list")
    assert listing.returncode == 0, listing.stderr
    assert "identity_not_verified" in listing.stdout

    moto.verify_email_identity("unverified.example")
    with stack.running():
        replay = run(env, "dlq", "replay", "--all", "--yes")
        assert replay.returncode == 0, replay.stderr
        assert "Replayed 1" in replay.stdout
        # The replayed request is sent: moto tells.
        deadline = time.monotonic() + 60
        while len(moto.sent_messages()) < 2 and time.monotonic() < deadline:
            time.sleep(0.3)
    assert len(moto.sent_messages()) == 2
    after = run(env, "dlq", "list", "--json")
    assert json.loads(after.stdout) == []
