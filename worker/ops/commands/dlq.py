"""``email-worker dlq``: list, show, replay, purge and export dead letters.

Each command selects by message id and by ``--service``, ``--request-id`` and ``--code``
(`worker.ops.selection`); how dead letters are shown is in `dlq_views`, the queue and the
selection options the commands share in `dlq_queue`, and replay's ledger check and the reports
of replays and purges that stop part-way in `dlq_replays`. A replay through the replay topic is
checked against the request ledger first, by the worker's own rule.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from worker.ops.commands import common
from worker.ops.commands import dlq_views as views
from worker.ops.commands.common import EXIT_USAGE, fail, load_settings, stdout_console
from worker.ops.commands.dlq_queue import (
    confirm,
    fail_no_match,
    make_publish,
    not_found,
    open_queue,
    require_selection,
    selecting,
)
from worker.ops.commands.dlq_replays import (
    refused_replays,
    replay_confirmed,
    replay_problems,
    unfinished,
)

if TYPE_CHECKING:
    from worker.ops.dead_letters import DeadLetter
    from worker.ops.selection import Selection

__all__ = ["dlq", "make_publish"]

_NO_MATCH = "no dead letter matches the message ids or filters given"
_USAGE = "invalid settings or options, or nothing selected (no message id, filter or --all)"


def _epilog(ok: str, failure: str, usage: str = _USAGE) -> str:
    return common.exit_codes_text(
        {common.EXIT_OK: ok, common.EXIT_FAILURE: failure, EXIT_USAGE: usage}
    )


@click.group(
    epilog=_epilog(
        "success",
        "Pub/Sub unreachable, the subscription missing, nothing matching, or a replay or "
        "purge not completed",
        "invalid settings or options",
    )
)
def dlq() -> None:
    """Inspect, replay and purge dead letters.

    Works on EMAIL_WORKER_DEAD_LETTER_SUBSCRIPTION (default email-requests-dead-letter-ops).
    Replays go to EMAIL_WORKER_REPLAY_TOPIC (default email-replays) with per-service
    tenancy, the default; to EMAIL_WORKER_REQUESTS_TOPIC with EMAIL_WORKER_TENANCY=shared.
    Select dead letters by their Pub/Sub message ids, as `dlq list` shows them, and/or by
    --service, --request-id and --code (the error code); what is given combines with AND.
    Looking (list, show, export, replay --dry-run) consumes nothing.
    """


@dlq.command(
    "list",
    epilog=_epilog(
        "success (also when the subscription is empty and no filter is given)",
        "Pub/Sub unreachable, the subscription missing, or no dead letter matching the filters",
        "invalid settings or options",
    ),
)
@selecting(by_message_id=False)
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="Show at most this many (0: all).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def list_(selection: Selection, limit: int, as_json: bool) -> None:
    """List dead letters: id, request, service, reason and age. Consumes nothing."""
    from worker.ops.selection import select

    settings, _ = load_settings()
    with open_queue(settings) as queue:
        dead_letters = select(queue, selection, limit=limit or None)
    if as_json:
        moment = views.now()
        click.echo(
            json.dumps([views.summary_record(d, moment) for d in dead_letters], ensure_ascii=False)
        )
    elif dead_letters:
        title = f"Dead letters in {queue.subscription}"
        if selection.filtered:
            title += f" with {selection.describe()}"
        stdout_console().print(views.dead_letter_table(dead_letters, title))
        if limit and len(dead_letters) >= limit:
            click.echo(f"Showing the first {limit}; --limit 0 lists all.", err=True)
    elif not selection.filtered:
        click.echo(f"No dead letters in {queue.subscription}.")
    if selection.filtered and not dead_letters:
        fail_no_match(selection, queue)


@dlq.command(
    epilog=_epilog("success", f"Pub/Sub unreachable, the subscription missing, or {_NO_MATCH}")
)
@selecting(by_message_id=True)
@click.option("--full", is_flag=True, help="Include bodies, attachments and raw messages.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per dead letter and line.")
def show(selection: Selection, full: bool, as_json: bool) -> None:
    """Show dead letters with their reason, attributes and request.

    Select them by MESSAGE_IDS and/or the filters, for example
    `dlq show --service billing --request-id order-7`. Bodies and attachments are elided
    unless --full.
    """
    from worker.ops.selection import select

    if selection.empty:
        fail("give the message ids to show, or --service, --request-id or --code", EXIT_USAGE)
    settings, _ = load_settings()
    with open_queue(settings) as queue:
        found = select(queue, selection)
    if not found:
        fail_no_match(selection, queue)
    for index, dead_letter in enumerate(found):
        if index and not as_json:
            click.echo()
        views.print_shown(views.shown_record(dead_letter, full=full), as_json=as_json)
    missing = not_found(selection, found)
    if missing:
        fail(f"not found: {views.listed(missing)}")


_REPLAY_FAILURE = (
    "Pub/Sub unreachable, the subscription missing, the ledger unreadable, "
    f"{_NO_MATCH}, a dead letter the request ledger cannot vouch for (not replayed), or a "
    "replay not completed"
)


@dlq.command(epilog=_epilog("every selected dead letter replayed (or would be)", _REPLAY_FAILURE))
@selecting(by_message_id=True)
@click.option("--all", "all_", is_flag=True, help="Every dead letter present now.")
@click.option("--dry-run", is_flag=True, help="Show what would be replayed; change nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def replay(selection: Selection, all_: bool, dry_run: bool, yes: bool) -> None:
    """Republish dead letters to the replay topic, then remove them.

    Select them by MESSAGE_IDS and/or the filters, or --all.

    With per-service tenancy (the default) they go to the replay topic
    (EMAIL_WORKER_REPLAY_TOPIC), and the worker sends one only if its request ledger holds
    that very request from that service: a replay cannot send anything a service did not
    publish. This command checks
    that first, in EMAIL_WORKER_LEDGER, and does not publish (--dry-run included) what the
    ledger cannot vouch for: a request refused before it was recorded, or past the ledger's
    retention (EMAIL_WORKER_LEDGER_RETENTION_S). With EMAIL_WORKER_TENANCY=shared they go
    to EMAIL_WORKER_REQUESTS_TOPIC.

    The original data and attributes are republished (without the dead-letter reasons),
    with email_worker_replay_count incremented. A dead letter is removed only after Pub/Sub
    confirmed its republication; if a publish fails the replay stops and everything not
    replayed stays dead-lettered. Fix the cause first, or the requests fail again.
    """
    from worker.ops.selection import select

    require_selection(selection, all_, "replay")
    settings, _ = load_settings()
    with open_queue(settings, for_replay=not dry_run) as queue:
        found = select(queue, selection)
        if not found and not selection.empty:
            fail_no_match(selection, queue)
        if not found:
            click.echo(f"No dead letters in {queue.subscription}; nothing to replay.")
            return
        refused = refused_replays(settings, found)
        to_replay = [d for d in found if d.message_id not in refused]
        if dry_run:
            if to_replay:
                title = f"Would replay {len(to_replay)} to {queue.requests_topic}"
                stdout_console().print(views.dead_letter_table(to_replay, title))
            report = None
        else:
            report = replay_confirmed(queue, [d.message_id for d in to_replay], yes=yes)
    problems = replay_problems(report) if report is not None else []
    missing = not_found(selection, found)
    if missing:
        problems.append(f"not found: {views.listed(missing)}")
    if refused:
        problems.append(f"{len(refused)} not replayed: the ledger cannot vouch for them")
    if problems:
        fail("; ".join(problems))


@dlq.command(
    epilog=_epilog(
        "every selected dead letter purged",
        f"Pub/Sub unreachable, the subscription missing, {_NO_MATCH}, or a purge not completed",
    )
)
@selecting(by_message_id=True)
@click.option("--all", "all_", is_flag=True, help="Every dead letter present now.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def purge(selection: Selection, all_: bool, yes: bool) -> None:
    """Delete dead letters for good (consider `dlq export` first).

    Select them by MESSAGE_IDS and/or the filters, or --all.
    """
    from worker.ops.selection import select

    require_selection(selection, all_, "purge")
    settings, _ = load_settings()
    with open_queue(settings) as queue:
        if selection.filtered:
            ids = [d.message_id for d in select(queue, selection)]
            if not ids:
                fail_no_match(selection, queue)
        else:
            ids = queue.message_ids() if all_ else sorted(selection.message_ids)
        if not ids:
            click.echo(f"No dead letters in {queue.subscription}; nothing to purge.")
            return
        confirm(f"Delete {len(ids)} dead letter(s) from {queue.subscription} for good?", yes=yes)
        with views.progress(len(ids), "Purging") as advance:
            report = queue.purge(ids, on_progress=advance)
    click.echo(f"Purged {len(report.purged)} dead letter(s) from {queue.subscription}.")
    problems = unfinished(report.failed, "could not be removed", report.skipped, "not attempted")
    missing = sorted({*report.not_found, *(selection.message_ids - set(ids))})
    if missing:
        problems.append(f"not found: {views.listed(missing)}")
    if problems:
        fail("; ".join(problems))


@dlq.command(
    epilog=_epilog(
        "success",
        "Pub/Sub unreachable, the subscription missing, or no dead letter matching the "
        "filters (FILE is then written empty)",
        "invalid settings or options",
    )
)
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@selecting(by_message_id=False)
def export(file: str, selection: Selection) -> None:
    """Write every dead letter (or those matching the filters) to FILE as JSON lines ('-'
    for stdout). Consumes nothing.

    One object per line: message_id, publish_time, attributes, data_base64 (the exact data),
    request (the data as JSON, or null) and the reason fields of `dlq list --json`. On a
    terminal a running count shows on stderr; a summary line ends the export.
    """
    settings, _ = load_settings()
    count = seen = 0
    # Atomic: an interrupted export leaves no partial file behind.
    with (
        open_queue(settings) as queue,
        click.open_file(file, "w", encoding="utf-8", atomic=file != "-") as out,
        views.counting_progress("Exporting") as advance,
    ):

        def write(dead_letter: DeadLetter) -> None:
            nonlocal count, seen
            seen += 1
            if selection.matches(dead_letter):
                out.write(json.dumps(views.export_record(dead_letter), ensure_ascii=False) + "\n")
                count += 1
                advance()

        queue.scan(write)
    target = "stdout" if file == "-" else file
    of_seen = f" of {seen}" if selection.filtered else ""
    click.echo(
        f"Exported {count}{of_seen} dead letter(s) from {queue.subscription} to {target}.",
        err=True,
    )
    if selection.filtered and not count:
        fail_no_match(selection, queue)
