"""How ``email-worker dlq`` shows dead letters: the list table, the JSON records of ``list``,
``show`` and ``export``, one dead letter in full, and the progress of long operations. Bodies
and attachments are elided unless asked for."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from worker.formats.pubsub import FAILED_AT_ATTRIBUTE
from worker.formats.result import format_timestamp
from worker.ops.commands.common import short_duration, stderr_console, stdout_console

if TYPE_CHECKING:
    from worker.ops.dead_letters import DeadLetter

__all__ = [
    "PROGRESS_THRESHOLD",
    "counting_progress",
    "dead_letter_table",
    "export_record",
    "listed",
    "now",
    "print_shown",
    "progress",
    "shown_record",
    "summary_record",
]

#: Replays and purges of at least this many dead letters show a progress bar.
PROGRESS_THRESHOLD = 10


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _age(seconds: float | None) -> str:
    return "?" if seconds is None else short_duration(seconds)


def dead_letter_table(dead_letters: list[DeadLetter], title: str) -> Any:
    from rich.table import Table

    moment = now()
    table = Table(title=title, title_justify="left")
    table.add_column("Message ID", no_wrap=True, overflow="fold")
    table.add_column("Request ID", overflow="fold")
    table.add_column("Service", overflow="fold")
    table.add_column("Reason", overflow="fold", ratio=1)
    table.add_column("Age", justify="right", no_wrap=True)
    for dead_letter in dead_letters:
        reason = dead_letter.reason
        if dead_letter.replay_count:
            reason += f" (replayed {dead_letter.replay_count}x)"
        table.add_row(
            dead_letter.message_id,
            dead_letter.request_id or "-",
            dead_letter.service_id or "-",
            reason,
            _age(dead_letter.age_s(moment)),
        )
    return table


def _elide(document: dict[str, Any]) -> dict[str, Any]:
    """A copy with bodies, attachment contents and raw messages replaced by their sizes."""
    shown = copy.deepcopy(document)
    for name in ("text", "html"):
        if isinstance(shown.get(name), str):
            shown[name] = f"<{len(shown[name])} characters; --full shows them>"
    if isinstance(shown.get("raw"), str):
        shown["raw"] = f"<{len(shown['raw'])} base64 characters; --full shows them>"
    attachments = shown.get("attachments")
    if isinstance(attachments, list):
        for attachment in attachments:
            if isinstance(attachment, dict) and isinstance(attachment.get("content_base64"), str):
                size = len(attachment["content_base64"]) * 3 // 4
                attachment["content_base64"] = f"<about {size} bytes; --full shows them>"
    return shown


def _rfc3339(moment: dt.datetime | None) -> str | None:
    return None if moment is None else format_timestamp(moment)


def _request_and_reason(dead_letter: DeadLetter) -> dict[str, Any]:
    return {
        "request_id": dead_letter.request_id,
        "service_id": dead_letter.service_id,
        "error_code": dead_letter.error_code,
        "error_message": dead_letter.error_message,
        "delivery_count": dead_letter.delivery_count,
        "replay_count": dead_letter.replay_count,
    }


def summary_record(dead_letter: DeadLetter, moment: dt.datetime) -> dict[str, Any]:
    """What ``dlq list --json`` prints for one dead letter, its age counted at ``moment``."""
    age = dead_letter.age_s(moment)
    return {
        "message_id": dead_letter.message_id,
        **_request_and_reason(dead_letter),
        "failed_at": dead_letter.attributes.get(FAILED_AT_ATTRIBUTE),
        "publish_time": _rfc3339(dead_letter.publish_time),
        "age_s": None if age is None else round(age, 3),
    }


def export_record(dead_letter: DeadLetter) -> dict[str, Any]:
    """What ``dlq export`` writes for one dead letter: everything, losslessly
    (``data_base64`` is the exact data)."""
    return {
        "message_id": dead_letter.message_id,
        "publish_time": _rfc3339(dead_letter.publish_time),
        "attributes": dict(dead_letter.attributes),
        "data_base64": base64.b64encode(dead_letter.data).decode("ascii"),
        "request": dead_letter.request,
        **_request_and_reason(dead_letter),
    }


def shown_record(dead_letter: DeadLetter, *, full: bool) -> dict[str, Any]:
    """What ``dlq show --json`` prints for one dead letter."""
    record = summary_record(dead_letter, now())
    record["reason"] = dead_letter.reason
    record["attributes"] = dict(dead_letter.attributes)
    request = dead_letter.request
    if request is not None:
        record["request"] = request if full else _elide(request)
    elif full:
        record["data"] = dead_letter.data.decode("utf-8", "replace")
    else:
        record["data"] = f"<{len(dead_letter.data)} bytes, not a JSON object; --full shows them>"
    return record


def print_shown(record: dict[str, Any], *, as_json: bool) -> None:
    """Print a :func:`shown_record`: one JSON line, or a grid, its attributes and request."""
    if as_json:
        click.echo(json.dumps(record, ensure_ascii=False))
        return
    from rich.json import JSON
    from rich.table import Table

    console = stdout_console()
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for label, key in (
        ("Message ID", "message_id"),
        ("Request ID", "request_id"),
        ("Service", "service_id"),
        ("Reason", "reason"),
        ("Failed at", "failed_at"),
        ("Dead-lettered at", "publish_time"),
        ("Age", "age_s"),
        ("Replays", "replay_count"),
    ):
        value = record[key]
        if key == "age_s":
            value = _age(value)
        grid.add_row(label, "-" if value is None else str(value))
    console.print(grid)
    console.print("[bold]Attributes[/bold]")
    console.print(JSON.from_data(record["attributes"], sort_keys=True))
    if "request" in record:
        console.print("[bold]Request[/bold]")
        console.print(JSON.from_data(record["request"]))
    else:
        console.print("[bold]Data[/bold]")
        console.print(record["data"], markup=False)


@contextmanager
def progress(total: int, label: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr for ``total`` items (none below PROGRESS_THRESHOLD)."""
    from rich.progress import Progress

    with Progress(console=stderr_console(), disable=total < PROGRESS_THRESHOLD) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


@contextmanager
def counting_progress(label: str) -> Iterator[Callable[[], None]]:
    """A running count on stderr when it is a terminal (nothing otherwise)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = stderr_console()
    with Progress(
        SpinnerColumn(),
        TextColumn(label),
        TextColumn("{task.completed} dead letter(s)"),
        TimeElapsedColumn(),
        console=console,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task(label, total=None)
        yield lambda: bar.advance(task, 1)


def listed(ids: list[str], limit: int = 20) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")
