"""What the pipeline's steps pass along: a delivery in, an outcome out, and the deps they use.

The steps (:mod:`~worker.processing.admission`, :mod:`~worker.processing.send_request`,
:mod:`~worker.processing.under_claim`, composed by :mod:`~worker.processing.pipeline`) import
these from here; everything else imports them from :mod:`worker.processing`. :class:`Deps` is
kept in :mod:`~worker.processing.deps` and imported from here too.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from worker.config.logs import get_logger
from worker.formats.request import EmailRequest
from worker.formats.result import ErrorCode
from worker.ledger import LedgerUnavailable
from worker.processing.deps import Deps
from worker.processing.tenancy import Source

__all__ = [
    "DAILY_CAP_HELD",
    "Delivery",
    "Deps",
    "LedgerEvent",
    "Outcome",
    "Status",
    "report_ledger_unavailable",
    "status_of",
    "tenant_held",
]

log = get_logger()

#: The error message of a request held by SES's 24-hour cap (the metrics tell it apart).
DAILY_CAP_HELD = "SES's 24-hour sending quota is used up; the request waits in Pub/Sub"


@dataclass(frozen=True)
class Delivery:
    """One Pub/Sub message as a transport received it. The repr leaves out the data."""

    data: bytes = field(repr=False)
    attributes: Mapping[str, str] = field(repr=False)
    message_id: str
    delivery_attempt: int | None = None
    #: The subscription's word on who published it (:mod:`worker.processing.tenancy`); None:
    #: unknown, which only shared tenancy accepts.
    source: Source | None = None
    #: A scheduled request the dispatcher took from the ledger at its time: send it now.
    scheduled: bool = False
    #: Whether the transport can keep the message while it waits (pull): a service over its
    #: share of the worker's threads is then held outside the send-rate limiter.
    may_hold: bool = False
    #: Whether a held request is deferred into the ledger's schedule records and its message
    #: acked (push, which cannot keep a message: :mod:`worker.processing.deferral`).
    defer_held: bool = False


class Status(enum.StrEnum):
    SENT = "sent"
    REJECTED = "rejected"  # the request is bad; the requester must change it
    FAILED = "failed"  # the provider refused it, or sending is impossible for now
    RETRY = "retry"  # transient trouble outlasted this delivery's retries; try a later one
    # Another delivery of the same request holds the ledger's claim and is sending it; this
    # one reports nothing and comes back later, to find the result.
    IN_PROGRESS = "in_progress"
    # Transient trouble while the outage breaker holds (worker.processing.breaker), or a
    # delivery it did not let start: kept back for after the outage, not retried now. Also
    # a request held by a daily cap or a paused SES tenant (a push is then deferred into
    # the ledger's schedule records: worker.processing.deferral).
    HELD = "held"
    # Scheduled sending (worker.processing.scheduling, .cancelling): kept for its send_at
    # (not final); cancelled (final); a cancel that could not cancel (not about the request).
    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"
    CANCEL_REFUSED = "cancel_refused"


def tenant_held(outcome: Outcome) -> bool:
    """Whether ``outcome`` is a request given back, or held, because SES paused its service's
    tenant (:mod:`worker.processing.tenant_pauses`): the only retry or hold that carries
    ``sending_paused``."""
    return (
        outcome.status in (Status.RETRY, Status.HELD)
        and outcome.error_code == ErrorCode.SENDING_PAUSED
    )


def status_of(code: str) -> Status:
    """The documented status of an error code: the request's fault, or not."""
    return Status(ErrorCode(code).status.value)


class LedgerEvent(enum.StrEnum):
    """What the request ledger said about a delivery (the ``ledger`` log field)."""

    CLAIMED = "claimed"  # first delivery to claim the request: processed
    REPLAYED = "replayed"  # already finished: the stored result is published again, no send
    TAKEOVER = "takeover"  # an earlier claim expired mid-send: processed again (or failed)
    CONFLICT = "conflict"  # the request_id was used for different content
    BUSY = "busy"  # another delivery holds a live claim
    UNAVAILABLE = "unavailable"  # the ledger could not be reached: nothing sent


@dataclass(frozen=True)
class Outcome:
    """What became of one delivery."""

    status: Status
    request_id: str
    service_id: str | None = None
    message_ids: tuple[str, ...] = ()
    error_code: str | None = None
    error_message: str | None = None
    recipient_count: int = 0
    retries: int = 0
    #: Time spent waiting for EMAIL_WORKER_SEND_RATE_PER_S.
    send_rate_wait_s: float = 0.0
    #: SES SendEmail calls this delivery made (first batches; the session retries later
    #: batches itself), and how many of them SES answered with throttling.
    ses_calls: int = 0
    ses_throttled: int = 0
    #: What the request ledger said; None without a ledger or before the request was known.
    ledger: LedgerEvent | None = None
    #: Whether ``service_id`` is known to have published the request (its own topic, shared
    #: tenancy's trusted body, or a replay the ledger confirmed). False: a replay refused
    #: before that, whose result would reach a service that may never have asked for it.
    service_confirmed: bool = True
    #: The template the request rendered (name, version, language), once resolved.
    template: tuple[str, int, str] | None = None
    #: For SCHEDULED: when it will be sent (RFC 3339 UTC).
    send_at: str | None = None
    #: Why a HELD delivery waits when no outage holds it: "share" (its service holds its
    #: share of the send-rate limiter's places) or "daily_cap" (its max_per_day is reached).
    held_for: str | None = None
    #: How long a HELD delivery should wait before it is processed again (at least).
    hold_s: float = 0.0
    #: For a HELD request deferred into the ledger's schedule records: when it is due again
    #: (epoch seconds). Its message is then acked (:mod:`worker.processing.deferral`).
    deferred_until: float | None = None

    @classmethod
    def for_request(
        cls,
        request: EmailRequest,
        status: Status,
        *,
        message_ids: tuple[str, ...] = (),
        error_code: str | None = None,
        error_message: str | None = None,
        retries: int = 0,
        send_rate_wait_s: float = 0.0,
        ledger: LedgerEvent | None = None,
        recipient_count: int | None = None,
    ) -> Outcome:
        """An outcome of a valid ``request``: its id, its service and (unless given) its
        recipient count."""
        return cls(
            status,
            request_id=request.request_id,
            service_id=request.service_id,
            message_ids=message_ids,
            error_code=error_code,
            error_message=error_message,
            recipient_count=request.recipient_count if recipient_count is None else recipient_count,
            retries=retries,
            send_rate_wait_s=send_rate_wait_s,
            ledger=ledger,
            template=_template_used(request),
        )

    @classmethod
    def refused(
        cls,
        request: EmailRequest,
        code: str,
        message: str,
        *,
        ledger: LedgerEvent | None = None,
    ) -> Outcome:
        """``request`` not sent, for the reason ``code`` names (with its documented status)."""
        return cls.for_request(
            request, status_of(code), error_code=code, error_message=message, ledger=ledger
        )

    @classmethod
    def handed_back(
        cls, request: EmailRequest, *, retries: int = 0, send_rate_wait_s: float = 0.0
    ) -> Outcome:
        """``request`` handed back unsent by a stopping worker (its claim, if any, released)."""
        return cls.for_request(
            request,
            Status.RETRY,
            error_code=ErrorCode.WORKER_STOPPED,
            error_message="the worker stopped before sending this request; it was handed back "
            "unsent",
            retries=retries,
            send_rate_wait_s=send_rate_wait_s,
        )

    @classmethod
    def waiting(cls, request: EmailRequest, held_for: str, *, hold_s: float) -> Outcome:
        """``request`` not started: kept (pull) or handed back (push) until its turn comes."""
        return replace(
            cls.for_request(request, Status.HELD), held_for=held_for, hold_s=max(hold_s, 0.0)
        )


def _template_used(request: EmailRequest) -> tuple[str, int, str] | None:
    """The template of ``request`` once its version and language are known."""
    ref = request.template
    if ref is None or ref.version is None or ref.language is None:
        return None
    return ref.name, ref.version, ref.language


def report_ledger_unavailable(
    request: EmailRequest,
    deps: Deps,
    error: LedgerUnavailable,
    *,
    ledger: LedgerEvent = LedgerEvent.UNAVAILABLE,
) -> Outcome:
    """Log and report to the breaker that the ledger could not be reached; the outcome:
    nothing sent, handed back."""
    log.warning("request ledger unavailable; nothing sent", error=str(error)[:300])
    deps.report(request.service_id, failed=True)
    return Outcome.for_request(
        request,
        Status.RETRY,
        error_code=ErrorCode.LEDGER_UNAVAILABLE,
        error_message="the request ledger could not be reached; the request was not sent",
        ledger=ledger,
    )
