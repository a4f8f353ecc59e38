"""The send step: one admitted request to SES, retried, paced, reported and stoppable.

:func:`send_request` loads the service's session, applies its sender rule, builds the message
and sends it: retried on transient failures by the one retry policy
(:mod:`worker.sending.retry_policy`, as ``Deps.send_retrying``), paced by the worker's own
send rate, each SES call reported to the outage breaker, and handed back unsent if the worker
stops before the SES call begins.
"""

from __future__ import annotations

from dataclasses import replace
from email.message import EmailMessage

from worker.formats.addresses import Mailbox
from worker.formats.message import build_message, resolve_sender
from worker.formats.request import EmailRequest, RequestRejected
from worker.formats.result import ErrorCode
from worker.ledger import LedgerUnavailable
from worker.processing.admission import forbidden_attachment, over_daily_cap, sender_allowed
from worker.processing.attachment_reads import read_attachments
from worker.processing.delivery import (
    Deps,
    Outcome,
    Status,
    report_ledger_unavailable,
    status_of,
)
from worker.processing.held_claims import ClaimLost, HeldClaim
from worker.processing.template_versions import template_version
from worker.sending.errors import EmailError, TenantPausedError, ThrottledError
from worker.sending.service_config import ServiceConfig
from worker.sending.ses_session import BaseSession

__all__ = ["send_request"]


def send_request(request: EmailRequest, deps: Deps, held: HeldClaim | None = None) -> Outcome:
    """Resolve the service's session, check the sender, build the message and send it
    (under ``held``, the delivery's claim, if the ledger is on), unless it would take the
    service past its max_per_day. A request naming a template is rendered first."""
    if request.template is not None:
        rendered = _rendered(request, deps, held)
        if isinstance(rendered, Outcome):
            return rendered
        request = rendered
    try:
        session = deps.sessions.get(request.service_id)
    except EmailError as error:
        deps.report(request.service_id, failed=error.retryable)
        return _failure(request, error, retries=0)
    capped = over_daily_cap(request, session.service_config, deps)
    if capped is not None:
        return capped
    sent = False
    try:
        outcome = _checked_and_sent(request, session, deps, held)
        sent = bool(outcome.message_ids)
        return outcome
    finally:
        if deps.daily_counts is not None:
            deps.daily_counts.settle(request.service_id, request.recipient_count, sent=sent)


def _checked_and_sent(
    request: EmailRequest, session: BaseSession, deps: Deps, held: HeldClaim | None
) -> Outcome:
    """Apply the service's sender and attachment rules, build the message and send it."""
    config = session.service_config
    default_from = config.default_from_address if config is not None else None
    try:
        sender = resolve_sender(request, default_from)
        if config is not None and not sender_allowed(sender, config):
            return Outcome.refused(
                request,
                ErrorCode.SENDER_NOT_ALLOWED,
                f"service {request.service_id!r} may not send from the domain {sender.domain!r}",
            )
        if request.attachment_refs:
            refused = _attachments_refused(request, config)
            return refused or _send_with_read_attachments(request, session, sender, deps, held)
        message = build_message(request, default_from=default_from, sender=sender)
    except RequestRejected as error:
        return Outcome.refused(request, error.code, error.message)
    return _send_with_retries(request, session, message, deps, held)


def _send_with_read_attachments(
    request: EmailRequest,
    session: BaseSession,
    sender: Mailbox,
    deps: Deps,
    held: HeldClaim | None,
) -> Outcome:
    """Read the gs:// attachments (pinned, within the memory budget), then build and send."""
    try:
        with read_attachments(request, deps, held) as complete:
            try:
                message = build_message(complete, sender=sender)
            except RequestRejected as error:
                return Outcome.refused(request, error.code, error.message)
            del complete  # its bytes are in the message now: not held twice while it is sent
            return _send_with_retries(request, session, message, deps, held)
    except EmailError as error:
        return _failure(request, error, retries=0)
    except ClaimLost:
        return Outcome.handed_back(request)
    except LedgerUnavailable as error:
        return report_ledger_unavailable(request, deps, error)


def _attachments_refused(request: EmailRequest, config: ServiceConfig | None) -> Outcome | None:
    """The refusal of a request naming a gs:// object outside its service's prefixes, decided
    before anything is read."""
    index = forbidden_attachment(request, config)
    if index is None:
        return None
    return Outcome.refused(
        request,
        ErrorCode.ATTACHMENT_FORBIDDEN,
        f"attachments[{index}].gcs is not under one of service {request.service_id!r}'s "
        "attachment_prefixes",
    )


def _rendered(request: EmailRequest, deps: Deps, held: HeldClaim | None) -> EmailRequest | Outcome:
    """``request`` with its template's subject, text and HTML, and its version and language
    resolved; or the outcome that refuses it (or hands it back, if storage is unreachable)."""
    # Imported here: the template modules load Jinja2, and only template requests need them.
    from worker.sending.template_render import TemplateDataInvalid, TemplateRenderFailed
    from worker.sending.template_store import TemplateNotFound

    ref = request.template
    assert ref is not None
    library = deps.template_library
    try:
        version = template_version(request, deps, held)
        language = ref.language or version.default_language
        request = replace(
            request, template=replace(ref, version=version.version, language=language)
        )
        rendered = library.render(version, ref.data, language)
    except TemplateNotFound as error:
        return Outcome.refused(request, ErrorCode.TEMPLATE_NOT_FOUND, str(error))
    except TemplateDataInvalid as error:
        return Outcome.refused(
            request, ErrorCode.TEMPLATE_DATA_INVALID, f"template {ref.name!r}: {error}"
        )
    except TemplateRenderFailed as error:
        return Outcome.refused(
            request, ErrorCode.TEMPLATE_RENDER_FAILED, f"template {ref.name!r}: {error}"
        )
    except EmailError as error:  # storage unreachable (retried later) or misconfigured
        return _failure(request, error, retries=0)
    except ClaimLost:
        return Outcome.handed_back(request)
    except LedgerUnavailable as error:
        return report_ledger_unavailable(request, deps, error)
    return replace(request, subject=rendered.subject, text=rendered.text, html=rendered.html)


class _Stopped(Exception):
    """The worker is stopping and this delivery's SES call has not begun: hand it back."""


def _send_with_retries(
    request: EmailRequest,
    session: BaseSession,
    message: EmailMessage,
    deps: Deps,
    held: HeldClaim | None,
) -> Outcome:
    attempts = 0
    waited_s = 0.0
    calls = _Calls()
    config = session.service_config
    weight = config.weight if config is not None else 1.0
    try:
        for attempt in deps.send_retrying:
            with attempt:
                attempts = attempt.retry_state.attempt_number
                waited_s += _wait_for_send_rate(request, deps, weight)
                if not _may_send(deps, held):
                    raise _Stopped
                message_ids = calls.send(session, message, request.service_id, deps)
    except _Stopped:
        outcome = Outcome.handed_back(
            request, retries=max(attempts - 1, 0), send_rate_wait_s=waited_s
        )
        return calls.noted_in(outcome)
    except EmailError as error:
        outcome = _failure(request, error, retries=max(attempts - 1, 0), send_rate_wait_s=waited_s)
        return calls.noted_in(outcome)
    if deps.quota is not None:
        deps.quota.sent(request.recipient_count)
    outcome = Outcome.for_request(
        request,
        Status.SENT,
        message_ids=tuple(message_ids),
        retries=attempts - 1,
        send_rate_wait_s=waited_s,
    )
    return calls.noted_in(outcome)


class _Calls:
    """The SES calls one delivery made, and how many SES throttled (metrics and logs)."""

    def __init__(self) -> None:
        self.made = 0
        self.throttled = 0

    def send(
        self, session: BaseSession, message: EmailMessage, service_id: str, deps: Deps
    ) -> list[str]:
        self.made += 1
        try:
            return _send_once(session, message, service_id, deps)
        except ThrottledError:
            self.throttled += 1
            raise

    def noted_in(self, outcome: Outcome) -> Outcome:
        if not self.made:
            return outcome
        return replace(outcome, ses_calls=self.made, ses_throttled=self.throttled)


def _may_send(deps: Deps, held: HeldClaim | None) -> bool:
    """The last check before the SES call: after it, a stop lets the call finish."""
    if deps.stopping.is_set():
        return False
    return held is None or deps.claims.start_send(held)


def _send_once(
    session: BaseSession, message: EmailMessage, service_id: str, deps: Deps
) -> list[str]:
    """One call to SES, reported to the outage breaker."""
    try:
        message_ids = session.send_email(message)
    except Exception as error:
        # A transient error is SES's or STS's trouble; anything else is their answer.
        deps.report(service_id, failed=isinstance(error, EmailError) and error.retryable)
        if isinstance(error, TenantPausedError):
            deps.tenant_pauses.paused(service_id, getattr(session, "tenant_name", None))
        if deps.quota is not None and isinstance(error, ThrottledError):
            deps.quota.throttled_by(error)  # SES's own throttling: ours is raised earlier
        raise
    deps.report(service_id, failed=False)
    deps.tenant_pauses.sent(service_id)
    return message_ids


def _wait_for_send_rate(request: EmailRequest, deps: Deps, weight: float) -> float:
    """Wait for the send's turn at the configured rate, shared fairly between services by
    ``weight``; refuse, like SES throttling, when the wait is long. Returns the seconds
    waited."""
    if deps.send_rate is None:
        return 0.0
    wait_s = deps.send_rate.reserve(
        request.recipient_count,
        max_wait_s=deps.settings.sending.deadline_s,
        service_id=request.service_id,
        weight=weight,
        high=request.high_priority,
        stopping=deps.stopping,
    )
    if wait_s is None:
        # Retried with backoff like SES's own throttling, then handed back to Pub/Sub.
        raise ThrottledError(
            f"the worker's send rate limit ({deps.send_rate.rate_per_s:g} recipients per "
            "second, EMAIL_WORKER_SEND_RATE_PER_S) is saturated"
        )
    if deps.stopping.is_set():
        raise _Stopped  # the shutdown cut the wait short: hand it back, don't send early
    return wait_s


def _failure(
    request: EmailRequest, error: EmailError, *, retries: int, send_rate_wait_s: float = 0.0
) -> Outcome:
    """The outcome of a send that failed with ``error``: a partial send, a transient failure
    (to retry later), or the code's documented status."""
    status: Status
    code: str = error.code
    text = error.message
    if error.sent_message_ids:
        status, code = Status.FAILED, ErrorCode.PARTIALLY_SENT
        text = (
            f"{len(error.sent_message_ids)} recipient batch(es) were sent before SES failed "
            f"({error.code}); the rest were not sent, and nothing is retried to avoid duplicates"
        )
    elif error.retryable or isinstance(error, TenantPausedError):
        # A paused tenant is not the request's fault: given back (held, by the pipeline).
        status = Status.RETRY
    else:
        # The error code's documented status: the request's fault (rejected) or not (failed).
        status = status_of(code)
    return Outcome.for_request(
        request,
        status,
        message_ids=error.sent_message_ids,
        error_code=code,
        error_message=text,
        retries=retries,
        send_rate_wait_s=send_rate_wait_s,
    )
