"""Processing: one delivery in, an outcome, a decision and its settlement out.

The layer owns what happens to one Pub/Sub message whatever transport brought it: the
pipeline that validates, claims (in the ledger), builds and sends a request and returns an
:class:`Outcome` without acking anything (:func:`process`, composing the steps ``admission``,
``under_claim`` and ``send`` over ``model``); the rules that turn an outcome
into publish/dead-letter/ack (:func:`decide`); carrying them out with nothing acked before
its publishes are confirmed (:class:`Outputs`); the :class:`Handler` that chains the three
for a transport; the outage breaker that holds work while SES, STS or the ledger fail for
every service (:class:`OutageBreaker`); and the send rate limit and metrics along the way. It
builds on the formats, the sending library and the ledger, and knows no transport.
"""

from __future__ import annotations

from worker.processing.breaker import OutageBreaker
from worker.processing.decisions import Decision, decide
from worker.processing.delivery import Delivery, Deps, LedgerEvent, Outcome, Status
from worker.processing.handling import Handler
from worker.processing.metrics import Metrics
from worker.processing.outputs import Outputs
from worker.processing.pipeline import process
from worker.processing.send_rate import SendRateLimiter

__all__ = [
    "Decision",
    "Delivery",
    "Deps",
    "Handler",
    "LedgerEvent",
    "Metrics",
    "OutageBreaker",
    "Outcome",
    "Outputs",
    "SendRateLimiter",
    "Status",
    "decide",
    "process",
]
