"""The transport-independent handling of one delivery: process, decide, settle, log."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import structlog

from worker.config.logs import get_logger
from worker.ledger.service_counter import ServiceCounter
from worker.processing.decisions import Decision, decide, is_last_attempt
from worker.processing.delivery import (
    Delivery,
    Deps,
    LedgerEvent,
    Outcome,
    Status,
    tenant_held,
)
from worker.processing.metrics import Metrics
from worker.processing.outputs import Outputs
from worker.processing.pause_watch import PauseWatch
from worker.processing.pipeline import process
from worker.processing.service_labels import vouched_service

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
        outcome_counts: ServiceCounter | None = None,
    ) -> None:
        self.deps = deps
        #: Each allowed service's finished requests, for the console's services page.
        self.outcome_counts = outcome_counts
        #: The operators' pauses, which the transports honour (None: no ledger, no pauses).
        self.pauses = pauses
        self.outputs = outputs
        self.max_delivery_attempts = max_delivery_attempts
        self.metrics = metrics if metrics is not None else Metrics()
        if deps.breaker is not None:
            self.metrics.watch_breaker(deps.breaker)
        if deps.quota is not None:
            self.metrics.watch_quota(deps.quota)

    @property
    def stopping(self) -> threading.Event:
        """Set on shutdown: transports take no new deliveries, and deliveries not yet inside
        their SES call are handed back, their claims released."""
        return self.deps.stopping

    def seconds_until_admission(self, held: Outcome | None = None) -> float:
        """How long a held delivery should wait before it asks to start again; ``held``: the
        outcome that held it (a paused SES tenant's waits for its service's next probe)."""
        breaker = self.deps.breaker
        wait_s = breaker.seconds_until_probe() if breaker is not None else 0.0
        if held is not None and held.service_id is not None and tenant_held(held):
            wait_s = max(wait_s, self.deps.tenant_pauses.seconds_until_probe(held.service_id))
        quota = self.deps.quota
        if quota is not None and quota.daily_cap_reached():
            # Only a later quota read can show room in SES's 24-hour window.
            wait_s = max(wait_s, quota.seconds_until_recheck())
        return wait_s

    def release_unsent_claims(self) -> int:
        """For a worker exiting with deliveries unfinished: give back the ledger claims of
        those not yet inside their SES call (they will not start it); return how many."""
        return self.deps.claims.release_unsent()

    def __call__(
        self,
        delivery: Delivery,
        *,
        ack: Callable[[], None],
        nack: Callable[[], None],
        hold: Callable[[], None] | None = None,
    ) -> Outcome:
        """Process ``delivery`` and settle it. ``hold``: how the transport keeps a message for
        later without answering (pull); None when it cannot (push)."""
        breaker = self.deps.breaker
        if breaker is None:
            return self._handle(delivery, ack=ack, nack=nack, hold=hold)
        # A push on its last attempt is tried whatever the breaker says: held, it would be
        # dead-lettered without having been tried.
        last = hold is None and is_last_attempt(
            delivery.delivery_attempt, self.max_delivery_attempts
        )
        if not last and not breaker.admit():
            # Held back before it starts. Not logged one by one (the breaker logs its state;
            # the metrics count these).
            outcome = Outcome(Status.HELD, request_id=delivery.message_id)
            decision = self._decide(delivery, outcome, can_hold=hold is not None)
            self.outputs.settle(delivery, outcome, decision, ack=ack, nack=nack, hold=hold)
            self.metrics.outage_held.labels("not_started").inc()
            return outcome
        try:
            return self._handle(delivery, ack=ack, nack=nack, hold=hold)
        finally:
            breaker.end_probe()

    def _decide(self, delivery: Delivery, outcome: Outcome, *, can_hold: bool) -> Decision:
        return decide(
            outcome,
            delivery_attempt=delivery.delivery_attempt,
            max_delivery_attempts=self.max_delivery_attempts,
            can_hold=can_hold,
        )

    def _count(self, outcome: Outcome, decision: Decision) -> None:
        """Count a request finished now (sent, rejected or failed, its result published or
        dead-lettered): in memory, flushed to the ledger every few seconds. Not a result
        replayed from the ledger (counted when it was first stored), nor a service this
        worker does not send for."""
        counts = self.outcome_counts
        if counts is None or outcome.ledger is LedgerEvent.REPLAYED:
            return
        service_id = vouched_service(outcome, self.deps.settings.services.allowed)
        if service_id is None:
            return
        if outcome.status is Status.SENT:
            counts.add(service_id, "sent")
            counts.add(service_id, "recipients", outcome.recipient_count)
        elif outcome.status in (Status.REJECTED, Status.FAILED):
            counts.add(service_id, outcome.status.value)
        elif outcome.status is Status.RETRY and decision.publish_result:
            counts.add(service_id, "failed")  # the last attempt: the requester is told failed

    def _handle(
        self,
        delivery: Delivery,
        *,
        ack: Callable[[], None],
        nack: Callable[[], None],
        hold: Callable[[], None] | None,
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
            decision = self._decide(delivery, outcome, can_hold=hold is not None)
            acked = self.outputs.settle(delivery, outcome, decision, ack=ack, nack=nack, hold=hold)
            self.metrics.observe(outcome, acked=acked, held=decision.hold, duration_s=processed_s)
            self._count(outcome, decision)
            if outcome.held_for == "share":
                # Asked again every half second while its service holds its share: counted
                # (email_worker_waiting_turn), not logged each time.
                return outcome
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
                ses_calls=outcome.ses_calls,
                ses_throttled=outcome.ses_throttled,
                ledger=outcome.ledger.value if outcome.ledger else None,
                publish_result=decision.publish_result,
                dead_letter=decision.dead_letter,
                acked=acked,
                held=decision.hold,
                duration_ms=round((time.monotonic() - started) * 1000, 1),
                held_for=outcome.held_for,
                deferred_until=outcome.deferred_until,
            )
        return outcome
