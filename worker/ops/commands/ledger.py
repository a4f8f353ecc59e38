"""``email-worker ledger``: look up what the request ledger holds about one request."""

from __future__ import annotations

import datetime as dt
import json
import os
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from worker.config.settings import Settings, SettingsError
from worker.ops.commands.common import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    fail,
    short_duration,
    stdout_console,
)

if TYPE_CHECKING:
    from worker.ledger import Ledger, LedgerRecord

__all__ = ["EXIT_NOT_FOUND", "LEDGER_EXIT_CODES", "ledger", "open_for_lookup", "record_json"]

#: ``ledger show``: the ledger holds no record for the request.
EXIT_NOT_FOUND = 5

LEDGER_EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_FAILURE: "the ledger could not be opened or read (a missing SQLite file, Firestore "
    "unreachable or refusing access)",
    EXIT_USAGE: "invalid settings or options, or no ledger to look in (EMAIL_WORKER_LEDGER is "
    "none or in-memory)",
    EXIT_NOT_FOUND: "no record of that request: never claimed, or past its retention",
}
# Laid out like the other commands' epilogs (worker.ops.commands.common.exit_codes_epilog).
_EPILOG = "\b\nExit codes:\n" + "\n".join(
    textwrap.fill(text, width=76, initial_indent=f"  {code}  ", subsequent_indent="     ")
    for code, text in LEDGER_EXIT_CODES.items()
)

_SQLITE_PREFIX = "sqlite:///"
_IN_MEMORY = ("sqlite://", "sqlite:///:memory:")


@click.group(epilog=_EPILOG)
def ledger() -> None:
    """Look up requests in the request ledger (EMAIL_WORKER_LEDGER).

    The ledger holds one record per service and request id: whether a delivery is sending
    it (claimed) or it is finished (done), and then the result the requester got. It holds
    no request content.
    """


def _iso(moment: dt.datetime | None) -> str | None:
    from worker.formats.result import format_timestamp

    return None if moment is None else format_timestamp(moment)


def record_json(record: LedgerRecord) -> dict[str, Any]:
    """``record`` as the JSON object ``ledger show --json`` prints."""
    result = record.result
    return {
        "service_id": record.key.service_id,
        "request_id": record.key.request_id,
        "state": record.state,
        "result": None
        if result is None
        else {
            "status": result.status,
            "message_ids": list(result.message_ids),
            "error_code": result.error_code,
            "error_message": result.error_message,
            "recipient_count": result.recipient_count,
            "template": _template(result.template),
        },
        "takeovers": record.takeovers,
        "owner": record.owner,
        "lease_until": _iso(record.lease_until),
        "content_hash": record.content_hash,
        "created_at": _iso(record.created_at),
        "updated_at": _iso(record.updated_at),
        "expire_at": _iso(record.expire_at),
    }


def _lease(record: LedgerRecord, now: dt.datetime) -> str:
    if record.state == "claimed" and record.owner is None:
        return "- (released after a transient failure; the next delivery claims it)"
    if record.lease_until is None:
        return "-"
    left = (record.lease_until - now).total_seconds()
    if record.state != "claimed":
        return str(_iso(record.lease_until))
    until, how_long = _iso(record.lease_until), short_duration(left)
    if left > 0:
        return f"{until} (in {how_long}; a delivery is sending it)"
    return f"{until} (expired {how_long} ago; the next delivery takes over)"


def _print_record(record: LedgerRecord) -> None:
    from rich.table import Table
    from rich.text import Text

    result = record.result
    rows: list[tuple[str, str | None]] = [
        ("Service", record.key.service_id),
        ("Request ID", record.key.request_id),
        ("State", record.state),
        ("Status", result.status if result else "- (no result yet)"),
        ("Message IDs", "\n".join(result.message_ids) if result else None),
        ("Recipients", str(result.recipient_count) if result else None),
        ("Error code", result.error_code if result else None),
        ("Error message", result.error_message if result else None),
        ("Template", _template_line(result.template) if result and result.template else None),
        ("Takeovers", str(record.takeovers)),
        ("Owner", record.owner),
        ("Lease until", _lease(record, dt.datetime.now(dt.UTC))),
        ("Created at", _iso(record.created_at)),
        ("Updated at", _iso(record.updated_at)),
        ("Expires at", _iso(record.expire_at)),
        ("Content hash", record.content_hash),
    ]
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for label, value in rows:
        # Text, not markup: an error message from SES may hold brackets.
        grid.add_row(label, Text(value or "-"))
    stdout_console().print(grid)


def open_for_lookup(settings: Settings) -> Ledger:
    """The configured ledger, or a clear message and the matching exit code."""
    url = settings.ledger.url
    if url == "none":
        fail(
            "EMAIL_WORKER_LEDGER is none: there is no request ledger to look in (set it to the "
            "worker's value, for example firestore or sqlite:////var/lib/email-worker/ledger.db)",
            EXIT_USAGE,
        )
    if url in _IN_MEMORY:
        fail(
            f"EMAIL_WORKER_LEDGER={url} is an in-memory ledger, private to the worker process "
            "that holds it; set it to the worker's file or to firestore",
            EXIT_USAGE,
        )
    if url.startswith(_SQLITE_PREFIX):
        path = Path(url[len(_SQLITE_PREFIX) :])
        if not path.is_file():
            # Opening would create an empty ledger there, and every lookup would miss.
            fail(
                f"the SQLite ledger {path.absolute()} does not exist (EMAIL_WORKER_LEDGER={url}; "
                "a relative path is relative to the current directory)"
            )

    # Imported here: the Firestore client takes most of a second to import.
    from google.auth.exceptions import GoogleAuthError

    from worker.ledger import LedgerUnavailable, open_ledger

    try:
        opened = open_ledger(
            url,
            project=settings.topics.project_id,
            claim_lease_s=settings.ledger.claim_s,
            retention_s=settings.ledger.retention_s,
        )
    except LedgerUnavailable as error:
        fail(str(error))
    except GoogleAuthError as error:
        fail(
            "no usable Google credentials for the Firestore ledger: set FIRESTORE_EMULATOR_HOST "
            "to use the emulator, or run `gcloud auth application-default login` "
            f"({type(error).__name__})"
        )
    except (OSError, ValueError) as error:
        fail(f"cannot open the ledger {url}: {error}")
    assert opened is not None  # open_ledger gives None only for "none"
    return opened


@ledger.command(epilog=_EPILOG)
@click.argument("service_id")
@click.argument("request_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def show(service_id: str, request_id: str, as_json: bool) -> None:
    """Show the ledger's record of request REQUEST_ID of service SERVICE_ID.

    Its state (claimed: a delivery holds it; done: finished), the stored result (status,
    SES message ids, error), takeovers of expired claims, the claim's owner and lease, and
    when the record was created, last changed and expires (UTC).
    """
    try:
        settings = Settings.from_env(os.environ)
    except SettingsError as error:
        fail(str(error), EXIT_USAGE)
    store = open_for_lookup(settings)

    from google.auth.exceptions import GoogleAuthError

    from worker.ledger import LedgerKey, LedgerUnavailable

    try:
        with store:
            record = store.get(LedgerKey(service_id, request_id))
    except LedgerUnavailable as error:
        fail(str(error))
    except GoogleAuthError as error:
        fail(f"Google credentials were refused while reading the ledger: {type(error).__name__}")
    if record is None:
        fail(
            f"no record of request {request_id!r} of service {service_id!r} in the ledger "
            f"{settings.ledger.url}: it was never claimed there, or is past its retention",
            EXIT_NOT_FOUND,
        )
    if as_json:
        click.echo(json.dumps(record_json(record), ensure_ascii=False))
        return
    _print_record(record)


def _template(used: tuple[str, int, str] | None) -> dict[str, object] | None:
    if used is None:
        return None
    return {"name": used[0], "version": used[1], "language": used[2]}


def _template_line(used: tuple[str, int, str]) -> str:
    return f"{used[0]} version {used[1]}, language {used[2]}"
