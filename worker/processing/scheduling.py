"""The scheduling step: a request whose ``send_at`` is ahead is kept, not sent.

:func:`kept_for_later` decides on arrival (:func:`~worker.formats.send_at.send_at_verdict`):
a ``send_at`` in the past or within a minute goes on to be sent now; more than 30 days ahead
is ``send_at_too_far``; otherwise the request is checked as the send step would check it
(:func:`~worker.processing.arrival_checks.check_sendable`), recorded in the ledger's schedule
records with its bytes, and answered ``scheduled`` (the message is then acked). A delivery of
the same request again finds its record; another request under the same id is
``request_id_conflict``. The dispatcher (:mod:`worker.processing.schedule_dispatch`) sends
it at its time.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime

from worker.formats.request import EmailRequest
from worker.formats.result import ErrorCode, format_timestamp
from worker.formats.send_at import SendAtVerdict, send_at_verdict
from worker.ledger import LedgerKey, LedgerUnavailable, content_hash
from worker.ledger.schedule_stores import schedules_of
from worker.ledger.schedules import AddAnswer, Schedule, ScheduleState
from worker.processing.arrival_checks import check_sendable
from worker.processing.delivery import (
    Delivery,
    Deps,
    Outcome,
    Status,
    report_ledger_unavailable,
)

__all__ = ["cancelled_outcome", "kept_for_later"]


def kept_for_later(request: EmailRequest, delivery: Delivery, deps: Deps) -> Outcome | None:
    """The outcome of keeping ``request`` for its ``send_at``, or of refusing it; None when
    it is to be sent now."""
    if request.send_at is None or delivery.scheduled:
        return None
    ledger = deps.ledger
    within_s = deps.settings.schedule.min_ahead_s
    if ledger is None:
        if send_at_verdict(request.send_at, time.time(), send_now_within_s=within_s) is (
            SendAtVerdict.NOW
        ):
            return None
        return Outcome.refused(
            request,
            ErrorCode.CONFIGURATION_ERROR,
            "this worker runs without a request ledger (EMAIL_WORKER_LEDGER), which scheduled "
            "sending needs",
        )
    book = schedules_of(ledger)
    verdict = send_at_verdict(request.send_at, book.clock(), send_now_within_s=within_s)
    if verdict is SendAtVerdict.NOW:
        return _cancelled_before(request, deps)
    if verdict is SendAtVerdict.TOO_FAR:
        return Outcome.refused(
            request, ErrorCode.SEND_AT_TOO_FAR, "send_at is more than 30 days ahead"
        )
    limit = book.max_data_bytes
    if limit is not None and len(delivery.data) > limit:
        return Outcome.refused(
            request,
            ErrorCode.MESSAGE_TOO_LARGE,
            f"a scheduled request may be at most {limit} bytes in this ledger; use gs:// "
            "attachments",
        )
    refused = check_sendable(request, deps)
    if refused is not None:
        return refused
    schedule = Schedule(
        key=LedgerKey(request.service_id, request.request_id),
        due_at=request.send_at.timestamp(),
        data=delivery.data,
        message_id=delivery.message_id,
        content_hash=content_hash(delivery.data),
    )
    try:
        answer, stored = book.add(schedule)
    except LedgerUnavailable as error:
        return report_ledger_unavailable(request, deps, error)
    return _answered(request, answer, stored)


def _answered(request: EmailRequest, answer: AddAnswer, stored: Schedule) -> Outcome | None:
    if answer is AddAnswer.CONFLICT:
        return Outcome.refused(
            request,
            ErrorCode.REQUEST_ID_CONFLICT,
            f"request_id {request.request_id!r} is already scheduled for a different request "
            f"of service {request.service_id!r}; this one was not kept",
        )
    if stored.state is ScheduleState.CANCELLED:
        return cancelled_outcome(request.service_id, request.request_id)
    if stored.state is ScheduleState.DONE:
        return None  # dispatched already: the ledger's claim answers with its result
    return replace(
        Outcome.for_request(request, Status.SCHEDULED),
        send_at=format_timestamp(datetime.fromtimestamp(stored.due_at, UTC)),
    )


def _cancelled_before(request: EmailRequest, deps: Deps) -> Outcome | None:
    """A request due now that was scheduled and cancelled (its message delivered again after
    its time) stays cancelled; None otherwise: send it now."""
    assert deps.ledger is not None
    try:
        stored = schedules_of(deps.ledger).get(LedgerKey(request.service_id, request.request_id))
    except LedgerUnavailable as error:
        return report_ledger_unavailable(request, deps, error)
    if stored is not None and stored.state is ScheduleState.CANCELLED:
        return cancelled_outcome(request.service_id, request.request_id)
    return None


def cancelled_outcome(service_id: str, request_id: str) -> Outcome:
    """The final outcome of a scheduled request that was cancelled."""
    return Outcome(
        Status.CANCELLED,
        request_id=request_id,
        service_id=service_id,
        error_code=ErrorCode.CANCELLED,
        error_message="the scheduled request was cancelled before its time; nothing was sent",
    )
