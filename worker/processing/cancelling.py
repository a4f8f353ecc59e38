"""Cancel messages: a service cancels one of its own scheduled requests.

:func:`cancel_outcome` recognises a cancel message (:func:`~worker.formats.cancel.parse_cancel`)
before the request parser sees it, and answers it. Tenancy holds as for requests: with
per-service tenancy the cancel's service is the one whose topic carried it (a cancel naming
another service is ``publisher_not_allowed``, and one of another service's request ids finds
nothing of the publisher's), and the replay topic, which authenticates nobody, cancels
nothing. The answer is the request's final ``cancelled`` result, or ``cancel_refused`` with
``cancel_too_late`` (sent, or being sent) or ``schedule_not_found``.
"""

from __future__ import annotations

from dataclasses import replace

from worker.config.logs import get_logger
from worker.formats.cancel import CancelRequest, parse_cancel
from worker.formats.rejection import RequestRejected
from worker.formats.result import ErrorCode
from worker.ledger import Ledger, LedgerKey, LedgerUnavailable
from worker.ledger.schedule_stores import schedules_of
from worker.ledger.schedules import CancelAnswer
from worker.processing.delivery import Delivery, Deps, Outcome, Status, status_of
from worker.processing.scheduling import cancelled_outcome
from worker.processing.tenancy import SourceKind

__all__ = ["cancel_outcome", "cancel_schedule"]

log = get_logger()


def cancel_outcome(delivery: Delivery, deps: Deps) -> Outcome | None:
    """The answer to ``delivery`` if it is a cancel message; None if it is a request."""
    try:
        cancel = parse_cancel(delivery.data)
    except RequestRejected as error:
        publisher = delivery.source.service_id if delivery.source is not None else None
        return Outcome(
            status_of(error.code),
            request_id=error.request_id or delivery.message_id,
            service_id=publisher,
            error_code=error.code,
            error_message=error.message,
        )
    if cancel is None:
        return None
    service_id = _cancelling_service(cancel, delivery, deps)
    if isinstance(service_id, Outcome):
        return service_id
    if deps.ledger is None:
        return _refused(
            cancel.request_id,
            service_id,
            ErrorCode.CONFIGURATION_ERROR,
            "this worker keeps no schedules: it runs without a request ledger",
        )
    try:
        return cancel_schedule(deps.ledger, LedgerKey(service_id, cancel.request_id))
    except LedgerUnavailable as error:
        log.warning("request ledger unavailable; the cancel is retried", error=str(error)[:300])
        deps.report(service_id, failed=True)
        return Outcome(
            Status.RETRY,
            request_id=cancel.request_id,
            service_id=service_id,
            error_code=ErrorCode.LEDGER_UNAVAILABLE,
            error_message="the request ledger could not be reached; nothing was cancelled",
        )


def cancel_schedule(ledger: Ledger, key: LedgerKey) -> Outcome:
    """Cancel ``key``'s scheduled request; the outcome says whether it was. Raises
    LedgerUnavailable."""
    answer, _ = schedules_of(ledger).cancel(key)
    if answer is CancelAnswer.CANCELLED:
        log.info(
            "scheduled request cancelled", request_id=key.request_id, service_id=key.service_id
        )
        return cancelled_outcome(key.service_id, key.request_id)
    if answer is CancelAnswer.TOO_LATE:
        log.warning(
            "cancel too late: the request was sent, or is being sent",
            request_id=key.request_id,
            service_id=key.service_id,
        )
        return _refused(
            key.request_id,
            key.service_id,
            ErrorCode.CANCEL_TOO_LATE,
            "too late to cancel: the request was sent, or is being sent",
        )
    return _refused(
        key.request_id,
        key.service_id,
        ErrorCode.SCHEDULE_NOT_FOUND,
        f"service {key.service_id!r} has no scheduled request with this request_id",
    )


def _cancelling_service(cancel: CancelRequest, delivery: Delivery, deps: Deps) -> str | Outcome:
    """The service whose schedule the cancel may touch: its publisher's, as for requests."""
    source = delivery.source
    if deps.settings.services.per_service:
        if source is None or source.kind is not SourceKind.SERVICE or source.service_id is None:
            # Nobody it could be answered to: the operators' business (a dead letter, a log).
            refused = _refused(
                cancel.request_id,
                None,
                ErrorCode.PUBLISHER_NOT_ALLOWED,
                "a cancel is taken only from a service's own topic",
            )
            return replace(refused, service_confirmed=False)
        publisher = source.service_id
    else:
        publisher = cancel.service_id or deps.settings.services.default_id or ""
    if cancel.service_id is not None and cancel.service_id != publisher:
        return _refused(
            cancel.request_id,
            publisher,
            ErrorCode.PUBLISHER_NOT_ALLOWED,
            f"the cancel names service {cancel.service_id!r} but was published to "
            f"the topic of service {publisher!r}; a service cancels only its own",
        )
    if publisher not in deps.settings.services.allowed:
        return _refused(
            cancel.request_id,
            publisher or None,
            ErrorCode.UNKNOWN_SERVICE,
            "the cancel's service is not allowed to send through this worker",
        )
    return publisher


def _refused(request_id: str, service_id: str | None, code: ErrorCode, message: str) -> Outcome:
    return Outcome(
        status_of(code),
        request_id=request_id,
        service_id=service_id,
        error_code=code,
        error_message=message,
    )
