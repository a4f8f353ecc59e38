"""Which dead letters an operator means: by message id, service, request id and error code.

The criteria given combine with AND. Selecting reads the dead-letter subscription without
consuming anything (:meth:`DeadLetterQueue.scan`); a replay or purge then acts on the
message ids selected, so it works on the dead letters present when it started.

Also here: whether the request ledger vouches for replaying a dead letter, by the worker's
own rule (:func:`worker.ledger.replay_verdict`), and a time-bounded search for one
request's dead letters (for ``email-worker status``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from worker.ledger import Ledger, LedgerKey, ReplayVerdict, replay_verdict
from worker.ops.dead_letter_queue import DeadLetterQueue
from worker.ops.dead_letters import DeadLetter, publish_order

__all__ = [
    "RequestSearch",
    "Selection",
    "find_request",
    "select",
    "unvouched_replays",
]


@dataclass(frozen=True)
class Selection:
    """What to select; an empty selection matches every dead letter."""

    message_ids: frozenset[str] = frozenset()
    service_id: str | None = None
    request_id: str | None = None
    error_code: str | None = None

    @property
    def filtered(self) -> bool:
        """Whether a filter other than message ids is given."""
        return any((self.service_id, self.request_id, self.error_code))

    @property
    def empty(self) -> bool:
        return not (self.message_ids or self.filtered)

    def matches(self, dead_letter: DeadLetter) -> bool:
        return (
            (not self.message_ids or dead_letter.message_id in self.message_ids)
            and (self.service_id is None or dead_letter.service_id == self.service_id)
            and (self.request_id is None or dead_letter.request_id == self.request_id)
            and (self.error_code is None or dead_letter.error_code == self.error_code)
        )

    def describe(self) -> str:
        """The filters, for people: "service billing, request id r-1, error code x"."""
        parts = []
        if self.message_ids:
            parts.append("message id " + ", ".join(sorted(self.message_ids)))
        if self.service_id is not None:
            parts.append(f"service {self.service_id}")
        if self.request_id is not None:
            parts.append(f"request id {self.request_id}")
        if self.error_code is not None:
            parts.append(f"error code {self.error_code}")
        return ", ".join(parts) or "everything"


def select(
    queue: DeadLetterQueue, selection: Selection, *, limit: int | None = None
) -> list[DeadLetter]:
    """The dead letters ``selection`` matches (at most ``limit``), oldest first; consumes
    nothing. Reads the whole subscription when filters are given."""
    if not selection.filtered and not selection.message_ids:
        return queue.peek(limit)
    if not selection.filtered:
        found = list(queue.find(selection.message_ids).values())
    else:
        found = []
        queue.scan(lambda d: found.append(d) if selection.matches(d) else None)
    found.sort(key=publish_order)
    return found[:limit] if limit else found


def unvouched_replays(
    dead_letters: Iterable[DeadLetter], ledger: Ledger, *, retention_days: float
) -> dict[str, str]:
    """Message id -> why the worker would refuse a replay of it, for each dead letter the
    ledger does not vouch for. Raises LedgerUnavailable if the ledger cannot be read."""
    refused: dict[str, str] = {}
    for dead_letter in dead_letters:
        service_id, request_id = dead_letter.service_id, dead_letter.request_id
        if not service_id or not request_id:
            refused[dead_letter.message_id] = "it names no service and request id"
            continue
        record = ledger.get(LedgerKey(service_id, request_id))
        verdict = replay_verdict(record, dead_letter.data)
        if verdict is ReplayVerdict.NO_RECORD:
            refused[dead_letter.message_id] = (
                "the ledger has no record of it (refused before it was recorded, or past "
                f"the ledger's retention of {retention_days:g} days?)"
            )
        elif verdict is ReplayVerdict.OTHER_CONTENT:
            refused[dead_letter.message_id] = (
                "the ledger's record of that request id is of other content"
            )
    return refused


class _Enough(Exception):
    """Ends a search early (raised from inside a scan, which then releases everything)."""


@dataclass
class RequestSearch:
    """One request's dead letters, as far as a search got."""

    message_ids: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    """Each one's reason (`DeadLetter.reason`), in the order of ``message_ids``."""
    complete: bool = False
    """Whether every dead letter was looked at (else the time ran out first)."""


def find_request(
    queue: DeadLetterQueue, service_id: str, request_id: str, *, budget_s: float
) -> RequestSearch:
    """The dead letters of one request, looking for at most about ``budget_s`` seconds (a
    pull may take the queue's pull wait longer); consumes nothing."""
    selection = Selection(service_id=service_id, request_id=request_id)
    search = RequestSearch()
    deadline = time.monotonic() + budget_s

    def visit(dead_letter: DeadLetter) -> None:
        if selection.matches(dead_letter):
            search.message_ids.append(dead_letter.message_id)
            search.reasons.append(dead_letter.reason)
        if time.monotonic() > deadline:
            raise _Enough

    try:
        queue.scan(visit)
    except _Enough:
        return search
    search.complete = True
    return search
