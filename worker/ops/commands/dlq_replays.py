"""``dlq replay``'s steps: the ledger's check of what may be replayed, the confirmed replay,
and the reports of replays and purges that stop part-way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from worker.ops.commands import dlq_views as views
from worker.ops.commands.common import fail
from worker.ops.commands.dlq_queue import confirm

if TYPE_CHECKING:
    from worker.config.settings import Settings
    from worker.ops.dead_letter_queue import DeadLetterQueue, ReplayReport
    from worker.ops.dead_letters import DeadLetter


def replay_confirmed(queue: DeadLetterQueue, ids: list[str], *, yes: bool) -> ReplayReport:
    """Replay ``ids`` once confirmed (or ``yes``); say how many were replayed."""
    from worker.ops.dead_letter_queue import ReplayReport

    report = ReplayReport()
    if ids:
        confirm(
            f"Replay {len(ids)} dead letter(s) from {queue.subscription} to "
            f"{queue.requests_topic}?",
            yes=yes,
        )
        with views.progress(len(ids), "Replaying") as advance:
            report = queue.replay(ids, on_progress=advance)
    click.echo(f"Replayed {len(report.replayed)} dead letter(s) to {queue.requests_topic}.")
    return report


def refused_replays(settings: Settings, found: list[DeadLetter]) -> dict[str, str]:
    """Message id -> reason, for each of ``found`` the worker would refuse to send, each
    also reported on stderr. Only per-service tenancy checks replays against the ledger:
    with shared tenancy the worker claims a request the ledger does not know afresh."""
    if not settings.services.per_service:
        return {}
    from google.auth.exceptions import GoogleAuthError

    from worker.ledger import LedgerUnavailable
    from worker.ops.commands.ledger import open_for_lookup
    from worker.ops.selection import unvouched_replays

    retention_days = settings.ledger.retention_s / 86400
    try:
        with open_for_lookup(settings) as ledger:
            refused = unvouched_replays(found, ledger, retention_days=retention_days)
    except LedgerUnavailable as error:
        fail(f"cannot check the request ledger, nothing replayed: {error}")
    except GoogleAuthError as error:
        fail(f"Google credentials were refused by the request ledger: {type(error).__name__}")
    for dead_letter in found:
        reason = refused.get(dead_letter.message_id)
        if reason is not None:
            which = f"{dead_letter.service_id or '?'}/{dead_letter.request_id or '?'}"
            click.echo(
                f"email-worker: {dead_letter.message_id} ({which}) cannot be replayed: {reason}",
                err=True,
            )
    return refused


def unfinished(
    failed: dict[str, str], failed_as: str, skipped: list[str], skipped_as: str
) -> list[str]:
    """The problems of a replay or purge that stopped: what failed (with the first error),
    and what was not attempted after."""
    problems = []
    if failed:
        first = next(iter(failed.values()))
        problems.append(f"{len(failed)} {failed_as} ({views.listed(list(failed))}): {first}")
    if skipped:
        problems.append(f"{len(skipped)} {skipped_as}: {views.listed(skipped)}")
    return problems


def replay_problems(report: ReplayReport) -> list[str]:
    problems = unfinished(
        report.failed,
        "could not be republished and stay dead-lettered",
        report.skipped,
        "not attempted after that failure, still dead-lettered",
    )
    if report.not_removed:
        problems.append(
            f"{len(report.not_removed)} were republished but could not be removed; do NOT "
            f"replay them again, purge them: {views.listed(list(report.not_removed))}"
        )
    if report.not_found:
        problems.append(f"not found: {views.listed(report.not_found)}")
    return problems
