"""``email-worker pause``, ``resume`` and ``paused``: stop and restart sending, per service or
for all, without failing a request (see docs/operations.md, "Stopping and resuming sending")."""

from __future__ import annotations

import getpass
import json
from typing import TYPE_CHECKING, Any

import click

from worker.config.settings import SERVICE_ID_RE, Settings
from worker.ops.commands import common
from worker.ops.commands.common import EXIT_USAGE, fail, load_settings
from worker.ops.commands.ledger import open_for_lookup

if TYPE_CHECKING:
    from worker.ledger import Ledger, Pause

__all__ = ["pause", "paused", "resume"]

_EPILOG = common.exit_codes_epilog(common.EXIT_OK, common.EXIT_FAILURE, EXIT_USAGE)


def _scopes(settings: Settings, services: tuple[str, ...], everything: bool) -> list[str]:
    """What to pause or resume, or a usage error."""
    from worker.ledger import ALL_SERVICES

    if everything == bool(services):
        fail("name one or more services, or --all", EXIT_USAGE)
    if everything:
        if settings.services.per_service and not settings.services.allowed:
            fail(
                "--all needs EMAIL_WORKER_ALLOWED_SERVICES (the worker's value): each "
                "service's subscription is paused",
                EXIT_USAGE,
            )
        return [ALL_SERVICES]
    if not settings.services.per_service:
        fail(
            "with shared tenancy (EMAIL_WORKER_TENANCY=shared) every service's requests come "
            "through one subscription: only --all can pause them",
            EXIT_USAGE,
        )
    for service in services:
        if not SERVICE_ID_RE.fullmatch(service):
            fail(f"{service!r} is not a service id", EXIT_USAGE)
        if settings.services.allowed and service not in settings.services.allowed:
            fail(f"{service!r} is not in EMAIL_WORKER_ALLOWED_SERVICES", EXIT_USAGE)
    return list(dict.fromkeys(services))


def _label(scope: str) -> str:
    return "every service" if scope == "*" else scope


def _ledger_and_subscriber(settings: Settings) -> tuple[Ledger, Any]:
    from worker.client.pubsub_rpc import new_subscriber

    return open_for_lookup(settings), new_subscriber()


@click.command(epilog=_EPILOG)
@click.argument("services", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Pause every service.")
@click.option("--reason", help="Why, for `email-worker paused` (not logged by the workers).")
@click.option("--by", "by", help="Who pauses [default: the current user name].")
def pause(services: tuple[str, ...], everything: bool, reason: str | None, by: str | None) -> None:
    """Stop sending for SERVICES (or --all) until `email-worker resume`.

    Requests published meanwhile wait in Pub/Sub and are sent after the resume, none failed
    or dead-lettered. Pull workers stop pulling the paused subscriptions within
    EMAIL_WORKER_PAUSE_POLL_S; push subscriptions are switched to pull (their push
    configuration is kept in the pause record, in the request ledger, and put back by
    resume). Pausing again is harmless.
    """
    from worker.ledger import LedgerUnavailable
    from worker.ops.pausing import pause as pause_scope

    settings, _project = load_settings()
    scopes = _scopes(settings, services, everything)
    author = by or _user()
    store, subscriber = _ledger_and_subscriber(settings)
    with store:
        for scope in scopes:
            try:
                with common.pubsub_errors(f"pausing {_label(scope)}"):
                    stored, switched = pause_scope(
                        store,
                        subscriber,
                        settings,
                        scope=scope,
                        by=author,
                        reason=reason,
                        timeout_s=common.rpc_timeout_s(settings),
                    )
            except LedgerUnavailable as error:
                fail(str(error))
            line = f"paused {_label(scope)} (since {_iso(stored)})"
            if switched:
                line += "; push subscriptions now pull: " + ", ".join(switched)
            click.echo(line)


@click.command(epilog=_EPILOG)
@click.argument("services", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Resume the pause of every service.")
def resume(services: tuple[str, ...], everything: bool) -> None:
    """Resume sending for SERVICES (or end the pause of --all).

    Pull workers start pulling again within EMAIL_WORKER_PAUSE_POLL_S. Push subscriptions
    the pause switched to pull get their push configuration back, after waiting that long
    again and a second, so that no worker refuses a push (unless another pause still holds
    them: a service's own pause outlives the end of --all, and the other way round).
    Resuming what is not paused says so and succeeds.
    """
    from worker.ledger import LedgerUnavailable
    from worker.ops.pausing import resume as resume_scope

    settings, _project = load_settings()
    scopes = _scopes(settings, services, everything)
    store, subscriber = _ledger_and_subscriber(settings)
    with store:
        for scope in scopes:
            try:
                with common.pubsub_errors(f"resuming {_label(scope)}"):
                    done = resume_scope(
                        store,
                        subscriber,
                        settings,
                        scope=scope,
                        timeout_s=common.rpc_timeout_s(settings),
                    )
            except LedgerUnavailable as error:
                fail(str(error))
            if done.pause is None:
                click.echo(f"{_label(scope)} was not paused")
                continue
            line = f"resumed {_label(scope)}"
            if done.restored:
                line += "; push subscriptions push again: " + ", ".join(done.restored)
            for subscription, heir in done.handed_over:
                line += f"; {subscription} stays pull while {_label(heir)} is paused"
            click.echo(line)


@click.command(epilog=_EPILOG)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def paused(as_json: bool) -> None:
    """List the pauses in force: what, since when (UTC), by whom, why, and the push
    subscriptions switched to pull."""
    from worker.ledger import LedgerUnavailable

    settings, _project = load_settings()
    try:
        with open_for_lookup(settings) as store:
            pauses = store.pauses()
    except LedgerUnavailable as error:
        fail(str(error))
    if as_json:
        click.echo(json.dumps([_pause_json(p) for p in pauses], ensure_ascii=False))
        return
    if not pauses:
        click.echo("nothing is paused")
        return
    _print_table(pauses)


def _print_table(pauses: list[Pause]) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table("Paused", "Since", "By", "Reason", "Push subscriptions now pull")
    for p in pauses:
        table.add_row(
            _label(p.scope),
            _iso(p),
            Text(p.by),
            Text(p.reason or "-"),
            "\n".join(sorted(p.saved_push_configs)) or "-",
        )
    common.stdout_console().print(table)


def _pause_json(pause: Pause) -> dict[str, Any]:
    return {
        "scope": pause.scope,
        "all_services": pause.everything,
        "since": _iso(pause),
        "by": pause.by,
        "reason": pause.reason,
        "push_subscriptions_switched_to_pull": sorted(pause.saved_push_configs),
    }


def _iso(pause: Pause) -> str:
    from worker.formats.result import format_timestamp

    return format_timestamp(pause.since)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
