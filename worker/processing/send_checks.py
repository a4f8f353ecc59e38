"""The checks of the send step, shared by the send itself and by a scheduled request's arrival.

Each turns one step of :func:`~worker.processing.send_request.send_request` before its SES
call into data: the value the next step needs, or the :class:`Outcome` that refuses the
request (or hands it back, when a store, STS or the ledger is unreachable for now).
:func:`~worker.processing.arrival_checks.check_sendable` runs the same steps when a scheduled
request arrives, so that one that could never be sent is refused at once.
"""

from __future__ import annotations

from dataclasses import replace

from worker.formats.addresses import Mailbox
from worker.formats.message import resolve_sender
from worker.formats.request import EmailRequest, RequestRejected
from worker.formats.result import ErrorCode
from worker.ledger import LedgerUnavailable
from worker.processing.admission import forbidden_attachment, sender_allowed
from worker.processing.delivery import Deps, Outcome, Status, report_ledger_unavailable, status_of
from worker.processing.held_claims import ClaimLost, HeldClaim
from worker.processing.template_versions import template_version
from worker.sending.errors import EmailError, TenantPausedError
from worker.sending.service_config import ServiceConfig
from worker.sending.ses_session import BaseSession

__all__ = [
    "allowed_sender",
    "attachments_refused",
    "failure",
    "rendered",
    "session_for",
]


def session_for(request: EmailRequest, deps: Deps) -> BaseSession | Outcome:
    """The service's SES session, or the outcome of failing to load it (its configuration
    missing or invalid, or unreachable for now: reported to the outage breaker)."""
    try:
        return deps.sessions.get(request.service_id)
    except EmailError as error:
        deps.report(request.service_id, failed=error.retryable)
        return failure(request, error, retries=0)


def allowed_sender(request: EmailRequest, config: ServiceConfig | None) -> Mailbox | Outcome:
    """The request's sender (its From, else the service's default), or the refusal of one
    that is missing, invalid or outside the service's allowed domains."""
    default_from = config.default_from_address if config is not None else None
    try:
        sender = resolve_sender(request, default_from)
    except RequestRejected as error:
        return Outcome.refused(request, error.code, error.message)
    if config is not None and not sender_allowed(sender, config):
        return Outcome.refused(
            request,
            ErrorCode.SENDER_NOT_ALLOWED,
            f"service {request.service_id!r} may not send from the domain {sender.domain!r}",
        )
    return sender


def attachments_refused(request: EmailRequest, config: ServiceConfig | None) -> Outcome | None:
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


def rendered(request: EmailRequest, deps: Deps, held: HeldClaim | None) -> EmailRequest | Outcome:
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
        return failure(request, error, retries=0)
    except ClaimLost:
        return Outcome.handed_back(request)
    except LedgerUnavailable as error:
        return report_ledger_unavailable(request, deps, error)
    return replace(request, subject=rendered.subject, text=rendered.text, html=rendered.html)


def failure(
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
