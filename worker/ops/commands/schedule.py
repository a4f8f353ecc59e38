"""``email-worker schedule list`` and ``schedule cancel``: the requests kept for their
``send_at`` (docs/operations.md, "Scheduled requests")."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from worker.ops.commands import common
from worker.ops.commands.common import EXIT_FAILURE, EXIT_USAGE, fail, load_settings
from worker.ops.commands.ledger import EXIT_NOT_FOUND, open_for_lookup

if TYPE_CHECKING:
    from worker.config.settings import Settings
    from worker.ledger.schedules import Schedule

__all__ = ["schedule"]

_EPILOG = common.exit_codes_epilog(
    common.EXIT_OK,
    EXIT_FAILURE,
    EXIT_USAGE,
    EXIT_NOT_FOUND,
    texts={
        EXIT_FAILURE: "the ledger or Pub/Sub could not be reached, or (cancel) too late: the "
        "request was sent, or is being sent",
        EXIT_NOT_FOUND: "cancel: the service has no such scheduled request",
    },
)


def _iso(epoch_s: float) -> str:
    from worker.formats.result import format_timestamp

    return str(format_timestamp(datetime.fromtimestamp(epoch_s, UTC)))


def _due_before(value: str | None) -> float | None:
    if value is None:
        return None
    from worker.formats.rejection import RequestRejected
    from worker.formats.send_at import parse_send_at

    try:
        moment = parse_send_at(value)
    except RequestRejected:
        fail(f"--due-before {value!r} is not an RFC 3339 date-time with an offset", EXIT_USAGE)
    assert moment is not None
    return moment.timestamp()


@click.group(epilog=_EPILOG)
def schedule() -> None:
    """Requests kept until their send_at: list them, cancel one."""


@schedule.command("list", epilog=_EPILOG)
@click.argument("service_id")
@click.option(
    "--due-before", metavar="TIME", help="Only those due before TIME (RFC 3339, with offset)."
)
@click.option("--limit", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per line.")
def list_(service_id: str, due_before: str | None, limit: int, as_json: bool) -> None:
    """List SERVICE_ID's scheduled requests still to send, earliest first."""
    settings, _ = load_settings()
    before = _due_before(due_before)
    from worker.ledger import LedgerUnavailable
    from worker.ledger.schedule_stores import schedules_of

    ledger = open_for_lookup(settings)
    try:
        with ledger:
            found = schedules_of(ledger).scheduled(service_id, due_before=before, limit=limit)
    except LedgerUnavailable as error:
        fail(str(error))
    for item in found:
        if as_json:
            click.echo(json.dumps(_listed(item)))
        else:
            click.echo(f"{_iso(item.due_at)}  {item.key.request_id}")
    if not as_json:
        click.echo(f"{len(found)} scheduled request(s) of service {service_id}", err=True)


def _listed(item: Schedule) -> dict[str, Any]:
    return {
        "service_id": item.key.service_id,
        "request_id": item.key.request_id,
        "send_at": _iso(item.due_at),
        "scheduled_at": _iso(item.created_at),
    }


@schedule.command("cancel", epilog=_EPILOG)
@click.argument("service_id")
@click.argument("request_id")
def cancel(service_id: str, request_id: str) -> None:
    """Cancel SERVICE_ID's scheduled request REQUEST_ID, unless it is sent or being sent.

    The service gets the request's final result, status cancelled, on the results topic.
    """
    settings, project = load_settings()
    from worker.ledger import LedgerKey, LedgerUnavailable
    from worker.ledger.schedule_stores import schedules_of
    from worker.ledger.schedules import CancelAnswer

    ledger = open_for_lookup(settings)
    try:
        with ledger:
            answer, stored = schedules_of(ledger).cancel(LedgerKey(service_id, request_id))
    except LedgerUnavailable as error:
        fail(str(error))
    if answer is CancelAnswer.NOT_FOUND:
        fail(f"service {service_id!r} has no scheduled request {request_id!r}", EXIT_NOT_FOUND)
    if answer is CancelAnswer.TOO_LATE:
        fail(f"too late: request {request_id!r} was sent, or is being sent; see `status`")
    assert stored is not None
    _publish_cancelled(settings, project, stored)
    click.echo(f"cancelled request {request_id} of service {service_id}")


def _publish_cancelled(settings: Settings, project: str, stored: Schedule) -> None:
    """The request's final result, for its service: cancelled."""
    from worker.client.pubsub_rpc import new_publisher
    from worker.formats.result import EmailResult, ErrorCode

    result = EmailResult.for_error(
        ErrorCode.CANCELLED,
        "the scheduled request was cancelled by an operator; nothing was sent",
        request_id=stored.key.request_id,
        service_id=stored.key.service_id,
        pubsub_message_id=stored.message_id,
    )
    timeout_s = common.rpc_timeout_s(settings)
    topic = f"projects/{project}/topics/{settings.topics.results_topic}"
    with common.pubsub_errors("publishing the cancelled result (the request stays cancelled)"):
        publisher = new_publisher(timeout_s)
        publisher.publish(topic, result.to_json_bytes(), **result.pubsub_attributes()).result(
            timeout=timeout_s
        )
