"""The one processing pipeline behind every transport: request bytes in, an :class:`Outcome` out.

:func:`process` composes the steps, each a module that imports only those after it:

1. :func:`~worker.processing.admission.admit`: decode and validate the request, and check
   that its service may send it (tenancy, the allowed services, a replay's ledger record);
   a cancel message is answered before (:mod:`~worker.processing.cancelling`), and a request
   whose ``send_at`` is ahead is kept for then (:mod:`~worker.processing.scheduling`);
   a push held by a cap or a paused tenant is kept in the ledger until the hold may lift
   (:mod:`~worker.processing.deferral`);
2. unless the worker is stopping, either (with a ledger)
   :func:`~worker.processing.under_claim.send_under_claim`: claim the request, send it unless
   the ledger says otherwise, record the outcome;
3. or (without) :func:`~worker.processing.send_request.send_request`: check the sender, build the
   message and send it, retrying transient SES/STS failures within a bounded budget.

It never acknowledges anything and never raises: what to do with the Pub/Sub message is
decided afterwards, from the outcome alone (see :mod:`worker.processing.decisions`).
"""

from __future__ import annotations

import traceback
from dataclasses import replace

from worker.config.logs import get_logger
from worker.formats.request import EmailRequest
from worker.formats.result import ErrorCode
from worker.processing.admission import admit
from worker.processing.cancelling import cancel_outcome
from worker.processing.deferral import deferred
from worker.processing.delivery import (
    DAILY_CAP_HELD,
    Delivery,
    Deps,
    LedgerEvent,
    Outcome,
    Status,
    tenant_held,
)
from worker.processing.scheduling import kept_for_later
from worker.processing.send_request import send_request
from worker.processing.under_claim import send_under_claim

# The model's names stay importable from here, where they were first defined.
__all__ = ["Delivery", "Deps", "LedgerEvent", "Outcome", "Status", "process"]

log = get_logger()


def process(delivery: Delivery, deps: Deps) -> Outcome:
    """Turn one delivery into an outcome. Never raises."""
    try:
        outcome = _process(delivery, deps)
        if outcome.status is Status.RETRY and (deps.holding or tenant_held(outcome)):
            # The trouble is everyone's, or SES paused the service's tenant: keep the
            # delivery for after it.
            outcome = replace(outcome, status=Status.HELD)
        if outcome.status is Status.HELD and delivery.defer_held:
            # A push cannot be kept: it is kept in the ledger instead, if it may be.
            return deferred(outcome, delivery, deps)
        return outcome
    except Exception as error:  # a bug must not take the worker down or loop the message
        # The exception's text may quote the request, so only its type and place are logged.
        frame = traceback.extract_tb(error.__traceback__)[-1]
        log.error(
            "unexpected failure while processing",
            error=type(error).__name__,
            where=f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}",
        )
        return Outcome(
            Status.FAILED,
            request_id=delivery.message_id,
            error_code=ErrorCode.INTERNAL_ERROR,
            error_message="the worker failed unexpectedly; the request was not sent",
        )


def _process(delivery: Delivery, deps: Deps) -> Outcome:
    cancelled = cancel_outcome(delivery, deps)
    if cancelled is not None:
        return cancelled
    request = admit(delivery, deps)
    if isinstance(request, Outcome):
        return request
    if deps.stopping.is_set():
        return Outcome.handed_back(request)  # nothing claimed yet: simply handed back
    later = kept_for_later(request, delivery, deps)
    if later is not None:
        return later
    if deps.tenant_pauses.holds(request.service_id):
        return Outcome.for_request(
            request,
            Status.RETRY,
            error_code=ErrorCode.SENDING_PAUSED,
            error_message="SES has paused sending for the service's tenant; the request waits",
        )
    if deps.quota is not None and deps.quota.daily_cap_reached():
        # Nothing claimed or sent: the request waits in Pub/Sub for the window to reopen.
        return Outcome.for_request(
            request,
            Status.HELD,
            error_code=ErrorCode.THROTTLED,
            error_message=DAILY_CAP_HELD,
        )
    return _take_turn(request, delivery, deps)


def _take_turn(request: EmailRequest, delivery: Delivery, deps: Deps) -> Outcome:
    """Send ``request`` in its service's turn: a pull delivery whose service holds its share
    of the send-rate limiter's places waits outside."""
    limiter = deps.send_rate
    if limiter is None or not delivery.may_hold:
        return _send(request, delivery, deps)
    if not limiter.enter(request.service_id):
        # The service holds its share of the threads waiting for the send rate: this one
        # waits outside (leased, unclaimed), leaving the others' sends a thread.
        return Outcome.waiting(request, "share", hold_s=0.0)
    try:
        return _send(request, delivery, deps)
    finally:
        limiter.leave(request.service_id)


def _send(request: EmailRequest, delivery: Delivery, deps: Deps) -> Outcome:
    if deps.ledger is None:
        return send_request(request, deps)
    return send_under_claim(request, delivery, deps, deps.ledger)
