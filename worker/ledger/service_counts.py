"""Outcome counters: what became of each service's email, by the hour, over every instance.

The console's services page (:mod:`worker.console.services_view`) charts them. One record
per service and hour, never one per email: the worker and the events reader add their
outcomes in memory (:class:`~worker.ledger.service_counter.ServiceCounter`, an addition
under a lock) and write them every few seconds, one increment per service and hour holding
every kind that moved, which each backend applies atomically (SQLite's upsert, Firestore's
``Increment``, memory under its lock), so instances never overwrite each other's counts.
Like the send counters, each service and hour is :data:`~worker.ledger.send_counts.SHARDS`
counters, a flush incrementing one drawn at random (:mod:`worker.ledger.send_counts` says
why), and a read summing them: a service's last week is :data:`WEEK_HOURS` x ``SHARDS``
reads by key, in batches, which the services page makes once per console and then only for
the hours that can still change (:mod:`worker.ledger.final_hours`). Counters expire
:data:`RETENTION_S` after their hour.

The kinds (:data:`KINDS`):

* ``sent``, ``rejected``, ``failed``: requests, as the worker finished them (a result
  replayed from the ledger is not counted again);
* ``recipients``: the recipients of the ``sent`` requests, the rates' denominator;
* ``bounced``, ``complained``: recipients SES reported hard-bounced (``Permanent``, the only
  bounces SES's bounce rate counts) or complaining, as the events reader publishes them.

Counts are approximate where their sources are: an SES event SQS delivers twice is counted
twice, and what an instance counted in its last seconds before a crash is lost.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping

from worker.ledger.send_counts import HOUR_S, counter_document_id

__all__ = [
    "KINDS",
    "RETENTION_S",
    "WEEK_HOURS",
    "HourCounts",
    "Increments",
    "ServiceCountRecords",
    "counter_document_id",
    "expire_at",
]

KINDS = ("sent", "recipients", "rejected", "failed", "bounced", "complained")
#: Hours of the services page's longest chart: seven days.
WEEK_HOURS = 7 * 24
#: How long a counter is kept after its hour began: the week charted, and a day to spare.
RETENTION_S = 8 * 24 * HOUR_S

#: Counts of one service in one hour, by kind (kinds that did not move are left out).
HourCounts = dict[str, int]
#: What to add, by (service id, hour).
Increments = Mapping[tuple[str, int], Mapping[str, int]]


def expire_at(hour: int) -> float:
    """When the counter of ``hour`` may be deleted (epoch seconds)."""
    return hour * HOUR_S + RETENTION_S


class ServiceCountRecords(abc.ABC):
    """The counters in one backend (:mod:`worker.ledger.service_count_stores`). Both methods
    raise :class:`LedgerUnavailable` when the store fails."""

    @abc.abstractmethod
    def add(self, increments: Increments, shard: int | None = None) -> None:
        """Add ``increments`` to ``shard`` of their counters (None: a random one; ValueError
        if not one of ``SHARDS``), atomically against other instances' additions."""

    @abc.abstractmethod
    def read(self, service_id: str, hours: range) -> dict[int, HourCounts]:
        """``service_id``'s counters of ``hours`` (every shard's, by key, summed), by hour;
        hours without one are left out."""
