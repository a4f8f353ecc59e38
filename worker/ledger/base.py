"""The ledger's protocol, written once on a few storage primitives.

:class:`Ledger` decides every claim, completion, release and pause here, from what
:func:`~worker.ledger.shared.judge` says of the stored record. A backend only stores, in one
:class:`~worker.ledger.records.Records` per kind of record: it inserts a record unless one
exists, reads a record with an opaque version, and writes or deletes a record only if it still
has the version it was read with. A write that finds the record changed fails, and the
protocol reads and decides again, for at most :data:`CLAIM_ROUNDS` rounds. Over a store with
only those guarantees (Firestore's preconditions), two deliveries never both hold a claim.

A backend also says how a whole operation runs (:meth:`Ledger._writing`,
:meth:`Ledger._reading`): SQLite inside one write transaction shared with other threads'
(its group commit), memory under its lock, Firestore call by call, each call bounded by its
timeout. Each turns its own store's errors into
:class:`~worker.ledger.model.LedgerUnavailable`.

The module runs over 300 lines: the whole protocol, and every operation a backend offers,
read in one place.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Required, Self, TypedDict, TypeVar, cast

from worker.ledger.heartbeats import Heartbeat, HeartbeatKey, remove, upsert
from worker.ledger.model import Claim, ClaimState, LedgerKey, LedgerUnavailable, StoredResult
from worker.ledger.pauses import Pause, merged
from worker.ledger.records import Records
from worker.ledger.send_counts import Increments
from worker.ledger.shared import Entry, Verdict, judge
from worker.ledger.statuses import RecipientStatus

if TYPE_CHECKING:
    from datetime import datetime

    from worker.ledger.model import LedgerRecord

__all__ = ["CLAIM_ROUNDS", "DEFAULT_RETENTION_S", "Ledger", "LedgerTerms", "naming"]

#: How often an operation re-reads and re-decides when its record changes or vanishes under
#: it; more than this means heavy contention on one record, and a claim answers BUSY.
CLAIM_ROUNDS = 3

#: How long a record lives after its last write, unless told otherwise. Pub/Sub keeps an
#: unacknowledged message for at most seven days; a record must outlive every redelivery of
#: its request, plus a day for replays from a snapshot or a dead-letter topic.
DEFAULT_RETENTION_S = 8 * 24 * 3600.0

_T = TypeVar("_T")


def naming(action: str, key: LedgerKey) -> str:
    """``action`` on ``key``, as an error message names it (ids only, never content)."""
    return f"{action} {key.service_id}/{key.request_id}"


class LedgerTerms(TypedDict, total=False):
    """:class:`Ledger`'s keyword arguments, which every backend's constructor takes too."""

    claim_lease_s: Required[float]
    retention_s: float
    takeover_wait_s: float
    clock: Callable[[], float]


class Ledger(abc.ABC):
    """A record per request that lets exactly one delivery send it.

    A delivery ``claim``s the request before sending, then either ``complete``s it with the
    final result or, after a transient failure, ``release``s it so a later delivery can try
    again. Every method raises :class:`~worker.ledger.model.LedgerUnavailable` when the store
    fails.

    ``claim_lease_s``: how long a claim keeps other deliveries out. ``retention_s``: how long
    a record lives after its last write. ``takeover_wait_s``: how much longer an expired claim
    keeps them out, for SES's Send event of its holder's send to arrive. ``clock``: epoch
    seconds, replaced in tests.

    A backend sets ``_requests``, ``_paused`` and ``_heartbeats`` in its constructor.
    """

    _requests: Records[LedgerKey, Entry]
    _paused: Records[str, Pause]
    _heartbeats: Records[HeartbeatKey, Heartbeat]

    def __init__(
        self,
        *,
        claim_lease_s: float,
        retention_s: float = DEFAULT_RETENTION_S,
        takeover_wait_s: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._claim_lease_s = claim_lease_s
        self._retention_s = retention_s
        self._takeover_wait_s = takeover_wait_s
        self._clock = clock
        self._closed = False  # set by each backend's close

    # -- requests --------------------------------------------------------------------------

    def claim(
        self,
        key: LedgerKey,
        *,
        owner: str,
        content_hash: str,
        retry_unsent: bool = False,
        template_version: int | None = None,
    ) -> Claim:
        """Claim ``key`` for ``owner``, or say why not (see :class:`ClaimState`).

        Asking again as the owner that holds the claim answers CLAIMED and changes nothing.
        With ``retry_unsent``, a finished request whose result sent nothing (not ``sent``, no
        message ids) is claimed afresh instead of answered DONE: an operator's replay after
        fixing what made it fail. ``template_version``: the version a request naming no
        template version would render now; the claim pins it in the same write unless an
        earlier delivery pinned one, and answers the one pinned (``Claim.template_version``).
        """
        return self._writing(
            naming("claim", key),
            lambda: self._claim(key, owner, content_hash, retry_unsent, template_version),
        )

    def complete(self, key: LedgerKey, *, owner: str, result: StoredResult) -> bool:
        """Store ``result`` if ``owner`` still holds the claim; False if it does not."""
        return self._writing(naming("complete", key), lambda: self._complete(key, owner, result))

    def release(self, key: LedgerKey, *, owner: str) -> None:
        """Give up ``owner``'s claim, if it still holds one, so the next delivery can claim.

        The record itself stays, with nobody holding it: an operator's replay of the request
        is recognised by it (see :func:`~worker.ledger.model.content_hash`).
        """
        self._writing(naming("release", key), lambda: self._release(key, owner))

    def pin_attachments(
        self, key: LedgerKey, *, owner: str, generations: tuple[int, ...]
    ) -> tuple[int, ...] | None:
        """The generations pinned for ``key``'s gs:// attachments: those recorded by an
        earlier delivery if there are any, else ``generations``, recorded now. None if
        ``owner`` no longer holds the claim (it must not send)."""
        return self._writing(
            naming("pin attachments of", key),
            lambda: self._pin(key, owner, "attachment_generations", generations),
        )

    def pin_template_version(self, key: LedgerKey, *, owner: str, version: int) -> int | None:
        """The version of the template ``key``'s request names without one (the latest): the
        one recorded by an earlier delivery if there is one, else ``version``, recorded now.
        None if ``owner`` no longer holds the claim (it must not send)."""
        return self._writing(
            naming("pin the template version of", key),
            lambda: self._pin(key, owner, "template_version", version),
        )

    def get(self, key: LedgerKey) -> LedgerRecord | None:
        """The record for ``key``, or None if there is none or it has expired."""
        read = self._reading(naming("read", key), lambda: self._requests.read(key))
        if read is None or read[0].expire_at < self._clock():
            return None
        return read[0].record()

    # -- pauses ----------------------------------------------------------------------------

    def add_pause(self, pause: Pause) -> Pause:
        """Record ``pause`` unless its scope is paused already; return the stored record.

        Asked again for a paused scope, the first record stays, gaining only the push
        configurations saved for subscriptions it holds none for
        (:func:`~worker.ledger.pauses.merged`).
        """
        return self._writing("pause " + pause.scope, lambda: self._add_pause(pause))

    def remove_pause(self, scope: str) -> Pause | None:
        """Remove the pause of ``scope`` and return it; None when it was not paused."""
        return self._writing("resume " + scope, lambda: self._remove_pause(scope))

    # -- instances' heartbeats (worker.ledger.heartbeats) -----------------------------------

    def beat(self, group: str, instance: str, *, expire_after_s: float) -> Heartbeat:
        """Record that ``instance`` of ``group`` is alive, until ``expire_after_s`` from now."""
        now = self._clock()
        heartbeat = Heartbeat(group, instance, beat_at=now, expire_at=now + expire_after_s)
        self._writing(
            "record the heartbeat of " + instance, lambda: upsert(self._heartbeats, heartbeat)
        )
        return heartbeat

    def end_heartbeat(self, group: str, instance: str) -> None:
        """Remove ``instance``'s heartbeat: it stops counting as alive at once."""
        self._writing(
            "remove the heartbeat of " + instance,
            lambda: remove(self._heartbeats, (group, instance)),
        )

    # -- what each backend does ------------------------------------------------------------

    @abc.abstractmethod
    def heartbeats(self, group: str) -> list[Heartbeat]:
        """The live (unexpired) heartbeats of ``group``, by instance."""

    @abc.abstractmethod
    def record_statuses(self, key: LedgerKey, statuses: Sequence[RecipientStatus]) -> None:
        """Keep each of ``statuses`` unless the ledger holds a more advanced one for the same
        message and recipient (:func:`~worker.ledger.statuses.advances`). Repeated and
        out-of-order calls are harmless: the outcome does not depend on their order."""

    @abc.abstractmethod
    def statuses(self, key: LedgerKey) -> list[RecipientStatus]:
        """The latest status of every recipient of ``key``'s SES messages, oldest first."""

    @abc.abstractmethod
    def sent_to(
        self, recipient: str, since: datetime, *, limit: int = 200
    ) -> list[tuple[LedgerKey, RecipientStatus]]:
        """The latest status of each email to ``recipient`` (exactly as SES reported the
        address) whose status changed at or after ``since``, newest first, at most ``limit``:
        one indexed lookup, never a scan (the console's recipient page)."""

    @abc.abstractmethod
    def pauses(self) -> list[Pause]:
        """Every pause in force, by scope."""

    @abc.abstractmethod
    def add_send_counts(self, increments: Increments, shard: int | None = None) -> None:
        """Add recipients to the services' hourly send counters
        (:mod:`worker.ledger.send_counts`), atomically against other instances' additions, in
        ``shard`` (None: a random one; ValueError if not one of ``SHARDS``)."""

    @abc.abstractmethod
    def sent_by_hour(self, service_id: str, hours: range) -> dict[int, int]:
        """The recipients ``service_id`` sent in each of ``hours`` (numbers of hourly
        counters), every shard summed; hours without a counter are left out."""

    def sent_in_hours(self, service_id: str, hours: range) -> int:
        """The recipients ``service_id`` sent in ``hours`` altogether."""
        return sum(self.sent_by_hour(service_id, hours).values())

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections; the ledger must not be used afterwards."""

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called: what fails afterwards will never work again."""
        return self._closed

    @abc.abstractmethod
    def _writing(self, action: str, work: Callable[[], _T]) -> _T:
        """Run ``work`` (which calls the backend's records) as one write operation; a store
        error becomes LedgerUnavailable saying it could not ``action``."""

    @abc.abstractmethod
    def _reading(self, action: str, work: Callable[[], _T]) -> _T:
        """Like :meth:`_writing`, for ``work`` that only reads."""

    # -- the protocol ----------------------------------------------------------------------

    def _claim(
        self,
        key: LedgerKey,
        owner: str,
        content_hash: str,
        retry_unsent: bool,
        template_version: int | None,
    ) -> Claim:
        # What our last conditional write would have made of the claim. Its answer can be lost
        # and the store's retry then fail its precondition; the next read shows it as ours.
        attempted: ClaimState | None = None
        for _ in range(CLAIM_ROUNDS):
            fresh = self._fresh(key, owner, content_hash, self._clock())
            if self._requests.insert_if_absent(
                key, replace(fresh, template_version=template_version)
            ):
                return Claim(ClaimState.CLAIMED, template_version=template_version)
            read = self._requests.read(key)
            if read is None:
                continue  # deleted since the insert failed: insert again
            entry, version = read
            now = self._clock()
            verdict = judge(
                entry,
                owner=owner,
                content_hash=content_hash,
                now=now,
                retry_unsent=retry_unsent,
                takeover_wait_s=self._takeover_wait_s,
            )
            step = self._claim_step(verdict, entry, owner, content_hash, now)
            if step is None:
                return _answer(verdict, entry, attempted)
            attempted, change = step
            if change.template_version is None:  # the first pin wins
                change = replace(change, template_version=template_version)
            if self._requests.write_if_version(key, change, version):
                return Claim(attempted, template_version=change.template_version)
        return Claim(ClaimState.BUSY)

    def _claim_step(
        self, verdict: Verdict, entry: Entry, owner: str, content_hash: str, now: float
    ) -> tuple[ClaimState, Entry] | None:
        """The write ``verdict`` calls for, and what it makes of the claim; None for none."""
        lease_until = now + self._claim_lease_s
        if verdict is Verdict.RECLAIM:
            return ClaimState.CLAIMED, self._fresh(entry.key, owner, content_hash, now)
        if verdict is Verdict.RETRY:
            retried = replace(
                entry,
                state="claimed",
                owner=owner,
                lease_until=lease_until,
                result=None,
                updated_at=now,
                expire_at=now + self._retention_s,
            )
            return ClaimState.CLAIMED, retried
        if verdict is Verdict.FREE:
            return ClaimState.CLAIMED, replace(
                entry, owner=owner, lease_until=lease_until, updated_at=now
            )
        if verdict is Verdict.TAKEOVER:
            taken = replace(
                entry,
                owner=owner,
                lease_until=lease_until,
                takeovers=entry.takeovers + 1,
                updated_at=now,
            )
            return ClaimState.TAKEOVER, taken
        return None

    def _fresh(self, key: LedgerKey, owner: str, content_hash: str, now: float) -> Entry:
        return Entry(
            key=key,
            state="claimed",
            content_hash=content_hash,
            owner=owner,
            lease_until=now + self._claim_lease_s,
            takeovers=0,
            result=None,
            created_at=now,
            updated_at=now,
            expire_at=now + self._retention_s,
        )

    def _complete(self, key: LedgerKey, owner: str, result: StoredResult) -> bool:
        read = self._requests.read(key)
        if read is None or not read[0].held_by(owner):
            return False
        entry, version = read
        now = self._clock()
        done = replace(
            entry,
            state="done",
            result=result,
            lease_until=None,
            updated_at=now,
            expire_at=now + self._retention_s,
        )
        if self._requests.write_if_version(key, done, version):
            return True
        # The record changed since the read: by a takeover, or by this very write if its
        # answer was lost and the store's retry then failed the precondition.
        again = self._requests.read(key)
        return again is not None and (again[0].state, again[0].owner, again[0].result) == (
            "done",
            owner,
            result,
        )

    def _pin(self, key: LedgerKey, owner: str, field: str, value: _T) -> _T | None:
        """Record ``value`` in the entry's ``field`` unless an earlier delivery did: the first
        pin wins. None if ``owner`` does not hold the claim."""
        for _ in range(CLAIM_ROUNDS):
            read = self._requests.read(key)
            if read is None or not read[0].held_by(owner):
                return None
            entry, version = read
            earlier = getattr(entry, field)
            if earlier is not None:
                return cast(_T, earlier)
            pinned = replace(entry, **{field: value}, updated_at=self._clock())  # type: ignore[arg-type]
            if self._requests.write_if_version(key, pinned, version):
                return value
        raise LedgerUnavailable(naming(f"the record kept changing while pinning {field} of", key))

    def _release(self, key: LedgerKey, owner: str) -> None:
        read = self._requests.read(key)
        if read is None or not read[0].held_by(owner):
            return
        entry, version = read
        # A record changed since the read is no longer ours to release.
        released = replace(entry, owner=None, lease_until=None, updated_at=self._clock())
        self._requests.write_if_version(key, released, version)

    def _add_pause(self, pause: Pause) -> Pause:
        for _ in range(CLAIM_ROUNDS):
            if self._paused.insert_if_absent(pause.scope, pause):
                return pause
            read = self._paused.read(pause.scope)
            if read is None:
                continue  # resumed in between: insert again
            stored, version = read
            change = merged(stored, pause)
            if change is None:
                return stored
            if self._paused.write_if_version(pause.scope, change, version):
                return change
        raise _kept_changing(pause.scope)

    def _remove_pause(self, scope: str) -> Pause | None:
        for _ in range(CLAIM_ROUNDS):
            read = self._paused.read(scope)
            if read is None:
                return None
            # Only as read: a push configuration saved in between must not be lost.
            if self._paused.delete_if_version(scope, read[1]):
                return read[0]
        raise _kept_changing(scope)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _answer(verdict: Verdict, entry: Entry, attempted: ClaimState | None) -> Claim:
    """The answer to a claim whose verdict calls for no write."""
    if verdict is Verdict.MINE:
        return Claim(attempted or ClaimState.CLAIMED, template_version=entry.template_version)
    if verdict is Verdict.DONE:
        return Claim(ClaimState.DONE, entry.result)
    if verdict is Verdict.CONFLICT:
        return Claim(ClaimState.CONFLICT)
    return Claim(ClaimState.BUSY)


def _kept_changing(scope: str) -> LedgerUnavailable:
    return LedgerUnavailable(f"the pause of {scope} kept changing while it was written")
