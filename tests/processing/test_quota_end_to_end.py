"""Pacing from SES's quota, end to end: a pull worker on the Pub/Sub emulator, a SQLite ledger
and the SES stand-in enforcing SES's limits (bench/ses_quota.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.ses_quota import DAY_S
from bench.ses_standin import SesStandIn, marker
from tests.support.clock import ManualClock
from tests.support.worker_stack import Stack, make_stack, request

QUICK = {"EMAIL_WORKER_QUOTA_REFRESH_S": "0.5", "EMAIL_WORKER_INSTANCE_HEARTBEAT_S": "0.5"}


@pytest.fixture
def stack(pubsub_env: Any, ses_standin: SesStandIn, tmp_path: Path) -> Stack:
    return make_stack(pubsub_env, tmp_path, ses_standin.endpoint)


def test_requests_beyond_the_daily_cap_wait_and_go_out_when_the_window_reopens(
    stack: Stack, ses_standin: SesStandIn
) -> None:
    limits = ses_standin.quota
    assert limits is not None
    limits.set_daily_cap(3)
    day = limits.day_clock
    assert isinstance(day, ManualClock)

    with stack.running(**QUICK):
        ids = [f"daily-{n}" for n in range(5)]
        for request_id in ids:
            stack.publish(request(request_id=request_id, subject=marker(request_id)))
        first = stack.results(3)
        assert stack.nothing_more(stack.results_subscription, wait_s=3)  # the other two wait
        day.now += DAY_S  # the first three sends leave SES's 24-hour window
        rest = stack.results(2, timeout_s=30)

    assert [r["status"] for r in first + rest] == ["sent"] * 5
    assert sorted(r["request_id"] for r in first + rest) == ids
    assert ses_standin.send_counts(ids) == [1] * 5
    assert stack.nothing_more(stack.queue.dead_letter_subscription)


def test_paced_to_the_quota_a_backlog_is_sent_without_failures_or_dead_letters(
    stack: Stack, ses_standin: SesStandIn
) -> None:
    limits = ses_standin.quota
    assert limits is not None
    limits.set_rate(10)

    # At 10 per second, one recipient is a large part of a second's burst: the fraction leaves
    # room for the one send a full bucket lets through beyond it.
    with stack.running(**QUICK, EMAIL_WORKER_QUOTA_FRACTION="0.9") as runtime:
        runtime.handler.deps.sleep = None  # the send rate's waits really wait
        ids = [f"paced-{n}" for n in range(40)]
        for request_id in ids:
            stack.publish(request(request_id=request_id, subject=marker(request_id)))
        results = stack.results(40, timeout_s=60)

    assert [r["status"] for r in results] == ["sent"] * 40
    assert ses_standin.send_counts(ids) == [1] * 40
    assert limits.throttled_calls == 0
    assert stack.nothing_more(stack.queue.dead_letter_subscription)
