"""``email-worker check``, and the same checks when ``pull``, ``serve`` and ``events`` start.

Problems go to stderr, one ``email-worker: <problem>`` line each, for a person at a terminal.
A command that refuses to start also logs one JSON ``cannot start`` record naming them, for
Cloud Logging, unless stderr is a terminal (where that record would only repeat the lines).
"""

from __future__ import annotations

import os
import sys
import textwrap
import time
import urllib.parse
from collections.abc import Mapping
from typing import NoReturn

import click

from worker.app.checks import COMMANDS, Check, Command, State, run_checks, settings_problems
from worker.config.logs import get_logger
from worker.config.settings import Settings, shown_value
from worker.ops.commands.common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, settings_from_env

__all__ = ["check", "check_before_start", "default_command", "settings_listing"]

_EXIT_CODES = {
    EXIT_OK: "every check passed (or was skipped: its reason is printed)",
    EXIT_FAILURE: "a check failed: Pub/Sub unreachable or no Google credentials, a topic or "
    "subscription missing or a subscription attached to another topic, the ledger not "
    "opening, a service's configuration document not loading or invalid",
    EXIT_USAGE: "invalid settings, including an EMAIL_WORKER_ variable that is no setting",
}
_EPILOG = "\b\nExit codes:\n" + "\n".join(
    textwrap.fill(text, width=76, initial_indent=f"  {code}  ", subsequent_indent="     ")
    for code, text in _EXIT_CODES.items()
)
# Settings that, when set, say the deployment serves Pub/Sub push (terraform sets them so).
_PUSH_SETTINGS = ("EMAIL_WORKER_PUSH_AUDIENCE", "EMAIL_WORKER_PUSH_ACK_DEADLINE_S")


def default_command(environ: Mapping[str, str]) -> Command:
    """The command a deployment runs, as far as its settings tell: serve when push settings
    are set, else pull."""
    return "serve" if any(environ.get(name, "").strip() for name in _PUSH_SETTINGS) else "pull"


def settings_listing(settings: Settings, environ: Mapping[str, str]) -> list[str]:
    """One line per setting: its name, its effective value and whether it was set in the
    environment or is the default. URL credentials (user:password@) are masked."""
    rows = []
    for spec, value in settings.values():
        name = spec.variable
        shown = "(unset)" if value is None else _mask_credentials(shown_value(value))
        origin = "environment" if environ.get(name, "").strip() else "default"
        rows.append((name, shown, origin))
    width = max(len(name) for name, _, _ in rows)
    return [f"  {name:<{width}}  {shown}  [{origin}]" for name, shown, origin in rows]


def _mask_credentials(value: str) -> str:
    parts = urllib.parse.urlsplit(value)
    if "@" not in parts.netloc or ":" not in parts.netloc.split("@", 1)[0]:
        return value
    host = parts.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"***@{host}"))


@click.command(epilog=_EPILOG)
@click.argument("command", required=False, type=click.Choice(COMMANDS))
def check(command: Command | None) -> None:
    """Check that COMMAND (pull, serve or events) can run here, without running it.

    Prints the effective settings (each marked environment or default), then each check as
    ok, failed or skipped: the settings are valid (an EMAIL_WORKER_ variable that is no
    setting is named, with the closest one); Pub/Sub answers within a few seconds; every
    topic and subscription the command uses exists, each subscription attached to the topic
    it should read; the ledger opens; and (pull, serve) every allowed service's
    configuration document loads and is valid. Each problem is also one line on stderr.
    Everything is done within 10 s. pull, serve and events run the same checks when they
    start, and refuse to start on a problem.

    Without COMMAND: serve when EMAIL_WORKER_PUSH_AUDIENCE or
    EMAIL_WORKER_PUSH_ACK_DEADLINE_S is set (a push deployment), else pull.
    """
    command = command or default_command(os.environ)
    settings = settings_from_env(
        "pull" if command == "pull" else "serve" if command == "serve" else None,
        reject_unknown_names=True,
    )
    click.echo(f"Settings ({command}):")
    for line in settings_listing(settings, os.environ):
        click.echo(line)
    problems = settings_problems(settings, command)
    if problems:
        _report_invalid(problems)
        sys.exit(EXIT_USAGE)
    started = time.monotonic()
    checks = run_checks(settings, command)
    click.echo(f"Checks ({command}, {time.monotonic() - started:.1f} s):")
    click.echo(f"  {State.OK.value:<7}  the settings are valid")
    for outcome in checks:
        note = f": {outcome.detail}" if outcome.state is State.SKIPPED else ""
        click.echo(f"  {outcome.state.value:<7}  {outcome.what}{note}")
    failed = _problems(checks)
    for problem in failed:
        click.echo(f"email-worker: {problem}", err=True)
    sys.exit(EXIT_FAILURE if failed else EXIT_OK)


def check_before_start(settings: Settings, command: Command) -> None:
    """Run ``command``'s checks; on a problem, report it and exit (2 for invalid settings,
    1 for the rest). Skipped checks are logged as warnings."""
    log = get_logger()
    problems = settings_problems(settings, command)
    if problems:
        _refuse_to_start(["invalid settings:\n  " + "\n  ".join(problems)], problems, EXIT_USAGE)
    started = time.monotonic()
    checks = run_checks(settings, command)
    failed = _problems(checks)
    if failed:
        _refuse_to_start(failed, failed, EXIT_FAILURE)
    for outcome in checks:
        if outcome.state is State.SKIPPED:
            log.warning("start-up check skipped", check=outcome.what, reason=outcome.detail)
    log.info(
        "start-up checks passed",
        checks=len(checks),
        seconds=round(time.monotonic() - started, 2),
    )


def _problems(checks: list[Check]) -> list[str]:
    """The failed checks' problems, each once (a missing credential fails several checks)."""
    return list(dict.fromkeys(c.detail for c in checks if c.state is State.FAILED))


def _report_invalid(problems: list[str]) -> None:
    click.echo("email-worker: invalid settings:\n  " + "\n  ".join(problems), err=True)


def _refuse_to_start(lines: list[str], problems: list[str], code: int) -> NoReturn:
    for line in lines:
        click.echo(f"email-worker: {line}", err=True)
    if not sys.stderr.isatty():
        get_logger().error("cannot start", problems=problems)
    sys.stdout.flush()
    sys.exit(code)
