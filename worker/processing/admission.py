"""Admission: who may send this request through this worker.

:func:`admit` turns a delivery into its valid request, or the refusal: the tenancy's rule on
who published it (a service sends only as itself; a replay only if the ledger holds the very
request), then the worker's list of services. :func:`sender_allowed` is the service's own rule
on its From address, which the send step applies once the service's configuration is loaded.
:func:`over_daily_cap` is the service's ``max_per_day``. Nothing here sends, claims or
writes.
"""

from __future__ import annotations

from dataclasses import replace

from worker.config.names import colliding_name
from worker.config.settings import Settings
from worker.formats.addresses import Mailbox, parse_mailbox
from worker.formats.pubsub import REQUEST_ID_ATTRIBUTE, SERVICE_ID_ATTRIBUTE
from worker.formats.request import AttachmentRef, EmailRequest, RequestRejected, parse_request
from worker.formats.result import ErrorCode
from worker.ledger import LedgerKey, LedgerUnavailable, ReplayVerdict, replay_verdict
from worker.processing.delivery import (
    Delivery,
    Deps,
    Outcome,
    Status,
    report_ledger_unavailable,
    status_of,
)
from worker.processing.tenancy import SourceKind
from worker.sending.service_config import ServiceConfig

__all__ = ["admit", "forbidden_attachment", "over_daily_cap", "sender_allowed"]

# The longest a request held by its service's daily cap waits before it is looked at again
# (the window moves on the hour; a raised cap is seen sooner).
_DAILY_CAP_RECHECK_S = 60.0


def admit(delivery: Delivery, deps: Deps) -> EmailRequest | Outcome:
    """The delivery's request, if it is valid and its service may send it (as its publisher,
    through this worker); otherwise the refusal. Reads the ledger for a replay."""
    settings = deps.settings
    source = delivery.source
    if settings.services.per_service and (source is None or source.kind is SourceKind.SHARED):
        # A transport that cannot say where a delivery came from must not get a body trusted.
        return Outcome(
            Status.REJECTED,
            request_id=delivery.message_id,
            error_code=ErrorCode.PUBLISHER_NOT_ALLOWED,
            error_message="the request did not come through a service's own topic",
        )
    replay = source is not None and source.kind is SourceKind.REPLAY
    request = _parsed(delivery, settings)
    if replay and isinstance(request, EmailRequest):
        refused = _unrecognised_replay(request, delivery, deps)
        request = request if refused is None else refused
    if replay and isinstance(request, Outcome):
        # A replay's service is only claimed until the ledger confirms it: its refusal is
        # the operators' business (dead letters, logs), not that service's.
        return replace(request, service_confirmed=False)
    return request


def _parsed(delivery: Delivery, settings: Settings) -> EmailRequest | Outcome:
    """The delivery's request, if it is valid and its service may send (as its publisher,
    through this worker); otherwise the refusal."""
    source = delivery.source
    default_service_id = settings.services.default_id
    fallback_request_id = delivery.message_id
    # The service whose own topic the request came through, if it did.
    publisher = source.service_id if source is not None else None
    if publisher is not None:
        default_service_id = publisher
    elif source is not None and source.kind is SourceKind.REPLAY:
        # A replayed dead letter: what the worker made of the original, which the ledger
        # check confirms or refutes.
        default_service_id = delivery.attributes.get(SERVICE_ID_ATTRIBUTE) or None
        fallback_request_id = delivery.attributes.get(REQUEST_ID_ATTRIBUTE) or fallback_request_id
    try:
        request = parse_request(
            delivery.data,
            pubsub_message_id=fallback_request_id,
            default_service_id=default_service_id,
        )
    except RequestRejected as error:
        return Outcome(
            status_of(error.code),
            request_id=error.request_id or delivery.message_id,
            # The result is its publisher's, whatever service the request claims.
            service_id=publisher or error.service_id,
            error_code=error.code,
            error_message=error.message,
        )
    if publisher is not None and request.service_id != publisher:
        return replace(
            Outcome.refused(
                request,
                ErrorCode.PUBLISHER_NOT_ALLOWED,
                f"the request names service {request.service_id!r} but was published to the "
                f"topic of service {publisher!r}; a service sends only as itself",
            ),
            service_id=publisher,
        )
    if (
        request.service_id not in settings.services.allowed
        # Settings from the environment never allow such a service; this guards the rest.
        or colliding_name(settings, request.service_id) is not None
    ):
        return Outcome.refused(
            request,
            ErrorCode.UNKNOWN_SERVICE,
            f"service {request.service_id!r} is not allowed to send through this worker",
        )
    return request


def _unrecognised_replay(request: EmailRequest, delivery: Delivery, deps: Deps) -> Outcome | None:
    """Refuse a replay unless the ledger holds this very request from this service.

    Anyone may publish to the replay topic; only the services may publish to their own. The
    rule is :func:`worker.ledger.replay_verdict`, which ``email-worker dlq replay`` checks too.
    """
    unrecognised = Outcome.refused(
        request,
        ErrorCode.PUBLISHER_NOT_ALLOWED,
        f"a replay is sent only if it is a request the worker received from service "
        f"{request.service_id!r}; the request ledger holds no such request",
    )
    ledger = deps.ledger
    if ledger is None:
        return unrecognised
    try:
        record = ledger.get(LedgerKey(request.service_id, request.request_id))
    except LedgerUnavailable as error:
        return report_ledger_unavailable(request, deps, error)
    if replay_verdict(record, delivery.data) is not ReplayVerdict.VOUCHED:
        return unrecognised
    return None


def sender_allowed(sender: Mailbox, config: ServiceConfig) -> bool:
    """From must be the service's default address or in one of its allowed domains."""
    if config.default_from_address:
        default = parse_mailbox(config.default_from_address, field_name="default From")
        if sender.address.lower() == default.address.lower():
            return True
    return sender.domain in config.allowed_from_domains


def forbidden_attachment(request: EmailRequest, config: ServiceConfig | None) -> int | None:
    """The index in ``request.attachments`` of the first ``gs://`` attachment outside the
    service's ``attachment_prefixes`` (all are, without a configuration), or None."""
    prefixes = config.attachment_prefixes if config is not None else ()
    for index, attachment in enumerate(request.attachments):
        if isinstance(attachment, AttachmentRef) and not any(
            attachment.location.is_within(prefix) for prefix in prefixes
        ):
            return index
    return None


def over_daily_cap(
    request: EmailRequest, config: ServiceConfig | None, deps: Deps
) -> Outcome | None:
    """What becomes of ``request`` if it would take its service past its ``max_per_day`` in
    ``config`` (held until the window moves, or refused with ``daily_cap_reached``). None: it
    may be sent, and its recipients are set aside in ``deps.daily_counts`` (if any), which
    the caller must settle once it is sent or not."""
    counts = deps.daily_counts
    if counts is None:
        return None
    service_id, recipients = request.service_id, request.recipient_count
    cap = config.max_per_day if config is not None else None
    try:
        sent = counts.take(service_id, recipients, cap)
    except LedgerUnavailable:
        # The claim that follows meets the same trouble and reports it.
        sent = counts.take(service_id, recipients, None)
    if sent is None:
        return None
    assert config is not None
    assert cap is not None
    reason = (
        f"service {service_id!r} may send {cap} recipients a day (max_per_day) and sent "
        f"{sent} in the last 24 hours; this request has {recipients}"
    )
    if config.over_daily_cap == "reject" or recipients > cap:
        return Outcome.refused(request, ErrorCode.DAILY_CAP_REACHED, reason)
    wait_s = min(counts.seconds_until_the_window_moves(), _DAILY_CAP_RECHECK_S)
    # The code is reported only if push's last delivery attempt finds it still waiting.
    return replace(
        Outcome.waiting(request, "daily_cap", hold_s=wait_s),
        error_code=ErrorCode.DAILY_CAP_REACHED,
        error_message=reason,
    )
