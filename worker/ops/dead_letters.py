"""The operators' dead-letter subscription: look at, replay and purge dead letters.

Dead letters come from two places:

* the worker forwards requests that cannot succeed (``rejected``/``failed``) to the dead-letter
  topic with the original data and attributes plus the ``email_worker_*`` reason attributes
  (`worker.formats.pubsub.DEAD_LETTER_ATTRIBUTES`);
* Pub/Sub's own dead-letter policy moves a message there after too many deliveries; it adds
  ``CloudPubSubDeadLetterSource*`` attributes (delivery count, source subscription...).

Everything here uses synchronous pull. Messages are held under a lease while an operation
runs and released (ack deadline 0) at the end, so *looking* consumes nothing. A dead letter is
acknowledged (removed) only by ``purge``, or by ``replay`` once Pub/Sub has confirmed its
republication to the requests topic: a replay that fails part-way loses nothing.

Operations here select by the dead letter's own Pub/Sub message id (`worker.ops.selection`
turns service, request id and error code into message ids). "All" means the dead letters present
when the operation starts: a snapshot of ids is taken first, so dead letters arriving during a
replay (including replays that fail again) are left for the next one.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from worker.client.pubsub_rpc import bounded, describe_error, pull_once
from worker.formats.json_depth import nested_too_deep

# REPLAY_COUNT_ATTRIBUTE is incremented on every replay of the same request; the pipeline
# retries what sent nothing.
from worker.formats.pubsub import (
    DEAD_LETTER_ATTRIBUTES,
    ERROR_CODE_ATTRIBUTE,
    ERROR_MESSAGE_ATTRIBUTE,
    FAILED_AT_ATTRIBUTE,
    REPLAY_COUNT_ATTRIBUTE,
    REQUEST_ID_ATTRIBUTE,
    SERVICE_ID_ATTRIBUTE,
    Publish,
)
from worker.formats.result import format_timestamp

__all__ = [
    "PUBSUB_DEAD_LETTER_PREFIX",
    "REPLAY_COUNT_ATTRIBUTE",
    "DeadLetter",
    "DeadLetterQueue",
    "PurgeReport",
    "ReplayReport",
    "publish_order",
]

logger = logging.getLogger(__name__)

#: Prefix of the attributes Pub/Sub's dead-letter policy adds.
PUBSUB_DEAD_LETTER_PREFIX = "CloudPubSubDeadLetter"
_SOURCE_DELIVERY_COUNT = "CloudPubSubDeadLetterSourceDeliveryCount"
_REASON_ATTRIBUTES = frozenset(DEAD_LETTER_ATTRIBUTES)
_ACK_IDS_PER_CALL = 500  # well inside Pub/Sub's request size limit


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


@dataclass(frozen=True, repr=False)
class DeadLetter:
    """One message of the dead-letter subscription."""

    message_id: str
    data: bytes
    attributes: Mapping[str, str]
    publish_time: dt.datetime | None = None

    @classmethod
    def from_received(cls, received: Any) -> DeadLetter:
        message = received.message
        published = message.publish_time
        return cls(
            message_id=message.message_id,
            data=bytes(message.data),
            attributes=dict(message.attributes),
            publish_time=published if isinstance(published, dt.datetime) else None,
        )

    @cached_property
    def request(self) -> dict[str, Any] | None:
        """The data as a JSON object, or None if it is not one."""
        try:
            text = self.data.decode("utf-8")
            if nested_too_deep(text):
                return None
            document = json.loads(text)
        except (UnicodeDecodeError, ValueError, RecursionError):
            return None
        return document if isinstance(document, dict) else None

    def _attribute_or_field(self, attribute: str, name: str) -> str | None:
        value = self.attributes.get(attribute)
        if value:
            return value
        from_request = (self.request or {}).get(name)
        return from_request if isinstance(from_request, str) else None

    @property
    def request_id(self) -> str | None:
        return self._attribute_or_field(REQUEST_ID_ATTRIBUTE, "request_id")

    @property
    def service_id(self) -> str | None:
        return self._attribute_or_field(SERVICE_ID_ATTRIBUTE, "service_id")

    @property
    def error_code(self) -> str | None:
        return self.attributes.get(ERROR_CODE_ATTRIBUTE) or None

    @property
    def error_message(self) -> str | None:
        return self.attributes.get(ERROR_MESSAGE_ATTRIBUTE) or None

    @property
    def delivery_count(self) -> int | None:
        """Deliveries before Pub/Sub's dead-letter policy moved it (None if the worker did)."""
        return _int_or_none(self.attributes.get(_SOURCE_DELIVERY_COUNT))

    @property
    def replay_count(self) -> int:
        return _int_or_none(self.attributes.get(REPLAY_COUNT_ATTRIBUTE)) or 0

    @property
    def reason(self) -> str:
        """Why it is here, for people."""
        if self.error_code and self.error_message:
            return f"{self.error_code}: {self.error_message}"
        if self.error_code:
            return self.error_code
        if self.delivery_count is not None:
            return f"not acknowledged after {self.delivery_count} deliveries (Pub/Sub policy)"
        return "unknown (no reason attributes)"

    def age_s(self, now: dt.datetime) -> float | None:
        if self.publish_time is None:
            return None
        return max(0.0, (now - self.publish_time).total_seconds())

    def replay_attributes(self) -> dict[str, str]:
        """The original attributes, without reasons, with the replay count incremented and
        the request's service and id."""
        kept = {
            name: value
            for name, value in self.attributes.items()
            if name not in _REASON_ATTRIBUTES and not name.startswith(PUBSUB_DEAD_LETTER_PREFIX)
        }
        kept[REPLAY_COUNT_ATTRIBUTE] = str(self.replay_count + 1)
        # Which request it was, as the worker saw it: a replay through the replay topic is
        # checked against the request ledger under this service and request id.
        if self.service_id:
            kept[SERVICE_ID_ATTRIBUTE] = self.service_id
        if self.request_id:
            kept[REQUEST_ID_ATTRIBUTE] = self.request_id
        return kept

    def summary(self, now: dt.datetime) -> dict[str, Any]:
        """What ``dlq list --json`` prints for it."""
        age = self.age_s(now)
        return {
            "message_id": self.message_id,
            "request_id": self.request_id,
            "service_id": self.service_id,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "delivery_count": self.delivery_count,
            "replay_count": self.replay_count,
            "failed_at": self.attributes.get(FAILED_AT_ATTRIBUTE),
            "publish_time": _rfc3339(self.publish_time),
            "age_s": None if age is None else round(age, 3),
        }

    def export_record(self) -> dict[str, Any]:
        """Everything about it, losslessly (``data_base64`` is the exact data)."""
        import base64

        return {
            "message_id": self.message_id,
            "publish_time": _rfc3339(self.publish_time),
            "attributes": dict(self.attributes),
            "data_base64": base64.b64encode(self.data).decode("ascii"),
            "request": self.request,
            "request_id": self.request_id,
            "service_id": self.service_id,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "delivery_count": self.delivery_count,
            "replay_count": self.replay_count,
        }

    def __repr__(self) -> str:
        return f"DeadLetter(message_id={self.message_id!r}, request_id={self.request_id!r})"


def _rfc3339(moment: dt.datetime | None) -> str | None:
    return None if moment is None else format_timestamp(moment)


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


_Batch = list[tuple[DeadLetter, str]]
# Handles the selected messages of one pull: returns the message ids it acknowledged and
# whether to go on.
_Handler = Callable[[_Batch], tuple[set[str], bool]]


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
        self,
        message_ids: Collection[str],
        *,
        on_progress: Callable[[int], None] | None = None,
    ) -> ReplayReport:
        """Republish these dead letters to the requests topic, then remove them.

        Each is acknowledged only after Pub/Sub confirmed its republication. After a batch
        with a failed publish the replay stops; the rest stay dead-lettered.
        """
        if self._publish is None or self.requests_topic is None:
            raise ValueError("replay needs publish and requests_topic")
        publish, topic = self._publish, self.requests_topic
        report = ReplayReport()

        def handle(batch: _Batch) -> tuple[set[str], bool]:
            futures: list[Future[Any] | BaseException] = []
            for dead_letter, _ in batch:
                try:
                    futures.append(
                        publish(topic, dead_letter.data, dead_letter.replay_attributes())
                    )
                except Exception as error:  # a publish that fails at once is a failure too
                    futures.append(error)
            published: list[tuple[DeadLetter, str]] = []
            for (dead_letter, ack_id), future in zip(batch, futures, strict=True):
                try:
                    if isinstance(future, BaseException):
                        raise future
                    future.result(timeout=self._publish_timeout_s)
                except Exception as error:
                    report.failed[dead_letter.message_id] = describe_error(error)
                else:
                    published.append((dead_letter, ack_id))
            acked = self._acknowledge(published, report.not_removed)
            report.replayed.extend(d.message_id for d, _ in published if d.message_id in acked)
            if on_progress is not None:
                on_progress(len(batch))
            return acked, not (report.failed or report.not_removed)

        report.not_found, report.skipped = self._sweep(set(message_ids), handle)
        return report

    def purge(
        self,
        message_ids: Collection[str],
        *,
        on_progress: Callable[[int], None] | None = None,
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

    def _acknowledge(
        self, batch: Iterable[tuple[DeadLetter, str]], errors: dict[str, str]
    ) -> set[str]:
        """Acknowledge ``batch``; return the ids acknowledged, record the others in errors."""
        batch = list(batch)
        done: set[str] = set()
        for start in range(0, len(batch), _ACK_IDS_PER_CALL):
            chunk = batch[start : start + _ACK_IDS_PER_CALL]
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

    def _modify(self, ack_ids: list[str], seconds: int) -> None:
        for start in range(0, len(ack_ids), _ACK_IDS_PER_CALL):
            self._subscriber.modify_ack_deadline(
                request={
                    "subscription": self.subscription,
                    "ack_ids": ack_ids[start : start + _ACK_IDS_PER_CALL],
                    "ack_deadline_seconds": seconds,
                },
                **bounded(self._rpc_timeout_s),
            )

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
        asked to stop.

        Every message pulled is leased until the end, so nothing is seen twice and the
        subscription can be drained; whatever ``handle`` did not acknowledge is released
        (ack deadline 0) at the end, also on errors and interruptions.
        """
        remaining = set(wanted) if wanted is not None else None
        held: dict[str, str] = {}  # message id -> latest ack id, released at the end
        seen: set[str] = set()
        selected_count = 0
        stopped = False
        renewed = time.monotonic()
        try:
            for _ in range(self._max_rounds):
                if held and time.monotonic() - renewed > self._lease_s / 2:
                    # A long sweep (a big subscription) must not lose what it holds: an expired
                    # lease would hand messages back, and the sweep would take them as seen.
                    self._modify(list(held.values()), self._lease_s)
                    renewed = time.monotonic()
                if remaining is not None and not remaining:
                    break
                if limit is not None and selected_count >= limit:
                    break
                size = self._batch_size
                if limit is not None:
                    size = min(size, limit - selected_count)
                received = pull_once(
                    self._subscriber,
                    self.subscription,
                    max_messages=size,
                    timeout_s=self._pull_wait_s,
                )
                if not received:
                    # Drained. A pull answers as soon as anything is available, so a short
                    # wait only makes an operation end sooner on an empty subscription.
                    break
                fresh = []
                for message in received:
                    message_id = message.message.message_id
                    if message_id in seen:
                        # Redelivered (its lease ran out, or an ack got lost): the new ack id
                        # is the one that works from now on.
                        held[message_id] = message.ack_id
                        continue
                    seen.add(message_id)
                    fresh.append(message)
                if not fresh:
                    break  # gone all the way round
                self._modify([m.ack_id for m in fresh], self._lease_s)
                batch: _Batch = []
                for message in fresh:
                    message_id = message.message.message_id
                    if remaining is None or message_id in remaining:
                        batch.append((DeadLetter.from_received(message), message.ack_id))
                        if remaining is not None:
                            remaining.discard(message_id)
                    held[message_id] = message.ack_id
                if not batch:
                    continue
                selected_count += len(batch)
                acked, go_on = handle(batch)
                for message_id in acked:
                    held.pop(message_id, None)
                if not go_on:
                    stopped = True
                    break
        finally:
            self._release(list(held.values()))
        unreached = sorted(remaining or ())
        return ([], unreached) if stopped else (unreached, [])

    def _release(self, ack_ids: list[str]) -> None:
        if not ack_ids:
            return
        try:
            self._modify(ack_ids, 0)
        except Exception as error:  # they come back by themselves when the lease runs out
            logger.warning(
                "could not release %d dead letters (they reappear within %d s): %s",
                len(ack_ids),
                self._lease_s,
                describe_error(error),
            )


def publish_order(dead_letter: DeadLetter) -> tuple[dt.datetime, int, str]:
    """Sort key: oldest first."""
    moment = dead_letter.publish_time or dt.datetime.min.replace(tzinfo=dt.UTC)
    # Message ids are decimal numbers in practice: shorter ones sort first.
    return moment, len(dead_letter.message_id), dead_letter.message_id
