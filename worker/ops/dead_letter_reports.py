"""What a replay or a purge of dead letters did, dead letter by dead letter.

Neither loses anything: a dead letter not republished or not removed is still in the
subscription, and the report says which and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["PurgeReport", "ReplayReport"]


@dataclass
class ReplayReport:
    """What a replay did. Nothing is lost: every dead letter is either republished (and
    removed from the subscription) or still in the subscription."""

    replayed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    """Message id -> error; not republished, still dead-lettered."""
    not_removed: dict[str, str] = field(default_factory=dict)
    """Republished, but the dead letter could not be acknowledged: it is still there and would
    be sent twice if replayed again."""
    not_found: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """Not attempted because the replay stopped after a failure; still dead-lettered."""

    @property
    def ok(self) -> bool:
        return not (self.failed or self.not_removed or self.not_found or self.skipped)


@dataclass
class PurgeReport:
    purged: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    """Message id -> error; Pub/Sub refused the acknowledgement, still dead-lettered."""
    not_found: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """Not attempted because the purge stopped after a failure; still dead-lettered."""

    @property
    def ok(self) -> bool:
        return not (self.failed or self.not_found or self.skipped)
