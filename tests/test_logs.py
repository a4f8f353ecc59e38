"""Log lines are JSON objects in Cloud Logging's structured format."""

from __future__ import annotations

import io
import json

import structlog

from worker.logs import configure_logging, get_logger


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
