"""The start-up checks of the retry budgets (worker/config/budget.py): do the subscription's
delivery attempts outlast a dead delivery's claim, the Send-event wait and an outage (``pull``
and ``serve``), and does a push subscription's ack deadline cover one delivery (``serve``)?

A budget that cannot hold is an invalid setting, found by
:func:`~worker.app.checks.settings_problems` before the command starts; one that cannot be
judged because its settings are not given is a warning, logged once the command runs.
"""

from __future__ import annotations

from worker.config.budget import push_budget_s, redelivery_needed_s, redelivery_problem
from worker.config.logs import get_logger
from worker.config.settings import Settings

__all__ = [
    "short_redelivery_problem",
    "warn_if_push_budget_unchecked",
    "warn_if_redelivery_unchecked",
]

log = get_logger()


def short_redelivery_problem(settings: Settings) -> str | None:
    """Why the retry settings cannot hold (an invalid setting: the command exits 2), or None
    when they hold or are not all given (see :func:`warn_if_redelivery_unchecked`)."""
    attempts = settings.redelivery.max_delivery_attempts
    low, high = settings.redelivery.min_backoff_s, settings.redelivery.max_backoff_s
    if attempts is None or low is None or high is None:
        return None
    return redelivery_problem(
        max_delivery_attempts=attempts,
        min_backoff_s=low,
        max_backoff_s=high,
        claim_s=settings.ledger.claim_s,
        send_event_wait_s=settings.ledger.send_event_wait_s,
        outage_allowance_s=settings.redelivery.outage_allowance_s,
    )


def warn_if_redelivery_unchecked(settings: Settings) -> None:
    """Log a warning naming the retry settings that are not given, and what they must
    cover, when the start-up check could not judge them."""
    unset = [
        name
        for name, value in (
            ("EMAIL_WORKER_MAX_DELIVERY_ATTEMPTS", settings.redelivery.max_delivery_attempts),
            ("EMAIL_WORKER_RETRY_MIN_BACKOFF_S", settings.redelivery.min_backoff_s),
            ("EMAIL_WORKER_RETRY_MAX_BACKOFF_S", settings.redelivery.max_backoff_s),
        )
        if value is None
    ]
    if not unset:
        return
    log.warning(
        "the subscription's retry settings are not all given: cannot check that its "
        "delivery attempts outlast an outage",
        unset=unset,
        needed_s=redelivery_needed_s(
            claim_s=settings.ledger.claim_s,
            send_event_wait_s=settings.ledger.send_event_wait_s,
            outage_allowance_s=settings.redelivery.outage_allowance_s,
        ),
    )


def warn_if_push_budget_unchecked(settings: Settings) -> None:
    """Log a warning with the ack deadline one push needs when EMAIL_WORKER_PUSH_ACK_DEADLINE_S
    is not given (a push answered after its deadline is delivered again while it may still be
    sending)."""
    if settings.push.ack_deadline_s is not None:
        return
    log.warning(
        "EMAIL_WORKER_PUSH_ACK_DEADLINE_S is not set: cannot check that the push "
        "subscription's ack deadline covers one delivery",
        needed_s=push_budget_s(
            send_deadline_s=settings.sending.deadline_s,
            publish_timeout_s=settings.process.publish_timeout_s,
            send_rate_limited=settings.sending.rate_per_s is not None,
        ),
    )
