"""The order in which waiting sends get the send rate: services share it by weight.

:class:`FairQueue` is self-clocked fair queueing over the services' waiting sends. Each send
gets a tag when it starts to wait: where its service's previous send ended (or the queue's
virtual time, if the service had nothing waiting), plus its recipients divided by the
service's weight. The queue always lets the smallest tag go first. So two services that both
keep sends waiting get recipients in the ratio of their weights, and a service that arrives
while another has thousands waiting is not queued behind them: its first send's tag is just
past the present. A ``high`` priority send is tagged as if its service's bulk sends were not
there, and those move back by its size: it overtakes its own service's bulk, not the others.

:class:`Places` bounds how many sends each service may have waiting at once (see
:mod:`worker.processing.send_rate`, "places"). Neither class locks or reads a clock: the
limiter does both.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field

__all__ = ["FairQueue", "Places", "Ticket"]


@dataclass(eq=False)
class Ticket:
    """One send waiting for its turn (compared by identity)."""

    service_id: str
    recipients: int
    high: bool
    tag: float
    order: int
    #: Set when the limiter lets it go; the tokens are taken then.
    granted: bool = field(default=False)


class FairQueue:
    """Waiting sends of every service, smallest tag first."""

    def __init__(self) -> None:
        self._waiting: list[Ticket] = []
        self._virtual = 0.0
        self._finish: dict[str, float] = {}
        self._high_finish: dict[str, float] = {}
        self._order = itertools.count()

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, service_id: str, recipients: int, *, weight: float, high: bool) -> Ticket:
        """Queue a send of ``recipients`` for ``service_id`` (whose share is ``weight``)."""
        size = max(recipients, 1) / weight
        finish = max(self._finish.get(service_id, 0.0), self._virtual)
        if high:
            start = max(self._high_finish.get(service_id, 0.0), self._virtual)
            self._high_finish[service_id] = start + size
            # The service's bulk sends make room: its share stays its weight.
            for waiting in self._waiting:
                if waiting.service_id == service_id and not waiting.high:
                    waiting.tag += size
            self._finish[service_id] = finish + size
        else:
            start = finish
            self._finish[service_id] = start + size
        ticket = Ticket(service_id, recipients, high, start + size, next(self._order))
        self._waiting.append(ticket)
        self._waiting.sort(key=lambda t: (t.tag, t.order))
        return ticket

    def head(self) -> Ticket | None:
        """The send whose turn is next."""
        return self._waiting[0] if self._waiting else None

    def pop(self) -> Ticket:
        """Take the next send out; the queue's virtual time moves to its tag."""
        ticket = self._waiting.pop(0)
        self._virtual = max(self._virtual, ticket.tag)
        return ticket

    def remove(self, ticket: Ticket) -> None:
        """Take a send out that gave up waiting (no longer there: nothing happens)."""
        if ticket in self._waiting:
            self._waiting.remove(ticket)

    def recipients_ahead(self, ticket: Ticket) -> int:
        """The recipients of the sends that go before ``ticket``, and its own."""
        total = 0
        for waiting in self._waiting:
            total += waiting.recipients
            if waiting is ticket:
                break
        return total


class Places:
    """How many sends each service has inside the limiter, and whether one more may enter.

    There are ``total`` places (the worker's threads). A service may take one while fewer
    than ``total - spare`` are taken, whoever holds them; beyond that, only while it holds
    less than its weight's share of ``total`` among the services holding places (itself
    included). So a lone service can use nearly every thread, and a service that arrives
    finds a free place and then its share, while the busy one waits outside, in Pub/Sub,
    instead of occupying the threads the newcomer needs.
    """

    def __init__(self, total: int) -> None:
        self.total = max(total, 1)
        self.spare = max(1, self.total // 8) if self.total > 1 else 0
        self._held: Counter[str] = Counter()

    def take(self, service_id: str, weights: dict[str, float]) -> bool:
        """Take a place for ``service_id`` if it may have one; True if taken."""
        held = sum(self._held.values())
        if held >= self.total - self.spare:
            others = {s for s, n in self._held.items() if n > 0 and s != service_id}
            # Alone, a service leaves the spare places for whoever comes next.
            shared = self.total if others else self.total - self.spare
            weight = weights.get(service_id, 1.0)
            total_weight = weight + sum(weights.get(s, 1.0) for s in others)
            if self._held[service_id] + 1 > max(shared * weight / total_weight, 1.0):
                return False
        self._held[service_id] += 1
        return True

    def give_back(self, service_id: str) -> None:
        if self._held[service_id] > 0:
            self._held[service_id] -= 1

    def held_by(self, service_id: str) -> int:
        return self._held[service_id]
