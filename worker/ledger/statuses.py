"""What became of a request's email after SES accepted it: one status per recipient.

SES reports, per SES message and recipient, that it sent the email, delayed it, delivered it,
or that it bounced, was rejected or drew a complaint. Those reports arrive at least once and
in any order, so the ledger keeps, per (message id, recipient), the most advanced status by
:data:`RANK`, and among equally advanced ones the latest: a late "delay" never overwrites
"delivered" or "bounced", and a complaint (which follows a delivery) does overwrite it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

__all__ = ["RANK", "RecipientStatus", "advances"]

#: How far along each event type is; a status only moves to a higher rank, or to a later
#: event of the same rank.
RANK: dict[str, int] = {
    "send": 0,
    "delivery_delay": 1,
    "delivery": 2,
    "bounce": 2,
    "reject": 2,
    "complaint": 3,
}


@dataclass(frozen=True)
class RecipientStatus:
    """The latest word on one recipient of one SES message (times are UTC)."""

    message_id: str
    # Addresses are personal data; keep them out of reprs that end up in logs.
    recipient: str = field(repr=False)
    event_type: str
    occurred_at: datetime
    #: The message's recipient batch, when the request went out in several SES calls.
    batch: int | None = None
    #: Bounce, complaint or delay type and subtype, or the reject reason ("Permanent/General").
    detail: str | None = None


def advances(new_type: str, new_at: datetime, old_type: str, old_at: datetime) -> bool:
    """Whether an event of ``new_type`` at ``new_at`` replaces the stored one."""
    new_rank, old_rank = RANK[new_type], RANK[old_type]
    return new_rank > old_rank or (new_rank == old_rank and new_at > old_at)
