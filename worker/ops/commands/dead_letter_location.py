"""Where a request lies among the operators' dead letters, for ``email-worker status``.

Found by reading the dead-letter subscription without consuming anything
(`worker.ops.selection.find_request`), for a bounded time; when that cannot be done, the
``dlq show`` command that looks is given instead. Nothing here prints addresses: the
reasons have them replaced.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from worker.config.settings import Settings, SettingsError

__all__ = ["DeadLetterLocation", "locate_dead_letter", "without_addresses"]

_ADDRESS = re.compile(r"\S+@\S+")


def without_addresses(text: str) -> str:
    """``text`` with whatever looks like an email address replaced: SES's error messages
    quote the addresses they refused."""
    return _ADDRESS.sub("<address>", text)


@dataclass
class DeadLetterLocation:
    """Where a failed request lies among the operators' dead letters, and how to act on it."""

    subscription: str
    show_command: str
    replay_command: str
    message_ids: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)  # addresses replaced
    searched: str = "no"  # "complete", "partial" (time ran out) or "no"
    # False when the worker would refuse the replay: per-service tenancy, no ledger record.
    replayable: bool = True
    detail: str | None = None  # why not searched

    def as_json(self) -> dict[str, Any]:
        return {
            "subscription": self.subscription,
            "message_ids": self.message_ids,
            "reasons": self.reasons,
            "searched": self.searched,
            "detail": self.detail,
            "show_command": self.show_command,
            "replay_command": self.replay_command if self.replayable else None,
        }

    def lines(self, *, with_reasons: bool = False) -> list[str]:
        if self.message_ids and with_reasons:
            where = [
                f"Dead letter: {message_id} in {self.subscription}: {reason}"
                for message_id, reason in zip(self.message_ids, self.reasons, strict=True)
            ]
        elif self.message_ids:
            where = [f"Dead letter: {', '.join(self.message_ids)} in {self.subscription}"]
        elif self.searched == "complete":
            return [
                f"Dead letters: none of this request in {self.subscription} (replayed, "
                "purged, expired, or never dead-lettered)"
            ]
        elif self.searched == "partial":
            where = [
                f"Dead letters: not found in the time given to {self.subscription}; "
                f"look with: {self.show_command}"
            ]
        else:
            where = [f"Dead letters: not searched ({self.detail}); look with: {self.show_command}"]
        if not self.replayable:
            return [
                *where,
                "It cannot be replayed: with per-service tenancy a replay needs the request "
                "ledger's record of it; the service must send it again",
            ]
        return [*where, f"Replay it with: {self.replay_command}"]


def locate_dead_letter(
    settings: Settings, service_id: str, request_id: str, budget_s: float
) -> DeadLetterLocation:
    """Look for the request among the operators' dead letters for about ``budget_s``
    seconds, consuming nothing; if that cannot be done, say why (never fails)."""
    selected = f"--service {shlex.quote(service_id)} --request-id {shlex.quote(request_id)}"
    location = DeadLetterLocation(
        subscription=settings.topics.dead_letter_subscription,
        show_command=f"email-worker dlq show {selected}",
        replay_command=f"email-worker dlq replay {selected}",
    )
    if budget_s <= 0:
        location.detail = "--dead-letter-search-s 0"
        return location
    try:
        project = settings.require_project()
    except SettingsError:
        location.detail = "GOOGLE_CLOUD_PROJECT is not set"
        return location
    location.subscription = (
        f"projects/{project}/subscriptions/{settings.topics.dead_letter_subscription}"
    )

    from worker.client.pubsub_rpc import describe_error, new_subscriber
    from worker.ops.dead_letter_queue import DeadLetterQueue
    from worker.ops.selection import find_request

    try:
        subscriber = new_subscriber()
        try:
            rpc_s = min(5.0, budget_s)
            queue = DeadLetterQueue(
                subscriber, location.subscription, rpc_timeout_s=rpc_s, pull_wait_s=min(1.0, rpc_s)
            )
            queue.check()
            search = find_request(queue, service_id, request_id, budget_s=budget_s)
        finally:
            subscriber.close()
    except Exception as error:  # Pub/Sub down, no credentials, no subscription...
        location.detail = f"cannot read {location.subscription}: {describe_error(error)}"
        return location
    location.message_ids = search.message_ids
    location.reasons = [without_addresses(reason) for reason in search.reasons]
    location.searched = "complete" if search.complete else "partial"
    return location
