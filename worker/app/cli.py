"""The ``email-worker`` command line.

Exit codes: 0 success; 1 failure at run time (for example the subscription is missing);
2 invalid settings or usage; for ``send --wait`` also 3 (the request was not sent) and 4 (no
result in time). The operators' commands live in :mod:`worker.ops.commands`.
"""

from __future__ import annotations

import os
import sys

import click

from worker.app.check_command import check, check_before_start
from worker.app.memory import tune_allocator
from worker.config.logs import configure_logging
from worker.console import console
from worker.ops.commands.common import (
    EXIT_FAILURE,
    EXIT_NO_RESULT,
    EXIT_NOT_SENT,
    EXIT_OK,
    EXIT_USAGE,
    configure_operator_logging,
    exit_codes_text,
    settings_from_env,
)
from worker.ops.commands.dlq import dlq
from worker.ops.commands.ledger import EXIT_NOT_FOUND, ledger
from worker.ops.commands.pause import pause, paused, resume
from worker.ops.commands.schedule import schedule
from worker.ops.commands.send import send
from worker.ops.commands.setup import setup
from worker.ops.commands.status import status
from worker.ops.commands.templates import templates

__all__ = ["main"]


_MAIN_EPILOG = exit_codes_text(
    {
        EXIT_OK: "success",
        EXIT_FAILURE: "failure at run time (for example Pub/Sub unreachable, a subscription "
        "missing)",
        EXIT_USAGE: "invalid settings, options or request",
        EXIT_NOT_SENT: "send --wait: the request was not sent",
        EXIT_NO_RESULT: "send --wait: no result in time",
        EXIT_NOT_FOUND: "ledger show, status, schedule cancel: nothing known of that request",
    }
)
_LOGGING_TO_STDOUT = frozenset({"pull", "serve", "events", "console"})
_RUN_EXIT_CODES = {
    EXIT_OK: "stopped by SIGTERM or SIGINT, in-flight work finished or handed back",
    EXIT_USAGE: "invalid settings",
}


@click.group(
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=_MAIN_EPILOG + "\n\nEach command's --help lists its own.",
)
@click.version_option(
    package_name="email-worker", prog_name="email-worker", message="%(prog)s %(version)s"
)
@click.pass_context
def main(context: click.Context) -> None:
    """Send email requests from Pub/Sub through Amazon SES."""
    # The long-running commands log to stdout, where Cloud Run reads them, once they have
    # their settings; the others print their output there, and log to stderr.
    if context.invoked_subcommand not in _LOGGING_TO_STDOUT:
        configure_operator_logging(os.environ)


main.add_command(send)
main.add_command(dlq)
main.add_command(ledger)
main.add_command(setup)
main.add_command(status)
main.add_command(check)
main.add_command(pause)
main.add_command(resume)
main.add_command(paused)
main.add_command(templates)
main.add_command(console)
main.add_command(schedule)


@main.command(
    epilog=exit_codes_text(
        {
            **_RUN_EXIT_CODES,
            EXIT_FAILURE: "cannot start (Pub/Sub, the ledger or the HTTP port), or a "
            "subscription cannot be pulled from",
        }
    )
)
def pull() -> None:
    """Pull requests from the worker's subscriptions and send them until SIGTERM or SIGINT.

    Configured by environment variables (see the README's configuration table);
    GOOGLE_CLOUD_PROJECT and EMAIL_WORKER_ALLOWED_SERVICES are required.
    """
    settings = settings_from_env("pull", reject_unknown_names=True)
    configure_logging(settings.process.log_level)
    tune_allocator()
    check_before_start(settings, "pull")

    from worker.app.pulling import run_pull  # imported here so that `--help` stays fast

    sys.exit(run_pull(settings))


@main.command(
    epilog=exit_codes_text(
        {
            **_RUN_EXIT_CODES,
            EXIT_FAILURE: "cannot start (Pub/Sub or the ledger) or cannot listen on $PORT",
        }
    )
)
def serve() -> None:
    """Serve the Pub/Sub push endpoint (POST /pubsub/push) on $PORT (default 8080).

    Also serves /healthz, /readyz and /metrics. Every push must carry an OIDC token for
    EMAIL_WORKER_PUSH_AUDIENCE signed for EMAIL_WORKER_PUSH_SERVICE_ACCOUNT;
    EMAIL_WORKER_PUSH_AUTH=off disables that, for the emulator and local development only.
    Stops gracefully on SIGTERM or SIGINT.
    """
    settings = settings_from_env("serve", reject_unknown_names=True)
    configure_logging(settings.process.log_level)
    tune_allocator()
    check_before_start(settings, "serve")

    from worker.app.serving import run_serve  # imported here so that `--help` stays fast

    sys.exit(run_serve(settings))


@main.command(
    epilog=exit_codes_text(
        {
            **_RUN_EXIT_CODES,
            EXIT_FAILURE: "cannot start (the HTTP port), or the reader stopped by itself",
        }
    )
)
def events() -> None:
    """Publish SES's events about sent email (send, delivery, bounce, complaint, delivery
    delay, reject) to the events topic until SIGTERM or SIGINT.

    Long-polls EMAIL_WORKER_SES_EVENTS_QUEUE_URL as EMAIL_WORKER_SES_EVENTS_ROLE_ARN (assumed
    with the Google identity, no AWS keys) and publishes one event v1 message per event to
    EMAIL_WORKER_EVENTS_TOPIC; an SQS message is deleted only once its publish is confirmed.
    GOOGLE_CLOUD_PROJECT and both EMAIL_WORKER_SES_EVENTS_* settings are required.
    """
    settings = settings_from_env(reject_unknown_names=True)
    configure_logging(settings.process.log_level)
    check_before_start(settings, "events")

    from worker.app.relaying import run_events  # imported here so that `--help` stays fast

    sys.exit(run_events(settings))
