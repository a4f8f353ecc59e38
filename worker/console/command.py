"""``email-worker console``: the web console, under uvicorn until SIGTERM or SIGINT."""

from __future__ import annotations

import click

from worker.ops.commands.common import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    exit_codes_text,
    fail,
    load_settings,
)

__all__ = ["console"]


@click.command(
    epilog=exit_codes_text(
        {
            EXIT_OK: "stopped by SIGTERM or SIGINT",
            EXIT_FAILURE: "the ledger or Pub/Sub cannot be opened",
            EXIT_USAGE: "invalid settings, or a non-loopback address without IAP settings",
        }
    )
)
def console() -> None:
    """Serve the web console: find a request, handle dead letters.

    Listens on EMAIL_WORKER_CONSOLE_HOST:EMAIL_WORKER_CONSOLE_PORT (default 127.0.0.1:8081;
    $PORT wins when set). Without EMAIL_WORKER_CONSOLE_IAP_AUDIENCE it serves loopback only
    and everyone who reaches it is an operator; with it, every request must carry
    Identity-Aware Proxy's verified assertion, and EMAIL_WORKER_CONSOLE_VIEWERS and
    EMAIL_WORKER_CONSOLE_OPERATORS say who may look and who may also replay and purge.
    Reads EMAIL_WORKER_LEDGER and EMAIL_WORKER_DEAD_LETTER_SUBSCRIPTION as the CLI does.
    """
    settings, _ = load_settings()
    problems = settings.console.binding_problems()
    if problems:
        fail("; ".join(problems), EXIT_USAGE)

    from worker.config.logs import configure_logging

    configure_logging(settings.process.log_level)

    from worker.console.serving import run_console  # the web stack loads only here

    run_console(settings)
