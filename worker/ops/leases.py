"""Holding pulled messages under a lease for as long as an operation runs, then letting go.

An operator's look at the dead letters pulls every message once and must not see any twice:
what has been pulled is held (its ack deadline extended) until the operation ends, renewed
before the lease runs out, and released (ack deadline 0, a nack) at the end, so that looking
consumes nothing. What the operation acknowledged is no longer held.

:class:`HeldMessages` does only that bookkeeping; pulling and acknowledging stay with the
caller (`worker.ops.dead_letters`). It changes deadlines through the function it is given, and
reads time from the clock it is given, so it can be tested on its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Any

from worker.client.pubsub_rpc import describe_error

__all__ = ["HeldMessages", "ModifyDeadline", "in_chunks"]

logger = logging.getLogger(__name__)

#: Sets the ack deadline of these ack ids to this many seconds (0 releases them).
ModifyDeadline = Callable[[list[str], int], None]

_ACK_IDS_PER_CALL = 500  # well inside Pub/Sub's request size limit


def in_chunks(ack_ids: Sequence[Any]) -> Iterable[Sequence[Any]]:
    """``ack_ids`` (or anything listed by them) in slices small enough for one Pub/Sub call."""
    for start in range(0, len(ack_ids), _ACK_IDS_PER_CALL):
        yield ack_ids[start : start + _ACK_IDS_PER_CALL]


class HeldMessages:
    """The messages one operation holds, by message id, under their latest ack id.

    Use it as a context manager: whatever is still held on leaving is released, also after
    an error or an interruption. ``lease_s`` is the ack deadline each hold or renewal sets;
    :meth:`renew_if_due` renews everything held once half of it has passed.
    """

    def __init__(
        self,
        modify_deadline: ModifyDeadline,
        lease_s: int,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lease_s = lease_s
        self._modify_deadline = modify_deadline
        self._clock = clock
        self._held: dict[str, str] = {}  # message id -> latest ack id
        self._seen: set[str] = set()
        self._renewed_at = clock()

    def __enter__(self) -> HeldMessages:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.release()

    @property
    def held(self) -> dict[str, str]:
        """Message id -> the ack id it is held under (a copy)."""
        return dict(self._held)

    def hold(self, received: Iterable[Any]) -> list[Any]:
        """Hold these pulled messages (``ReceivedMessage``s); return those not seen before.

        A message seen before was delivered again (its lease ran out, or an acknowledgement
        got lost): it is held under its new ack id, the one that works from now on, but not
        returned. Only the new ones get their lease here.
        """
        fresh = []
        for message in received:
            message_id = message.message.message_id
            if message_id not in self._seen:
                self._seen.add(message_id)
                fresh.append(message)
            self._held[message_id] = message.ack_id
        if fresh:
            self._modify_deadline([m.ack_id for m in fresh], self.lease_s)
        return fresh

    def renew_if_due(self) -> None:
        """Extend the lease of everything held once half of it has passed.

        A long operation (a big subscription) must not lose what it holds: an expired lease
        hands messages back, and they would come again as if seen for the first time.
        """
        if self._held and self._clock() - self._renewed_at > self.lease_s / 2:
            self._modify_deadline(list(self._held.values()), self.lease_s)
            self._renewed_at = self._clock()

    def consumed(self, message_ids: Iterable[str]) -> None:
        """Stop holding these: they were acknowledged."""
        for message_id in message_ids:
            self._held.pop(message_id, None)

    def release(self) -> None:
        """Hand back (ack deadline 0) everything still held; nothing is held afterwards.

        A failure is logged, not raised: the messages come back by themselves when their
        lease runs out.
        """
        ack_ids, self._held = list(self._held.values()), {}
        if not ack_ids:
            return
        try:
            self._modify_deadline(ack_ids, 0)
        except Exception as error:
            logger.warning(
                "could not release %d dead letters (they reappear within %d s): %s",
                len(ack_ids),
                self.lease_s,
                describe_error(error),
            )
