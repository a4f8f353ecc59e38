"""Structured logs in Google Cloud Logging's JSON format, configured once at the entry point.

One JSON object per line with ``severity``, ``message`` and ``time``; everything else bound to
the logger (or to structlog's per-message context variables) becomes a field. Callers
log counts and identifiers only: never bodies, attachments, addresses, tokens or credentials.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, TextIO, cast

import structlog
from structlog.typing import EventDict, WrappedLogger

__all__ = ["OncePerInterval", "StderrAtWriteTime", "configure_logging", "get_logger"]

# Cloud Logging's severities for the standard level names.
_SEVERITY = {
    "debug": "DEBUG",
    "info": "INFO",
    "warning": "WARNING",
    "warn": "WARNING",
    "error": "ERROR",
    "exception": "ERROR",
    "critical": "CRITICAL",
}


def _add_severity(_: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    event_dict["severity"] = _SEVERITY.get(method_name, "DEFAULT")
    return event_dict


class StderrAtWriteTime:
    """Writes to whatever ``sys.stderr`` is when a line is written, not when logging was
    configured: a stream for the operators' commands, whose stdout carries their output."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(
    level: str = "INFO",
    stream: TextIO | StderrAtWriteTime | None = None,
    *,
    cache_loggers: bool = True,
) -> None:
    """Send structlog (and stdlib logging from libraries) to ``stream`` (stdout by default)
    as JSON lines. ``cache_loggers``: each logger keeps this configuration once it has logged
    (faster, and final: for a process that configures logging once)."""
    numeric = logging.getLevelName(level.upper())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _add_severity,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
            structlog.processors.format_exc_info,
            structlog.processors.EventRenamer("message"),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(cast("TextIO", stream or sys.stdout)),
        cache_logger_on_first_use=cache_loggers,
    )
    # Libraries log through the standard library; keep their warnings, in plain text on stderr.
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=StderrAtWriteTime(), force=True)


def get_logger(**initial: Any) -> Any:
    """A structlog logger with ``initial`` fields bound."""
    return structlog.get_logger("email-worker", **initial)


class OncePerInterval:
    """Lets one event of a kind through per interval and counts the ones it holds back.

    For events an outsider can cause at will (forged push requests): a flood of them should
    cost a log line a minute, not one each, while the metrics still count every one.
    """

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[Hashable, float] = {}
        self._held: dict[Hashable, int] = {}

    def admit(self, kind: Hashable) -> int | None:
        """None to stay quiet; else how many of ``kind`` were held back since the last one."""
        now = self._clock()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self._interval_s:
                self._held[kind] = self._held.get(kind, 0) + 1
                return None
            self._last[kind] = now
            return self._held.pop(kind, 0)
