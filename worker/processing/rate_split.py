"""Splitting an account's send rate between its live instances, and lending an idle
instance's share to the busy ones.

Every heartbeat says how many recipients a second its instance sent since its previous one,
and whether its sends waited for their turn (``limited``; :class:`LoadMeter` measures both
from the instance's :class:`~worker.processing.send_rate.SendRateLimiter`). From the same live
heartbeats each instance computes the same split, without asking the others:

* a limited instance claims all it can get;
* an idle one (it sent less than :data:`FLOOR` of an equal share and never waited) claims
  that floor, so that it can still start at once, and lends the rest;
* any other claims an equal share;
* water-filling shares the rate: a claim below the level gets what it claims, the rest get
  the level, and the level is such that the shares add up to the rate. Claims that together
  leave some of the rate over share that over equally.

So while every instance has work, each gets an equal share, however its load varies; when
one has none (its stream went quiet), the limited ones share what it leaves.

A share shrinks at once and grows a heartbeat late: an instance holds the smaller of what the
last two counts' splits give it (the pacer keeps both; the earlier split is of the instances
alive now, an instance the earlier count did not know taken as it is now, and one gone since
left out: it holds nothing). Each instance splits at its own heartbeat, from what the others
said at theirs, so a share grown from the latest count could count on a part another instance
has not given back yet; one heartbeat later, every other instance has split again from a
count that holds what this one said. So when an idle instance gets work, its sends wait at
its floor, its next heartbeat says so, the others give the rest back at their next split,
and it has an equal share again two heartbeats after it got work, without the shares adding
up to more than the rate on the way (but for the heartbeats' jitter, which AIMD absorbs). A
new quota is not delayed: both splits use it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Mapping

from worker.ledger import Heartbeat
from worker.processing.send_rate import SendRateLimiter, Usage

__all__ = ["FLOOR", "LoadMeter", "claim_per_s", "share_of", "split_per_s"]

#: An idle instance (sending less than this fraction of an equal share, and never waiting)
#: keeps this fraction of an equal share and lends the rest.
FLOOR = 0.05


def claim_per_s(beat: Heartbeat, equal_share_per_s: float) -> float | None:
    """What ``beat``'s instance claims of the rate; None: all it can get."""
    if beat.limited:
        return None
    floor = FLOOR * equal_share_per_s
    return floor if beat.sent_per_s < floor else equal_share_per_s


def split_per_s(total_per_s: float, claims: Mapping[str, float | None]) -> dict[str, float]:
    """Share ``total_per_s`` between the instances of ``claims`` by water-filling (see the
    module's text); the shares add up to ``total_per_s``."""
    if not claims:
        return {}
    shares: dict[str, float] = {}
    remaining, left = total_per_s, len(claims)
    finite = sorted((c, name) for name, c in claims.items() if c is not None)
    for claim, name in finite:
        if claim >= remaining / left:
            break  # this claim and every larger one reach the level
        shares[name] = claim
        remaining -= claim
        left -= 1
    if left:
        level = remaining / left
        return {name: shares.get(name, level) for name in claims}
    over = remaining / len(claims)  # every claim is met: share what is left over
    return {name: share + over for name, share in shares.items()}


def share_of(instance: str, total_per_s: float, beats: Collection[Heartbeat]) -> float:
    """``instance``'s share of ``total_per_s`` among the live ``beats``; an equal share
    when its own heartbeat is not among them."""
    live = max(len(beats), 1)
    equal = total_per_s / live
    if not any(beat.instance == instance for beat in beats):
        return equal
    claims = {beat.instance: claim_per_s(beat, equal) for beat in beats}
    return split_per_s(total_per_s, claims)[instance]


class LoadMeter:
    """How busy this instance was between two calls of :meth:`measure`, from its limiter."""

    def __init__(
        self, limiter: SendRateLimiter, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._limiter = limiter
        self._clock = clock
        self._lock = threading.Lock()
        self._last: tuple[float, Usage] | None = None

    def measure(self) -> tuple[float, bool]:
        """Recipients sent per second since the last call, and whether a send waited for
        its turn meanwhile. The first call has measured nothing yet: (0.0, False), a quiet
        instance's claim; one that starts with work to do says so at its next heartbeat. (A
        first heartbeat claiming a full share would have the others, starting together, each
        count the rest as busy and hold only their floor until they all had beaten twice.)"""
        now, usage = self._clock(), self._limiter.usage()
        with self._lock:
            last, self._last = self._last, (now, usage)
        if last is None or now <= last[0]:
            return 0.0, False
        elapsed = now - last[0]
        sent_per_s = (usage.recipients - last[1].recipients) / elapsed
        return sent_per_s, usage.waits > last[1].waits
