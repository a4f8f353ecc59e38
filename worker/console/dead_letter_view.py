"""The dead-letter pages' documents and actions: filter, confirm, replay and purge.

Selection reuses the operators' rules (`worker.ops.selection`): service and error code as
``dlq --service/--code``, plus age bounds. A replay or purge acts on the message ids the
confirmation page named, so it removes exactly what the operator confirmed; a replay first
asks the request ledger to vouch for each dead letter (`unvouched_replays`, the worker's own
rule for the replay topic) and publishes only those it vouches for.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from worker.console.advice import advice_for, meaning_of
from worker.console.sources import Sources
from worker.ops.commands.dead_letter_location import without_addresses
from worker.ops.dead_letters import DeadLetter
from worker.ops.selection import Selection, select, unvouched_replays

__all__ = [
    "Filters",
    "confirm_document",
    "list_document",
    "purge_selected",
    "replay_selected",
]

#: At most this many dead letters are listed on one page.
PAGE_LIMIT = 500

#: Told how many more of a selection a replay or purge has dealt with.
Progress = Callable[[int], None]


def _ignore(count: int) -> None:
    """No one to tell."""


@dataclass(frozen=True)
class Filters:
    """What the dead-letter page filters by (empty: everything)."""

    service_id: str | None = None
    error_code: str | None = None
    newer_than_h: float | None = None
    older_than_h: float | None = None
    message_ids: frozenset[str] = frozenset()

    @classmethod
    def from_query(cls, query: Mapping[str, str], message_ids: Collection[str] = ()) -> Filters:
        """From the page's query; a bound that is not a number is ignored."""
        return cls(
            service_id=query.get("service") or None,
            error_code=query.get("code") or None,
            newer_than_h=_hours(query.get("newer_than_h")),
            older_than_h=_hours(query.get("older_than_h")),
            message_ids=frozenset(i for i in message_ids if i),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "service": self.service_id,
            "code": self.error_code,
            "newer_than_h": self.newer_than_h,
            "older_than_h": self.older_than_h,
            "message_ids": sorted(self.message_ids),
        }

    def selected(self, sources: Sources, limit: int | None = None) -> list[DeadLetter]:
        """The dead letters these filters select, oldest first (consumes nothing)."""
        selection = Selection(self.message_ids, self.service_id, None, self.error_code)
        now = dt.datetime.now(dt.UTC)
        found = [d for d in select(sources.queue(), selection) if self._age_fits(d, now)]
        return found[:limit] if limit else found

    def _age_fits(self, dead_letter: DeadLetter, now: dt.datetime) -> bool:
        age_s = dead_letter.age_s(now)
        if age_s is None:
            return self.newer_than_h is None and self.older_than_h is None
        newer = self.newer_than_h is None or age_s <= self.newer_than_h * 3600
        return newer and (self.older_than_h is None or age_s >= self.older_than_h * 3600)


def _hours(raw: str | None) -> float | None:
    try:
        value = float(raw) if raw else None
    except ValueError:
        return None
    return value if value is not None and value >= 0 else None


def summary(dead_letter: DeadLetter, now: dt.datetime) -> dict[str, Any]:
    """One dead letter as the pages show it: never its bodies or attachments."""
    request = dead_letter.request or {}
    tags = request.get("tags")
    return {
        "message_id": dead_letter.message_id,
        "service_id": dead_letter.service_id,
        "request_id": dead_letter.request_id,
        "error_code": dead_letter.error_code,
        "reason": without_addresses(dead_letter.reason),
        "meaning": meaning_of(dead_letter.error_code),
        "advice": advice_for(dead_letter.error_code),
        "age_s": dead_letter.age_s(now),
        "replay_count": dead_letter.replay_count,
        "subject": _text(request.get("subject")),
        "from": _text(request.get("from")),
        "tags": {str(k): _text(v) for k, v in tags.items()} if isinstance(tags, dict) else {},
    }


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def list_document(sources: Sources, filters: Filters) -> dict[str, Any]:
    found = filters.selected(sources)
    now = dt.datetime.now(dt.UTC)
    return {
        "subscription": sources.subscription,
        "filters": filters.as_json(),
        "count": len(found),
        "shown": min(len(found), PAGE_LIMIT),
        "dead_letters": [summary(d, now) for d in found[:PAGE_LIMIT]],
    }


def confirm_document(sources: Sources, filters: Filters, action: str) -> dict[str, Any]:
    """What a replay or purge of the selection would do, for the confirmation page."""
    found = filters.selected(sources)
    refused = _refused(sources, found) if action == "replay" else {}
    acting = [d for d in found if d.message_id not in refused]
    target = sources.requests_topic if action == "replay" else sources.subscription
    now = dt.datetime.now(dt.UTC)
    return {
        "action": action,
        "target": target,
        "filters": filters.as_json(),
        "count": len(acting),
        "message_ids": [d.message_id for d in acting],
        "dead_letters": [summary(d, now) for d in acting[:PAGE_LIMIT]],
        "refused": refused,
    }


def _refused(sources: Sources, found: list[DeadLetter]) -> dict[str, str]:
    """Message id -> why not, for the dead letters the worker would refuse to replay."""
    if not sources.settings.services.per_service:
        return {}
    retention_days = sources.settings.ledger.retention_s / 86400
    return unvouched_replays(found, sources.ledger, retention_days=retention_days)


def replay_selected(
    sources: Sources, message_ids: Collection[str], on_progress: Progress = _ignore
) -> dict[str, Any]:
    """Replay exactly these dead letters, those the ledger vouches for; ``on_progress`` is
    told how many more have been dealt with as the replay goes."""
    queue = sources.queue()
    found = list(queue.find(message_ids).values())
    refused = _refused(sources, found)
    on_progress(len(refused) + len(set(message_ids)) - len(found))
    acting = [d.message_id for d in found if d.message_id not in refused]
    report = queue.replay(acting, on_progress=on_progress)
    return {
        "action": "replay",
        "target": sources.requests_topic,
        "done": report.replayed,
        "refused": refused,
        "failed": report.failed,
        "not_removed": report.not_removed,
        "skipped": report.skipped,
        "not_found": sorted(set(message_ids) - {d.message_id for d in found}),
    }


def purge_selected(
    sources: Sources, message_ids: Collection[str], on_progress: Progress = _ignore
) -> dict[str, Any]:
    """Delete exactly these dead letters (``on_progress`` as for a replay)."""
    report = sources.queue().purge(message_ids, on_progress=on_progress)
    return {
        "action": "purge",
        "target": sources.subscription,
        "done": report.purged,
        "refused": {},
        "failed": report.failed,
        "not_removed": {},
        "skipped": report.skipped,
        "not_found": report.not_found,
    }
