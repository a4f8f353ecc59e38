"""What to do with a Pub/Sub message once its outcome is known.

Kept apart from the pipeline and the transports so the rules are in one small place:

=======================  ==============  ===========  =========
outcome                  publish result  dead-letter  then
=======================  ==============  ===========  =========
sent                     yes (sent)      no           ack
rejected / failed        yes             yes          ack
retry, not last          no              no           nack
retry, last attempt      yes (failed)    no           nack [#]_
in progress              no              no           nack [#]_
replayed from ledger     yes (as stored) no           ack
refused replay [#]_      no              as above     as above
held, transport can      no              no           hold [#]_
held and deferred [#]_   no              no           ack
held, transport cannot   as retry        no           nack
scheduled, cancelled,    yes             no           ack
cancel refused
=======================  ==============  ===========  =========

.. [#] On the last delivery attempt Pub/Sub's own dead-letter policy moves the message once it
   is nacked, so the requester is told first.
.. [#] Another delivery of the same request is sending it and publishes its result; this one
   comes back later and finds that result in the ledger (a replay).
.. [#] A delivery from the replay topic that the request ledger did not confirm
   (``Outcome.service_confirmed`` false): anyone may publish there, so the service it names
   may never have asked. Its refusal goes to the operators only: dead-lettered (or, for a
   transient failure, nacked until Pub/Sub dead-letters it) and logged, with no result.
.. [#] The outage breaker holds (:mod:`worker.processing.breaker`): the pull transport keeps
   the message leased and processes it again once the breaker lets it, so the outage uses
   none of its delivery attempts. Push cannot hold a message: its answer is a nack, which
   Pub/Sub backs off on, and the subscription's attempts are sized to outlast an outage
   (:mod:`worker.config.budget`).
.. [#] A push held by SES's 24-hour cap, its service's ``max_per_day`` or its paused tenant,
   stored in the ledger's schedule records to be processed again when the hold may lift
   (``Outcome.deferred_until``, :mod:`worker.processing.deferral`): acked once stored, with
   no result, as a held pull delivery publishes none; its final result comes from the
   dispatch that sends (or refuses) it.

Acking always waits until the publishes it depends on are confirmed; a failed publish turns
the ack into a nack (see :mod:`worker.processing.outputs`).
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.processing.delivery import LedgerEvent, Outcome, Status

__all__ = ["Decision", "decide", "is_last_attempt"]

_KEPT_OR_CANCELLED = frozenset({Status.SCHEDULED, Status.CANCELLED, Status.CANCEL_REFUSED})


@dataclass(frozen=True)
class Decision:
    publish_result: bool
    dead_letter: bool
    ack: bool
    #: Neither ack nor nack: the transport keeps the message and processes it again later.
    hold: bool = False


def is_last_attempt(delivery_attempt: int | None, max_delivery_attempts: int | None) -> bool:
    """Whether Pub/Sub will dead-letter the message if this delivery is nacked.

    Without a dead-letter policy Pub/Sub reports no attempt count, and there is no last one.
    """
    if delivery_attempt is None or max_delivery_attempts is None:
        return False
    return delivery_attempt >= max_delivery_attempts


def decide(
    outcome: Outcome,
    *,
    delivery_attempt: int | None,
    max_delivery_attempts: int | None,
    can_hold: bool = False,
) -> Decision:
    """The decision for ``outcome`` on the given delivery attempt; ``can_hold``: whether the
    transport can keep the message without an answer (pull) or not (push)."""
    if outcome.status is Status.HELD and outcome.deferred_until is not None:
        return Decision(publish_result=False, dead_letter=False, ack=True)
    if outcome.status is Status.HELD and can_hold:
        return Decision(publish_result=False, dead_letter=False, ack=False, hold=True)
    if outcome.status is Status.IN_PROGRESS:
        return Decision(publish_result=False, dead_letter=False, ack=False)
    if outcome.status in _KEPT_OR_CANCELLED:
        # A request stored for later, or a cancel's answer: nothing to retry or inspect.
        return Decision(publish_result=outcome.service_confirmed, dead_letter=False, ack=True)
    if outcome.status is Status.SENT or outcome.ledger is LedgerEvent.REPLAYED:
        # A replay was dead-lettered, if at all, by the delivery that stored it.
        return Decision(publish_result=True, dead_letter=False, ack=True)
    if outcome.status in (Status.REJECTED, Status.FAILED):
        return Decision(publish_result=outcome.service_confirmed, dead_letter=True, ack=True)
    last = is_last_attempt(delivery_attempt, max_delivery_attempts)
    return Decision(publish_result=last and outcome.service_confirmed, dead_letter=False, ack=False)
