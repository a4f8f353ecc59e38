"""The start-up check ``pull`` and ``serve`` share: do the subscription's delivery attempts
outlast a dead delivery's claim, the Send-event wait and an outage (worker/config/budget.py)?
"""

from __future__ import annotations

import sys

from worker.config.budget import redelivery_needed_s, redelivery_problem
from worker.config.logs import get_logger
from worker.config.settings import Settings

__all__ = ["refuse_short_redelivery"]

log = get_logger()


def refuse_short_redelivery(settings: Settings) -> bool:
    """Log and print why the retry settings cannot hold, and return True (the caller exits
    2, as for any invalid setting); False when they hold, or when they are not all given
    (then a warning says what the subscription needs)."""
    attempts = settings.max_delivery_attempts
    low, high = settings.retry_min_backoff_s, settings.retry_max_backoff_s
    needed_s = redelivery_needed_s(
        claim_s=settings.ledger_claim_s,
        send_event_wait_s=settings.send_event_wait_s,
        outage_allowance_s=settings.outage_allowance_s,
    )
    if attempts is None or low is None or high is None:
        unset = [
            name
            for name, value in (
                ("EMAIL_WORKER_MAX_DELIVERY_ATTEMPTS", attempts),
                ("EMAIL_WORKER_RETRY_MIN_BACKOFF_S", low),
                ("EMAIL_WORKER_RETRY_MAX_BACKOFF_S", high),
            )
            if value is None
        ]
        log.warning(
            "the subscription's retry settings are not all given: cannot check that its "
            "delivery attempts outlast an outage",
            unset=unset,
            needed_s=needed_s,
        )
        return False
    problem = redelivery_problem(
        max_delivery_attempts=attempts,
        min_backoff_s=low,
        max_backoff_s=high,
        claim_s=settings.ledger_claim_s,
        send_event_wait_s=settings.send_event_wait_s,
        outage_allowance_s=settings.outage_allowance_s,
    )
    if problem is None:
        return False
    log.error("cannot start", detail=problem)
    print(f"email-worker: invalid settings:\n  {problem}", file=sys.stderr)
    return True
