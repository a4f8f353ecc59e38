"""Pause records: which services' sending operators have stopped (``email-worker pause``).

A pause is kept in the same store as the requests' records, so that every worker instance and
the operator's command see the same answer. One record per scope: a service id, or
:data:`ALL_SERVICES` for every service at once. A record stays until it is removed; it does
not expire. The ledger knows nothing of what a pause means to Pub/Sub: the push
configurations a pause cleared are kept as opaque JSON strings, by subscription, for the
command that restores them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

__all__ = ["ALL_SERVICES", "Pause", "merged"]

#: The scope of a pause of every service (``email-worker pause --all``).
ALL_SERVICES = "*"


@dataclass(frozen=True)
class Pause:
    """Sending stopped for ``scope`` since ``since`` (UTC), by ``by``, for ``reason``."""

    scope: str
    since: datetime
    by: str
    reason: str | None = None
    #: Subscription path -> the push configuration (JSON) the pause replaced by pull.
    saved_push_configs: Mapping[str, str] = field(default_factory=dict)

    @property
    def everything(self) -> bool:
        """Whether this pause stops every service."""
        return self.scope == ALL_SERVICES


def merged(stored: Pause, new: Pause) -> Pause | None:
    """``stored`` with the push configurations ``new`` saved for subscriptions it holds none
    for; None when there are none (nothing to write).

    A pause asked for again keeps its first record (time, author, reason, and above all the
    configurations saved first: by then the subscription may already be a pull one).
    """
    extra = {k: v for k, v in new.saved_push_configs.items() if k not in stored.saved_push_configs}
    if not extra:
        return None
    return replace(stored, saved_push_configs={**stored.saved_push_configs, **extra})
