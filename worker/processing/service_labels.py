"""Which service ids may become a metric's label or a per-service counter's key.

A request's ``service_id`` can come from its body, so a refused request's id is anyone's
choice: as a label it would grow the metrics without bound. An id may be used once this worker
vouches for it: it is one of the services the worker sends for, or the delivery was admitted
to send (it waited for the send rate or called SES, which only an allowed service does).
"""

from __future__ import annotations

from collections.abc import Container

from worker.processing.delivery import Outcome

__all__ = ["vouched_service"]


def vouched_service(outcome: Outcome, allowed: Container[str] = frozenset()) -> str | None:
    """``outcome``'s service id if it may be a label or key, given the services ``allowed``
    here (none known: only a delivery admitted to send vouches for its service); else None."""
    service = outcome.service_id
    if service is None:
        return None
    if outcome.ses_calls or outcome.send_rate_wait_s or service in allowed:
        return service
    return None
