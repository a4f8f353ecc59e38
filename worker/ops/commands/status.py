"""``email-worker status``: a request's timeline, from its claim to each recipient's fate."""

from __future__ import annotations

import json
import os
import textwrap
from typing import TYPE_CHECKING, Any

import click

from worker.config.settings import Settings, SettingsError
from worker.ops.commands.common import EXIT_USAGE, fail, stdout_console
from worker.ops.commands.ledger import (
    EXIT_NOT_FOUND,
    LEDGER_EXIT_CODES,
    open_for_lookup,
    record_json,
)

if TYPE_CHECKING:
    from worker.ledger import LedgerRecord, RecipientStatus

__all__ = ["status"]

_EPILOG = "\b\nExit codes:\n" + "\n".join(
    textwrap.fill(text, width=76, initial_indent=f"  {code}  ", subsequent_indent="     ")
    for code, text in {
        **LEDGER_EXIT_CODES,
        EXIT_NOT_FOUND: "the ledger knows nothing of that request: no record and no SES event",
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
    record: LedgerRecord | None, statuses: list[RecipientStatus], service_id: str, request_id: str
) -> dict[str, Any]:
    """What ``status --json`` prints: the ledger's record (or null) and every recipient's
    latest status."""
    return {
        "service_id": service_id,
        "request_id": request_id,
        "record": None if record is None else record_json(record),
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
        if result is None:
            lines.append((_iso(record.updated_at), "being sent, or waiting for a delivery"))
        elif result.status == "sent":
            ids = ", ".join(result.message_ids)
            lines.append(
                (_iso(record.updated_at), f"sent to {result.recipient_count} recipient(s): {ids}")
            )
        else:
            lines.append((_iso(record.updated_at), f"{result.status}: {result.error_code}"))
    for s in statuses:
        word = _STATUS_WORDS.get(s.event_type, s.event_type)
        detail = f" ({s.detail})" if s.detail else ""
        lines.append((_iso(s.occurred_at), f"{s.recipient}: {word}{detail} [{s.message_id}]"))
    return lines


@click.command(epilog=_EPILOG)
@click.argument("service_id")
@click.argument("request_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def status(service_id: str, request_id: str, as_json: bool) -> None:
    """Show what became of request REQUEST_ID of service SERVICE_ID.

    From the request ledger (EMAIL_WORKER_LEDGER): when it was claimed, whether it was sent
    (with its SES message ids) or why not, then each recipient's latest status as SES
    reported it through `email-worker events`: sent, delayed, delivered, bounced,
    complained about or rejected, with SES's detail (bounce type and subtype, for example).
    Times are UTC. A status only moves forward: a late delay never hides a delivery.
    """
    try:
        settings = Settings.from_env(os.environ)
    except SettingsError as error:
        fail(str(error), EXIT_USAGE)
    store = open_for_lookup(settings)

    from google.auth.exceptions import GoogleAuthError

    from worker.ledger import LedgerKey, LedgerUnavailable

    key = LedgerKey(service_id, request_id)
    try:
        with store:
            record = store.get(key)
            statuses = store.statuses(key)
    except LedgerUnavailable as error:
        fail(str(error))
    except GoogleAuthError as error:
        fail(f"Google credentials were refused while reading the ledger: {type(error).__name__}")
    if record is None and not statuses:
        fail(
            f"nothing is known of request {request_id!r} of service {service_id!r} in the "
            f"ledger {settings.ledger}: never claimed there and no SES event, or past its "
            "retention",
            EXIT_NOT_FOUND,
        )
    if as_json:
        click.echo(
            json.dumps(status_json(record, statuses, service_id, request_id), ensure_ascii=False)
        )
        return
    from rich.table import Table
    from rich.text import Text

    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True, style="dim")
    grid.add_column(overflow="fold")
    for when, what in _timeline(record, statuses):
        # Text, not markup: addresses and SES's details may hold brackets.
        grid.add_row(when, Text(what))
    stdout_console().print(f"Request {request_id} of service {service_id}", markup=False)
    stdout_console().print(grid)
