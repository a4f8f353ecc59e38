"""``email-worker dlq``: list, show, replay, purge and export dead letters."""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from worker.ops.commands.common import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    exit_codes_epilog,
    fail,
    load_settings,
    pubsub_errors,
    rpc_timeout_s,
    stderr_console,
    stdout_console,
)

if TYPE_CHECKING:
    from worker.formats.pubsub import Publish
    from worker.ops.dead_letters import DeadLetter, DeadLetterQueue

__all__ = ["dlq"]

_EPILOG = exit_codes_epilog(EXIT_OK, EXIT_FAILURE, EXIT_USAGE)
#: Replays and purges of at least this many dead letters show a progress bar.
PROGRESS_THRESHOLD = 10


def make_publish(publisher: Any) -> Publish:
    """The publish function replay uses (a seam for tests that make publishes fail)."""

    def publish(topic: str, data: bytes, attributes: Any) -> Any:
        return publisher.publish(topic, data, **attributes)

    return publish


@click.group(epilog=_EPILOG)
def dlq() -> None:
    """Inspect, replay and purge dead letters.

    Works on EMAIL_WORKER_DEAD_LETTER_SUBSCRIPTION (default email-requests-dead-letter-ops).
    Replays go to EMAIL_WORKER_REPLAY_TOPIC (default email-replays) with per-service
    tenancy, the default; to EMAIL_WORKER_REQUESTS_TOPIC with EMAIL_WORKER_TENANCY=shared.
    IDs are the dead letters' Pub/Sub message ids, as `dlq list` shows them. Looking (list,
    show, export, replay --dry-run) consumes nothing.
    """


@contextmanager
def _open_queue(*, for_replay: bool = False) -> Iterator[DeadLetterQueue]:
    settings, project = load_settings()
    from worker.client.pubsub_rpc import new_publisher, new_subscriber
    from worker.ops.dead_letters import DeadLetterQueue

    subscription = f"projects/{project}/subscriptions/{settings.dead_letter_subscription}"
    timeout_s = rpc_timeout_s(settings)
    with pubsub_errors(
        f"reading {subscription}",
        not_found=f"subscription {subscription} does not exist (set "
        "EMAIL_WORKER_DEAD_LETTER_SUBSCRIPTION, or create it with `email-worker setup`)",
    ):
        subscriber = new_subscriber()
        publisher = new_publisher(settings.publish_timeout_s) if for_replay else None
        try:
            queue = DeadLetterQueue(
                subscriber,
                subscription,
                publish=make_publish(publisher) if publisher is not None else None,
                # Per-service tenancy: operators may publish only to the replay topic, and
                # the worker sends a replay only if it is a request a service published.
                requests_topic=f"projects/{project}/topics/"
                f"{settings.replay_topic if settings.per_service else settings.requests_topic}",
                rpc_timeout_s=timeout_s,
                publish_timeout_s=settings.publish_timeout_s,
            )
            queue.check()
            yield queue
        finally:
            if publisher is not None:
                publisher.stop()
            subscriber.close()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 60:
        return f"{int(seconds)}s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    return f"{hours // 24}d"


def _table(dead_letters: list[DeadLetter], title: str) -> Any:
    from rich.table import Table

    now = _now()
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
            _age(dead_letter.age_s(now)),
        )
    return table


@dlq.command("list", epilog=_EPILOG)
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="Show at most this many (0: all).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def list_(limit: int, as_json: bool) -> None:
    """List dead letters: id, request, service, reason and age. Consumes nothing."""
    with _open_queue() as queue:
        dead_letters = queue.peek(limit or None)
    if as_json:
        now = _now()
        click.echo(json.dumps([d.summary(now) for d in dead_letters], ensure_ascii=False))
        return
    if not dead_letters:
        click.echo(f"No dead letters in {queue.subscription}.")
        return
    stdout_console().print(_table(dead_letters, f"Dead letters in {queue.subscription}"))
    if limit and len(dead_letters) >= limit:
        click.echo(f"Showing the first {limit}; --limit 0 lists all.", err=True)


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


@dlq.command(epilog=_EPILOG)
@click.argument("message_id")
@click.option("--full", is_flag=True, help="Include bodies, attachments and raw messages.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def show(message_id: str, full: bool, as_json: bool) -> None:
    """Show one dead letter (by message id) with its reason, attributes and request."""
    with _open_queue() as queue:
        found = queue.find({message_id})
    if message_id not in found:
        fail(f"no dead letter with message id {message_id} in {queue.subscription}")
    dead_letter = found[message_id]
    record = dead_letter.summary(_now())
    record["reason"] = dead_letter.reason
    record["attributes"] = dict(dead_letter.attributes)
    request = dead_letter.request
    if request is not None:
        record["request"] = request if full else _elide(request)
    elif full:
        record["data"] = dead_letter.data.decode("utf-8", "replace")
    else:
        record["data"] = f"<{len(dead_letter.data)} bytes, not a JSON object; --full shows them>"
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


def _selection(message_ids: tuple[str, ...], all_: bool) -> None:
    if all_ and message_ids:
        fail("give message ids or --all, not both", EXIT_USAGE)
    if not all_ and not message_ids:
        fail("give the message ids to act on, or --all", EXIT_USAGE)


@contextmanager
def _progress(total: int, label: str) -> Iterator[Callable[[int], None]]:
    from rich.progress import Progress

    with Progress(console=stderr_console(), disable=total < PROGRESS_THRESHOLD) as progress:
        task = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task, n)


def _listed(ids: list[str], limit: int = 20) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


@dlq.command(epilog=_EPILOG)
@click.argument("message_ids", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Every dead letter present now.")
@click.option("--dry-run", is_flag=True, help="Show what would be replayed; change nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def replay(message_ids: tuple[str, ...], all_: bool, dry_run: bool, yes: bool) -> None:
    """Republish dead letters to the replay topic, then remove them.

    With per-service tenancy (the default) they go to the replay topic
    (EMAIL_WORKER_REPLAY_TOPIC), and the worker sends one only if its request ledger holds
    that very request from that service: a replay cannot send anything a service did not
    publish. With EMAIL_WORKER_TENANCY=shared they go to EMAIL_WORKER_REQUESTS_TOPIC.

    The original data and attributes are republished (without the dead-letter reasons),
    with email_worker_replay_count incremented. A dead letter is removed only after Pub/Sub
    confirmed its republication; if a publish fails the replay stops and everything not
    replayed stays dead-lettered. Fix the cause first, or the requests fail again.
    """
    _selection(message_ids, all_)
    with _open_queue(for_replay=not dry_run) as queue:
        ids = queue.message_ids() if all_ else list(dict.fromkeys(message_ids))
        if not ids:
            click.echo(f"No dead letters in {queue.subscription}; nothing to replay.")
            return
        if dry_run:
            found = queue.find(ids)
            present = [found[i] for i in ids if i in found]
            if present:
                title = f"Would replay {len(present)} to {queue.requests_topic}"
                stdout_console().print(_table(present, title))
            missing = [i for i in ids if i not in found]
            if missing:
                fail(f"not found: {_listed(missing)}")
            return
        if not yes:
            click.confirm(
                f"Replay {len(ids)} dead letter(s) from {queue.subscription} to "
                f"{queue.requests_topic}?",
                abort=True,
                err=True,
            )
        with _progress(len(ids), "Replaying") as advance:
            report = queue.replay(ids, on_progress=advance)
    click.echo(f"Replayed {len(report.replayed)} dead letter(s) to {queue.requests_topic}.")
    problems = []
    if report.failed:
        first = next(iter(report.failed.values()))
        problems.append(
            f"{len(report.failed)} could not be republished and stay dead-lettered "
            f"({_listed(list(report.failed))}): {first}"
        )
    if report.skipped:
        problems.append(
            f"{len(report.skipped)} not attempted after that failure, still dead-lettered: "
            f"{_listed(report.skipped)}"
        )
    if report.not_removed:
        problems.append(
            f"{len(report.not_removed)} were republished but could not be removed; do NOT "
            f"replay them again, purge them: {_listed(list(report.not_removed))}"
        )
    if report.not_found:
        problems.append(f"not found: {_listed(report.not_found)}")
    if problems:
        fail("; ".join(problems))


@dlq.command(epilog=_EPILOG)
@click.argument("message_ids", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Every dead letter present now.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def purge(message_ids: tuple[str, ...], all_: bool, yes: bool) -> None:
    """Delete dead letters for good (consider `dlq export` first)."""
    _selection(message_ids, all_)
    with _open_queue() as queue:
        ids = queue.message_ids() if all_ else list(dict.fromkeys(message_ids))
        if not ids:
            click.echo(f"No dead letters in {queue.subscription}; nothing to purge.")
            return
        if not yes:
            click.confirm(
                f"Delete {len(ids)} dead letter(s) from {queue.subscription} for good?",
                abort=True,
                err=True,
            )
        with _progress(len(ids), "Purging") as advance:
            report = queue.purge(ids, on_progress=advance)
    click.echo(f"Purged {len(report.purged)} dead letter(s) from {queue.subscription}.")
    problems = []
    if report.failed:
        first = next(iter(report.failed.values()))
        problems.append(
            f"{len(report.failed)} could not be removed ({_listed(list(report.failed))}): {first}"
        )
    if report.skipped:
        problems.append(f"{len(report.skipped)} not attempted: {_listed(report.skipped)}")
    if report.not_found:
        problems.append(f"not found: {_listed(report.not_found)}")
    if problems:
        fail("; ".join(problems))


@dlq.command(epilog=_EPILOG)
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
def export(file: str) -> None:
    """Write every dead letter to FILE as JSON lines ('-' for stdout). Consumes nothing.

    One object per line: message_id, publish_time, attributes, data_base64 (the exact data),
    request (the data as JSON, or null) and the reason fields of `dlq list --json`.
    """
    count = 0
    # Atomic: an interrupted export leaves no partial file behind.
    with (
        _open_queue() as queue,
        click.open_file(file, "w", encoding="utf-8", atomic=file != "-") as out,
    ):

        def write(dead_letter: DeadLetter) -> None:
            nonlocal count
            out.write(json.dumps(dead_letter.export_record(), ensure_ascii=False) + "\n")
            count += 1

        queue.scan(write)
    target = "stdout" if file == "-" else file
    click.echo(f"Exported {count} dead letter(s) from {queue.subscription} to {target}.", err=True)
