"""``email-worker status``: a request's timeline, from its claim to each recipient's fate."""

from __future__ import annotations

import json
import os
import textwrap
from typing import TYPE_CHECKING, Any

import click

from worker.config.settings import Settings, SettingsError
from worker.ops.commands.common import EXIT_USAGE, fail, stdout_console
from worker.ops.commands.dead_letter_location import (
    DeadLetterLocation,
    locate_dead_letter,
    without_addresses,
)
from worker.ops.commands.ledger import (
    EXIT_NOT_FOUND,
    LEDGER_EXIT_CODES,
    open_for_lookup,
    record_json,
)

if TYPE_CHECKING:
    from worker.ledger import LedgerRecord, RecipientStatus
    from worker.ledger.schedules import Schedule

__all__ = ["status"]

_EPILOG = "\b\nExit codes:\n" + "\n".join(
    textwrap.fill(text, width=76, initial_indent=f"  {code}  ", subsequent_indent="     ")
    for code, text in {
        **LEDGER_EXIT_CODES,
        EXIT_NOT_FOUND: "nothing is known of that request: no record and no SES event in the "
        "ledger, and no dead letter found",
    }.items()
)

# What each event type means for its recipient, in the timeline.
_STATUS_WORDS = {
    "send": "sent (SES accepted it)",
    "delivery_delay": "delayed",
    "delivery": "delivered",
    "bounce": "bounced",
    "reject": "rejected by SES",
    "complaint": "complained",
}


def _iso(moment: Any) -> str:
    from worker.formats.result import format_timestamp

    return str(format_timestamp(moment))


def status_json(
    record: LedgerRecord | None,
    statuses: list[RecipientStatus],
    service_id: str,
    request_id: str,
    dead_letters: DeadLetterLocation | None = None,
) -> dict[str, Any]:
    """What ``status --json`` prints: the ledger's record (or null), every recipient's
    latest status, and for a request that was not sent, where its dead letter is."""
    stored = None if record is None else record_json(record)
    if stored is not None and stored["result"] and stored["result"]["error_message"]:
        stored["result"]["error_message"] = without_addresses(stored["result"]["error_message"])
    return {
        "service_id": service_id,
        "request_id": request_id,
        "record": stored,
        "dead_letters": None if dead_letters is None else dead_letters.as_json(),
        "recipients": [
            {
                "message_id": s.message_id,
                "batch": s.batch,
                "recipient": s.recipient,
                "status": s.event_type,
                "detail": s.detail,
                "occurred_at": _iso(s.occurred_at),
            }
            for s in statuses
        ],
    }


def _timeline(
    record: LedgerRecord | None, statuses: list[RecipientStatus]
) -> list[tuple[str, str]]:
    lines: list[tuple[str, str]] = []
    if record is not None:
        lines.append((_iso(record.created_at), "claimed by a delivery"))
        if record.takeovers:
            lines.append(("", f"taken over {record.takeovers} time(s) after a claim expired"))
        result = record.result
        if result is not None and result.template is not None:
            name, version, language = result.template
            lines.append(("", f"template {name} version {version}, language {language}"))
        if result is None:
            lines.append((_iso(record.updated_at), "being sent, or waiting for a delivery"))
        elif result.status == "sent":
            ids = ", ".join(result.message_ids)
            lines.append(
                (_iso(record.updated_at), f"sent to {result.recipient_count} recipient(s): {ids}")
            )
        else:
            failure = f"{result.status}: {result.error_code}"
            if result.error_message:
                failure += f": {without_addresses(result.error_message)}"
            lines.append((_iso(record.updated_at), failure))
    for s in statuses:
        word = _STATUS_WORDS.get(s.event_type, s.event_type)
        detail = f" ({s.detail})" if s.detail else ""
        lines.append((_iso(s.occurred_at), f"{s.recipient}: {word}{detail} [{s.message_id}]"))
    return lines


def _not_sent(record: LedgerRecord | None) -> bool:
    return record is not None and record.result is not None and record.result.status != "sent"


def _fail_unknown(
    settings: Settings, service_id: str, request_id: str, location: DeadLetterLocation | None
) -> None:
    searched = ""
    if location is not None and location.searched == "complete":
        searched = "; no dead letter of it either"
    elif location is not None:
        searched = f"; its dead letters were not searched, look with: {location.show_command}"
    fail(
        f"nothing is known of request {request_id!r} of service {service_id!r} in the "
        f"ledger {settings.ledger.url}: never claimed there and no SES event, or past its "
        f"retention{searched}",
        EXIT_NOT_FOUND,
    )


@click.command(epilog=_EPILOG)
@click.argument("service_id")
@click.argument("request_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option(
    "--dead-letter-search-s",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="For a request that was not sent: how long to look for it among the dead letters "
    "(0: do not look, print the command that does).",
)
def status(service_id: str, request_id: str, as_json: bool, dead_letter_search_s: float) -> None:
    """Show what became of request REQUEST_ID of service SERVICE_ID.

    From the request ledger (EMAIL_WORKER_LEDGER): when it was claimed, whether it was sent
    (with its SES message ids) or why not, then each recipient's latest status as SES
    reported it through `email-worker events`: sent, delayed, delivered, bounced,
    complained about or rejected, with SES's detail (bounce type and subtype, for example).
    Times are UTC. A status only moves forward: a late delay never hides a delivery.

    For a request that was rejected or failed: its error code and message (addresses in it
    replaced by <address>), its dead letter's message id, found by reading
    EMAIL_WORKER_DEAD_LETTER_SUBSCRIPTION without consuming anything (or the `dlq show`
    command that looks, when it cannot be read in time), and the `dlq replay` command. A
    request the ledger knows nothing of (refused before it was recorded, or past retention)
    is looked for among the dead letters too, and shown with its dead letter's reason.
    """
    try:
        settings = Settings.from_env(os.environ)
    except SettingsError as error:
        fail(str(error), EXIT_USAGE)
    record, statuses, scheduled = _read_ledger(settings, service_id, request_id)
    unknown = record is None and not statuses and scheduled is None
    location = None
    if unknown or _not_sent(record):
        location = locate_dead_letter(settings, service_id, request_id, dead_letter_search_s)
    if unknown and not (location and location.message_ids):
        _fail_unknown(settings, service_id, request_id, location)
    if location is not None and unknown and settings.services.per_service:
        location.replayable = False
    if as_json:
        document = status_json(record, statuses, service_id, request_id, location)
        document["schedule"] = _schedule_json(scheduled)
        click.echo(json.dumps(document, ensure_ascii=False))
        return
    stdout_console().print(f"Request {request_id} of service {service_id}", markup=False)
    if unknown:
        # Refused before the worker recorded it (an invalid request, say), or past retention.
        click.echo("Not in the request ledger: never claimed there, or past its retention")
    else:
        _print_timeline(_schedule_lines(scheduled) + _timeline(record, statuses))
    # Not through rich, which would wrap them: the commands must stay whole to be copied.
    for line in location.lines(with_reasons=unknown) if location is not None else []:
        click.echo(line)


def _read_ledger(
    settings: Settings, service_id: str, request_id: str
) -> tuple[LedgerRecord | None, list[RecipientStatus], Schedule | None]:
    """The ledger's record, recipients' statuses and schedule record (a request with a
    send_at), or a clear message and exit code."""
    store = open_for_lookup(settings)

    from google.auth.exceptions import GoogleAuthError

    from worker.ledger import LedgerKey, LedgerUnavailable
    from worker.ledger.schedule_stores import schedules_of

    key = LedgerKey(service_id, request_id)
    try:
        with store:
            return store.get(key), store.statuses(key), schedules_of(store).get(key)
    except LedgerUnavailable as error:
        fail(str(error))
    except GoogleAuthError as error:
        fail(f"Google credentials were refused while reading the ledger: {type(error).__name__}")


def _print_timeline(lines: list[tuple[str, str]]) -> None:
    from rich.table import Table
    from rich.text import Text

    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True, style="dim")
    grid.add_column(overflow="fold")
    for when, what in lines:
        # Text, not markup: addresses and SES's details may hold brackets.
        grid.add_row(when, Text(what))
    stdout_console().print(grid)


def _epoch_iso(epoch_s: float) -> str:
    from datetime import UTC, datetime

    return _iso(datetime.fromtimestamp(epoch_s, UTC))


def _schedule_lines(scheduled: Schedule | None) -> list[tuple[str, str]]:
    """The timeline's first lines for a request that arrived with a send_at ahead."""
    if scheduled is None:
        return []
    lines = [(_epoch_iso(scheduled.created_at), f"scheduled for {_epoch_iso(scheduled.due_at)}")]
    if scheduled.state == "cancelled":
        lines.append(("", "cancelled before its time: not sent"))
    return lines


def _schedule_json(scheduled: Schedule | None) -> dict[str, Any] | None:
    if scheduled is None:
        return None
    return {
        "send_at": _epoch_iso(scheduled.due_at),
        "scheduled_at": _epoch_iso(scheduled.created_at),
        "state": scheduled.state.value,
    }
