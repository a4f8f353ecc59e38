"""The send step's checks, run when a scheduled request arrives rather than on its day.

:func:`check_sendable` applies what :func:`~worker.processing.send_request.send_request`
would decide before its SES call, without sending or reading attachment bytes: the template
renders with the request's data, the service's configuration loads, the sender is allowed,
the ``gs://`` attachments are under the service's prefixes, exist, and are not too big, and the
message builds. A request that could never be sent is refused at once.
"""

from __future__ import annotations

from worker.formats.message import build_message, resolve_sender
from worker.formats.request import AttachmentRef, EmailRequest, RequestRejected
from worker.formats.result import ErrorCode
from worker.processing.admission import sender_allowed
from worker.processing.attachment_reads import _check_size
from worker.processing.delivery import Deps, Outcome
from worker.processing.send_request import _attachments_refused, _failure, _rendered
from worker.sending.errors import EmailError

__all__ = ["check_sendable"]


def check_sendable(request: EmailRequest, deps: Deps) -> Outcome | None:
    """None if ``request`` passes every check before the SES call; else the outcome that
    refuses it (or hands it back, when a store or STS is unreachable for now)."""
    if request.template is not None:
        rendered = _rendered(request, deps, None)
        if isinstance(rendered, Outcome):
            return rendered
        request = rendered
    try:
        session = deps.sessions.get(request.service_id)
    except EmailError as error:
        deps.report(request.service_id, failed=error.retryable)
        return _failure(request, error, retries=0)
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
            return _attachments_refused(request, config) or _attachments_checked(request, deps)
        build_message(request, default_from=default_from, sender=sender)
    except RequestRejected as error:
        return Outcome.refused(request, error.code, error.message)
    return None


def _attachments_checked(request: EmailRequest, deps: Deps) -> Outcome | None:
    """Each ``gs://`` attachment exists and, with the others, fits SES's size limit."""
    try:
        versions = [
            deps.send_retrying(
                deps.attachment_store.describe,
                attachment.location.bucket,
                attachment.location.name,
                f"attachments[{index}]",
            )
            for index, attachment in enumerate(request.attachments)
            if isinstance(attachment, AttachmentRef)
        ]
        _check_size(request, versions)
    except EmailError as error:
        return _failure(request, error, retries=0)
    return None
