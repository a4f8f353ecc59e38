"""Log lines are JSON objects in Cloud Logging's structured format."""

from __future__ import annotations

import io
import json
import sys

import pytest
import structlog

from tests.support.clock import ManualClock
from worker.config.logs import OncePerInterval, StderrAtWriteTime, configure_logging, get_logger


def test_a_log_line_is_json_with_severity_message_and_time() -> None:
    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    try:
        with structlog.contextvars.bound_contextvars(request_id="r1"):
            get_logger().warning("something happened", error_code="throttled")
        record = json.loads(stream.getvalue())
    finally:
        structlog.reset_defaults()
    assert record["severity"] == "WARNING"
    assert record["message"] == "something happened"
    assert record["time"].endswith("Z")
    assert record["request_id"] == "r1"
    assert record["error_code"] == "throttled"


def test_records_below_the_level_are_dropped() -> None:
    stream = io.StringIO()
    configure_logging("WARNING", stream=stream)
    try:
        get_logger().info("chatter")
    finally:
        structlog.reset_defaults()
    assert stream.getvalue() == ""


def test_logs_to_stderr_go_to_the_stderr_of_the_moment_they_are_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configure_logging("INFO", stream=StderrAtWriteTime())
    later = io.StringIO()
    monkeypatch.setattr(sys, "stderr", later)  # as a CLI test runner swaps it, after set-up
    get_logger().warning("written now")
    assert json.loads(later.getvalue())["message"] == "written now"


def test_once_per_interval_lets_the_first_of_a_kind_through_and_holds_back_the_rest() -> None:
    clock = ManualClock(1000.0)
    gate = OncePerInterval(60.0, clock=clock)
    assert gate.admit("wrong_email") == 0
    clock.now += 59.0
    assert [gate.admit("wrong_email") for _ in range(3)] == [None, None, None]


def test_once_per_interval_reports_how_many_it_held_back_when_the_interval_is_over() -> None:
    clock = ManualClock(1000.0)
    gate = OncePerInterval(60.0, clock=clock)
    gate.admit("wrong_email")
    for _ in range(5):
        gate.admit("wrong_email")
    clock.now += 60.0
    assert gate.admit("wrong_email") == 5
    clock.now += 60.0
    assert gate.admit("wrong_email") == 0


def test_once_per_interval_keeps_each_kind_apart() -> None:
    gate = OncePerInterval(60.0, clock=ManualClock(1000.0))
    assert gate.admit("wrong_email") == 0
    assert gate.admit("bad_signature") == 0
    assert gate.admit("wrong_email") is None
