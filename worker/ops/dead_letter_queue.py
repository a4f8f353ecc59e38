"""The operators' dead-letter subscription: look at, replay and purge dead letters.

Everything here uses synchronous pull. What an operation pulls is held under a lease while it
runs and released (ack deadline 0) at the end (`worker.ops.leases`), so *looking* consumes
nothing. A dead letter is acknowledged (removed) only by ``purge``, or by ``replay`` once
Pub/Sub has confirmed its republication to the requests topic: a replay that fails part-way
loses nothing.

Operations here select by the dead letter's own Pub/Sub message id (`worker.ops.selection`
turns service, request id and error code into message ids). "All" means the dead letters present
when the operation starts: a snapshot of ids is taken first, so dead letters arriving during a
replay (including replays that fail again) are left for the next one.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from concurrent.futures import Future
from typing import Any

from worker.client.pubsub_rpc import bounded, describe_error, pull_once
from worker.formats.pubsub import Publish
from worker.ops.dead_letter_reports import PurgeReport, ReplayReport
from worker.ops.dead_letters import DeadLetter, publish_order
from worker.ops.leases import HeldMessages, in_chunks

__all__ = ["DeadLetterQueue", "PurgeReport", "ReplayReport"]


_Batch = list[tuple[DeadLetter, str]]
# Handles the selected messages of one pull: returns the message ids it acknowledged and
# whether to go on.
_Handler = Callable[[_Batch], tuple[set[str], bool]]
# Told how many more dead letters a replay or purge has dealt with.
_Progress = Callable[[int], None]


class DeadLetterQueue:
    """Operations on one dead-letter subscription.

    ``publish`` and ``requests_topic`` are needed for `replay` only. ``rpc_timeout_s`` bounds
    each Pub/Sub call, ``publish_timeout_s`` each republication; a pull that returns nothing
    within ``pull_wait_s`` means the subscription has nothing more to give.
    """

    def __init__(
        self,
        subscriber: Any,
        subscription: str,
        *,
        publish: Publish | None = None,
        requests_topic: str | None = None,
        rpc_timeout_s: float = 10.0,
        publish_timeout_s: float = 30.0,
        pull_wait_s: float = 3.0,
        batch_size: int = 100,
        max_rounds: int = 10_000,
        lease_s: int | None = None,
    ) -> None:
        self.subscription = subscription
        self.requests_topic = requests_topic
        self._subscriber = subscriber
        self._publish = publish
        self._rpc_timeout_s = rpc_timeout_s
        self._publish_timeout_s = publish_timeout_s
        self._pull_wait_s = pull_wait_s
        self._batch_size = batch_size
        self._max_rounds = max_rounds
        # Long enough that held messages are not redelivered while a batch is republished.
        self._lease_s = lease_s or int(min(600, max(60, 2 * publish_timeout_s + rpc_timeout_s)))

    # -- reading ---------------------------------------------------------------------

    def check(self) -> Any:
        """The subscription; raises NotFound if it does not exist, or if Pub/Sub is down."""
        return self._subscriber.get_subscription(
            request={"subscription": self.subscription}, **bounded(self._rpc_timeout_s)
        )

    def scan(self, visit: Callable[[DeadLetter], None], *, limit: int | None = None) -> int:
        """Call ``visit`` for each dead letter (up to ``limit``), consuming nothing."""
        count = 0

        def handle(batch: _Batch) -> tuple[set[str], bool]:
            nonlocal count
            for dead_letter, _ack_id in batch:
                visit(dead_letter)
            count += len(batch)
            return set(), True

        self._sweep(None, handle, limit=limit)
        return count

    def peek(self, limit: int | None = None) -> list[DeadLetter]:
        """Up to ``limit`` dead letters (all without one), oldest first; consumes nothing."""
        found: list[DeadLetter] = []
        self.scan(found.append, limit=limit)
        return sorted(found, key=publish_order)

    def message_ids(self) -> list[str]:
        """The ids of all dead letters present now, oldest first."""
        found: list[tuple[Any, ...]] = []
        self.scan(lambda d: found.append((*publish_order(d), d.message_id)))
        return [entry[-1] for entry in sorted(found)]

    def find(self, message_ids: Collection[str]) -> dict[str, DeadLetter]:
        """The dead letters with these ids that are present; consumes nothing."""
        found: dict[str, DeadLetter] = {}

        def handle(batch: _Batch) -> tuple[set[str], bool]:
            found.update((d.message_id, d) for d, _ in batch)
            return set(), True

        self._sweep(set(message_ids), handle)
        return found

    # -- changing --------------------------------------------------------------------

    def replay(
        self, message_ids: Collection[str], *, on_progress: _Progress | None = None
    ) -> ReplayReport:
        """Republish these dead letters to the requests topic, then remove them.

        Each is acknowledged only after Pub/Sub confirmed its republication. After a batch
        with a failed publish the replay stops; the rest stay dead-lettered.
        """
        if self._publish is None or self.requests_topic is None:
            raise ValueError("replay needs publish and requests_topic")
        publish, topic, timeout_s = self._publish, self.requests_topic, self._publish_timeout_s
        report = ReplayReport()

        def handle(batch: _Batch) -> tuple[set[str], bool]:
            published = _republish(publish, topic, batch, report.failed, timeout_s=timeout_s)
            acked = self._acknowledge(published, report.not_removed)
            report.replayed.extend(d.message_id for d, _ in published if d.message_id in acked)
            if on_progress is not None:
                on_progress(len(batch))
            return acked, not (report.failed or report.not_removed)

        report.not_found, report.skipped = self._sweep(set(message_ids), handle)
        return report

    def purge(
        self, message_ids: Collection[str], *, on_progress: _Progress | None = None
    ) -> PurgeReport:
        """Acknowledge (delete) these dead letters."""
        report = PurgeReport()

        def handle(batch: _Batch) -> tuple[set[str], bool]:
            acked = self._acknowledge(batch, report.failed)
            report.purged.extend(d.message_id for d, _ in batch if d.message_id in acked)
            if on_progress is not None:
                on_progress(len(batch))
            return acked, not report.failed

        report.not_found, report.skipped = self._sweep(set(message_ids), handle)
        return report

    # -- mechanics -------------------------------------------------------------------

    def _sweep(
        self,
        wanted: set[str] | None,
        handle: _Handler,
        *,
        limit: int | None = None,
    ) -> tuple[list[str], list[str]]:
        """Pull until the ``wanted`` ids (or ``limit`` messages, or everything) have been
        seen, or the subscription has nothing more; hand selected messages to ``handle``.

        Returns the wanted ids that were not found, and those not reached because ``handle``
        asked to stop. Every message pulled is held until the end (`HeldMessages`), so
        nothing is seen twice and the subscription can be drained; whatever ``handle`` did
        not acknowledge is released at the end, also on errors and interruptions.
        """
        remaining = set(wanted) if wanted is not None else None
        selected = 0
        with HeldMessages(self._modify_deadline, self._lease_s) as held:
            for _ in range(self._max_rounds):
                held.renew_if_due()
                size = self._pull_size(remaining, limit, selected)
                # Nothing new in a pull means drained, or gone all the way round. A pull
                # answers as soon as anything is available, so a short wait only makes an
                # operation end sooner on an empty subscription.
                fresh = held.hold(self._pull(size)) if size else []
                if not fresh:
                    break
                batch = _selected(fresh, remaining)
                if not batch:
                    continue
                selected += len(batch)
                acked, go_on = handle(batch)
                held.consumed(acked)
                if not go_on:
                    return [], sorted(remaining or ())
        return sorted(remaining or ()), []

    def _pull_size(self, remaining: set[str] | None, limit: int | None, selected: int) -> int:
        """How many to pull next: 0 once the wanted ids or the limit are reached."""
        if remaining is not None and not remaining:
            return 0
        if limit is None:
            return self._batch_size
        return max(0, min(self._batch_size, limit - selected))

    def _pull(self, size: int) -> list[Any]:
        return pull_once(
            self._subscriber, self.subscription, max_messages=size, timeout_s=self._pull_wait_s
        )

    def _acknowledge(self, batch: _Batch, errors: dict[str, str]) -> set[str]:
        """Acknowledge ``batch``; return the ids acknowledged, record the others in errors."""
        done: set[str] = set()
        for chunk in in_chunks(batch):
            try:
                self._subscriber.acknowledge(
                    request={"subscription": self.subscription, "ack_ids": [a for _, a in chunk]},
                    **bounded(self._rpc_timeout_s),
                )
            except Exception as error:
                for dead_letter, _ in chunk:
                    errors[dead_letter.message_id] = describe_error(error)
            else:
                done.update(d.message_id for d, _ in chunk)
        return done

    def _modify_deadline(self, ack_ids: list[str], seconds: int) -> None:
        for chunk in in_chunks(ack_ids):
            self._subscriber.modify_ack_deadline(
                request={
                    "subscription": self.subscription,
                    "ack_ids": list(chunk),
                    "ack_deadline_seconds": seconds,
                },
                **bounded(self._rpc_timeout_s),
            )


def _republish(
    publish: Publish, topic: str, batch: _Batch, errors: dict[str, str], *, timeout_s: float
) -> _Batch:
    """Publish ``batch`` to ``topic`` all at once; return what Pub/Sub confirmed within
    ``timeout_s``, record the others in errors."""
    futures: list[Future[Any] | BaseException] = []
    for dead_letter, _ in batch:
        try:
            futures.append(publish(topic, dead_letter.data, dead_letter.replay_attributes()))
        except Exception as error:  # a publish that fails at once is a failure too
            futures.append(error)
    published: _Batch = []
    for (dead_letter, ack_id), future in zip(batch, futures, strict=True):
        try:
            if isinstance(future, BaseException):
                raise future
            future.result(timeout=timeout_s)
        except Exception as error:
            errors[dead_letter.message_id] = describe_error(error)
        else:
            published.append((dead_letter, ack_id))
    return published


def _selected(fresh: list[Any], remaining: set[str] | None) -> _Batch:
    """The pulled messages wanted (all, without ``remaining``), each taken off ``remaining``."""
    batch: _Batch = []
    for message in fresh:
        message_id = message.message.message_id
        if remaining is None or message_id in remaining:
            batch.append((DeadLetter.from_received(message), message.ack_id))
            if remaining is not None:
                remaining.discard(message_id)
    return batch
