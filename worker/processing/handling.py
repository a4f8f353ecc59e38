"""The transport-independent handling of one delivery: process, decide, settle, log."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import structlog

from worker.config.logs import get_logger
from worker.processing.decisions import decide
from worker.processing.metrics import Metrics
from worker.processing.outputs import Outputs
from worker.processing.pauses import PauseWatch
from worker.processing.pipeline import Delivery, Deps, Outcome, process

__all__ = ["Handler"]

log = get_logger()


class Handler:
    """Everything a transport needs: call it with a decoded delivery and its ack/nack."""

    def __init__(
        self,
        deps: Deps,
        outputs: Outputs,
        *,
        max_delivery_attempts: int | None,
        metrics: Metrics | None = None,
        pauses: PauseWatch | None = None,
    ) -> None:
        self.deps = deps
        #: The operators' pauses, which the transports honour (None: no ledger, no pauses).
        self.pauses = pauses
        self.outputs = outputs
        self.max_delivery_attempts = max_delivery_attempts
        self.metrics = metrics if metrics is not None else Metrics()

    @property
    def stopping(self) -> threading.Event:
        """Set on shutdown: transports take no new deliveries, and deliveries not yet inside
        their SES call are handed back, their claims released."""
        return self.deps.stopping

    def release_unsent_claims(self) -> int:
        """For a worker exiting with deliveries unfinished: give back the ledger claims of
        those not yet inside their SES call (they will not start it); return how many."""
        return self.deps.claims.release_unsent()

    def __call__(
        self, delivery: Delivery, *, ack: Callable[[], None], nack: Callable[[], None]
    ) -> Outcome:
        started = time.monotonic()
        with (
            self.metrics.in_flight.track_inprogress(),
            structlog.contextvars.bound_contextvars(
                pubsub_message_id=delivery.message_id, delivery_attempt=delivery.delivery_attempt
            ),
        ):
            outcome = process(delivery, self.deps)
            processed_s = time.monotonic() - started
            decision = decide(
                outcome,
                delivery_attempt=delivery.delivery_attempt,
                max_delivery_attempts=self.max_delivery_attempts,
            )
            acked = self.outputs.settle(delivery, outcome, decision, ack=ack, nack=nack)
            log.info(
                "request processed",
                request_id=outcome.request_id,
                service_id=outcome.service_id,
                outcome=outcome.status.value,
                error_code=outcome.error_code,
                message_ids=list(outcome.message_ids),
                recipient_count=outcome.recipient_count,
                retries=outcome.retries,
                send_rate_wait_ms=round(outcome.send_rate_wait_s * 1000, 1),
                ledger=outcome.ledger.value if outcome.ledger else None,
                publish_result=decision.publish_result,
                dead_letter=decision.dead_letter,
                acked=acked,
                duration_ms=round((time.monotonic() - started) * 1000, 1),
            )
            self.metrics.observe(outcome, acked=acked, duration_s=processed_s)
        return outcome
