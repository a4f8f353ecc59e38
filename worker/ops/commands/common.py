"""What the operators' commands share: exit codes, settings, Pub/Sub error reporting, output."""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Literal, NoReturn

import click
import structlog
from rich.console import Console

from worker.config.logs import StderrAtWriteTime, configure_logging
from worker.config.settings import LogLevel, Settings, SettingsError, unknown_setting_names

__all__ = [
    "EXIT_CODES",
    "EXIT_FAILURE",
    "EXIT_NOT_SENT",
    "EXIT_NO_RESULT",
    "EXIT_OK",
    "EXIT_USAGE",
    "configure_operator_logging",
    "exit_codes_epilog",
    "exit_codes_text",
    "fail",
    "load_settings",
    "pubsub_errors",
    "rpc_timeout_s",
    "settings_from_env",
    "short_duration",
    "stderr_console",
    "stdout_console",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_NOT_SENT = 3
EXIT_NO_RESULT = 4

#: Every exit code of the operators' commands, for --help and docs/operations.md.
EXIT_CODES: dict[int, str] = {
    EXIT_OK: "success",
    EXIT_FAILURE: "failure at run time: Pub/Sub unreachable, a topic or subscription missing, "
    "a dead letter not found, a replay or purge not completed",
    EXIT_USAGE: "invalid settings, options or request",
    EXIT_NOT_SENT: "send --wait: the result's status is rejected or failed",
    EXIT_NO_RESULT: "send --wait: no result within --timeout (the request may still be sent)",
}


def exit_codes_epilog(*codes: int, texts: Mapping[int, str] | None = None) -> str:
    """An epilog listing ``codes`` (all by default), laid out as written; ``texts`` says
    what a code means for one command, instead of the general meaning."""
    texts = {**EXIT_CODES, **(texts or {})}
    lines = [
        textwrap.fill(
            texts[code], width=76, initial_indent=f"  {code}  ", subsequent_indent="     "
        )
        for code in (codes or tuple(EXIT_CODES))
    ]
    return "\b\nExit codes:\n" + "\n".join(lines)


def exit_codes_text(meanings: Mapping[int, str]) -> str:
    """An epilog listing each of these exit codes with its meaning, laid out as written."""
    return exit_codes_epilog(*sorted(meanings), texts=meanings)


def short_duration(seconds: float) -> str:
    """A duration for a table cell: "42s", "17m", "5h03m", "3d" (its sign dropped)."""
    seconds = abs(seconds)
    if seconds < 60:
        return f"{int(seconds)}s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    return f"{hours // 24}d"


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    """Print ``email-worker: message`` on stderr and exit with ``code``."""
    click.echo(f"email-worker: {message}", err=True)
    sys.exit(code)


def settings_from_env(
    required_for: Literal["pull", "serve"] | None = None, *, reject_unknown_names: bool = False
) -> Settings:
    """Settings from the environment (with what ``required_for`` needs), or one message
    naming every problem and exit code 2.

    ``reject_unknown_names``: an ``EMAIL_WORKER_*`` variable that is no setting (a typo) is
    one of the problems; the worker's own commands (pull, serve, events, check) ask for it.
    """
    problems = unknown_setting_names(os.environ) if reject_unknown_names else []
    try:
        settings = Settings.from_env(os.environ, required_for=required_for)
    except SettingsError as error:
        problems.extend(error.problems)
    if problems:
        fail(str(SettingsError(problems)), EXIT_USAGE)
    return settings


def configure_operator_logging(environ: Mapping[str, str]) -> None:
    """Send an operator's command's logs to stderr as JSON lines, at EMAIL_WORKER_LOG_LEVEL
    when it is set (and valid: the command reports it otherwise), else at WARNING.

    Its stdout carries what it prints (``--json`` that scripts parse), so no log line may
    land there. A program that runs the commands in-process keeps its own configuration if
    it made one (a test capturing logs), and its loggers are not tied to this one (no
    caching: a command logs little).
    """
    if structlog.is_configured():
        return
    raw = environ.get("EMAIL_WORKER_LOG_LEVEL", "").strip().upper()
    level = raw if raw in LogLevel.__members__ else LogLevel.WARNING.value
    configure_logging(level, stream=StderrAtWriteTime(), cache_loggers=False)


def load_settings() -> tuple[Settings, str]:
    """Settings and project id from the environment, or a clear message and exit code 2."""
    settings = settings_from_env()
    try:
        return settings, settings.require_project()
    except SettingsError as error:
        fail(str(error), EXIT_USAGE)


def rpc_timeout_s(settings: Settings) -> float:
    """How long one Pub/Sub call may take before Pub/Sub counts as unreachable."""
    return min(10.0, settings.process.publish_timeout_s)


def _pubsub_location() -> str:
    emulator = os.environ.get("PUBSUB_EMULATOR_HOST")
    return f"the Pub/Sub emulator at {emulator}" if emulator else "Pub/Sub"


@contextmanager
def pubsub_errors(doing: str, *, not_found: str | None = None) -> Iterator[None]:
    """Turn Pub/Sub errors raised inside into one line on stderr and exit code 1.

    ``doing`` completes "... while <doing>"; ``not_found`` replaces the message for NotFound.
    """
    from google.api_core import exceptions as gexc
    from google.auth.exceptions import DefaultCredentialsError

    from worker.client.pubsub_rpc import describe_error, is_unreachable

    try:
        yield
    except gexc.NotFound as error:
        fail(not_found or f"not found while {doing}: {describe_error(error)}")
    except (gexc.PermissionDenied, gexc.Unauthenticated) as error:
        fail(f"permission denied while {doing}: {describe_error(error)}")
    except DefaultCredentialsError:
        fail(
            "no Google credentials: set PUBSUB_EMULATOR_HOST to use the emulator, or run "
            "`gcloud auth application-default login`"
        )
    except Exception as error:
        if is_unreachable(error):
            fail(f"cannot reach {_pubsub_location()} while {doing}: {describe_error(error)}")
        if isinstance(error, gexc.GoogleAPICallError):
            fail(f"Pub/Sub refused {doing}: {describe_error(error)}")
        raise


def stdout_console() -> Console:
    return Console(highlight=False, soft_wrap=False)


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False)
