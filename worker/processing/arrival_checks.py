"""The send step's checks, run when a scheduled request arrives rather than on its day.

:func:`check_sendable` applies what :func:`~worker.processing.send_request.send_request`
would decide before its SES call (the same steps, from :mod:`worker.processing.send_checks`),
without sending or reading attachment bytes: the template renders with the request's data,
the service's configuration loads, the sender is allowed, the ``gs://`` attachments are under
the service's prefixes, exist, and are not too big, and the message builds. A request that
could never be sent is refused at once.
"""

from __future__ import annotations

from worker.formats.message import build_message
from worker.formats.request import EmailRequest, RequestRejected
from worker.processing.attachment_reads import checked_size, described_attachments
from worker.processing.delivery import Deps, Outcome
from worker.processing.send_checks import (
    allowed_sender,
    attachments_refused,
    failure,
    rendered,
    session_for,
)
from worker.sending.errors import EmailError

__all__ = ["check_sendable"]


def check_sendable(request: EmailRequest, deps: Deps) -> Outcome | None:
    """None if ``request`` passes every check before the SES call; else the outcome that
    refuses it (or hands it back, when a store or STS is unreachable for now)."""
    if request.template is not None:
        templated = rendered(request, deps, None)
        if isinstance(templated, Outcome):
            return templated
        request = templated
    session = session_for(request, deps)
    if isinstance(session, Outcome):
        return session
    config = session.service_config
    sender = allowed_sender(request, config)
    if isinstance(sender, Outcome):
        return sender
    if request.attachment_refs:
        return attachments_refused(request, config) or _attachments_checked(request, deps)
    try:
        build_message(request, sender=sender)
    except RequestRejected as error:
        return Outcome.refused(request, error.code, error.message)
    return None


def _attachments_checked(request: EmailRequest, deps: Deps) -> Outcome | None:
    """Each ``gs://`` attachment exists and, with the others, fits SES's size limit."""
    try:
        checked_size(request, described_attachments(request, deps))
    except EmailError as error:
        return failure(request, error, retries=0)
    return None
