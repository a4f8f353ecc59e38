"""Push mode's holds: a held request kept in the ledger's schedule records, not handed back.

A request held by a cap or a pause whose end is foreseeable (SES's 24-hour cap, its service's
``max_per_day`` with ``over_daily_cap: "wait"``, a tenant SES paused) must wait without being
failed and without using its message's delivery attempts. The pull transport keeps such a
message leased. A push cannot be kept: answered with a nack, every push of it would use an
attempt, and Pub/Sub would dead-letter it after the last. So a push delivery
(``Delivery.defer_held``) that is held is *deferred*: :func:`deferred` records it in the
ledger's schedule records (:mod:`worker.ledger.schedules`), due when the hold may lift
(:func:`hold_lifts_in`), and only once it is stored is the outcome marked
``deferred_until``, which :func:`~worker.processing.decisions.decide` acks, with no result.
The schedule dispatcher (:mod:`worker.processing.schedule_dispatch`) then processes it like a
scheduled request: sent once through the ledger's claim, or, still held, deferred again.

Not deferred, and nacked as before: holds of the outage breaker (the subscription's attempts
are sized to outlast an outage, and the ledger may be part of it), a worker without a ledger,
a replayed dead letter (a schedule record keeps no attributes, which a replay's claim reads),
a request larger than the ledger can keep, and one whose record cannot be written.
"""

from __future__ import annotations

from dataclasses import replace

from worker.config.logs import get_logger
from worker.formats.pubsub import REPLAY_COUNT_ATTRIBUTE
from worker.formats.result import ErrorCode
from worker.ledger import LedgerKey, LedgerUnavailable, content_hash
from worker.ledger.schedule_stores import schedules_of
from worker.ledger.schedules import AddAnswer, Schedule, ScheduleState
from worker.processing.delivery import (
    DAILY_CAP_HELD,
    Delivery,
    Deps,
    Outcome,
    Status,
    status_of,
    tenant_held,
)
from worker.processing.scheduling import cancelled_outcome
from worker.processing.tenancy import SourceKind
from worker.processing.tenant_pauses import TENANT_PAUSE_PROBE_S

__all__ = ["deferred", "hold_lifts_in"]

log = get_logger()


def hold_lifts_in(outcome: Outcome, deps: Deps) -> float | None:
    """Seconds until the hold of the HELD ``outcome`` may lift, for the holds that are
    deferred: until the next read of SES's quota (its 24-hour cap), until the service's
    daily window moves on (its ``max_per_day``), until its paused tenant's next probe.
    None for any other hold."""
    if outcome.status is not Status.HELD or outcome.service_id is None:
        return None
    if outcome.error_message == DAILY_CAP_HELD and deps.quota is not None:
        return deps.quota.seconds_until_recheck()
    if outcome.held_for == "daily_cap" and deps.daily_counts is not None:
        return deps.daily_counts.seconds_until_the_window_moves()
    if tenant_held(outcome):
        return deps.tenant_pauses.seconds_until_probe(outcome.service_id) or TENANT_PAUSE_PROBE_S
    return None


def deferred(outcome: Outcome, delivery: Delivery, deps: Deps) -> Outcome:
    """The HELD ``outcome`` of a push ``delivery`` once deferred (module docstring): stored
    in the schedule records and marked ``deferred_until``; or the outcome that the record
    found answers (cancelled, or a request_id conflict); or ``outcome`` itself when it cannot
    be deferred."""
    wait_s = hold_lifts_in(outcome, deps)
    if wait_s is None or not _deferrable(delivery, deps):
        return outcome
    assert deps.ledger is not None
    assert outcome.service_id is not None
    book = schedules_of(deps.ledger)
    limit = book.max_data_bytes
    if limit is not None and len(delivery.data) > limit:
        return outcome
    schedule = Schedule(
        key=LedgerKey(outcome.service_id, outcome.request_id),
        due_at=book.clock() + wait_s,
        data=delivery.data,
        message_id=delivery.message_id,
        content_hash=content_hash(delivery.data),
    )
    try:
        answer, stored = book.add(schedule)
    except LedgerUnavailable as error:
        log.warning("could not defer a held request; handed back", error=str(error)[:300])
        return outcome
    if answer is AddAnswer.CONFLICT:
        code = ErrorCode.REQUEST_ID_CONFLICT
        return replace(
            outcome,
            status=status_of(code),
            error_code=code,
            error_message=f"request_id {outcome.request_id!r} is already kept for a different "
            f"request of service {outcome.service_id!r}; this one was not kept",
            held_for=None,
        )
    if stored.state is ScheduleState.CANCELLED:
        return cancelled_outcome(outcome.service_id, outcome.request_id)
    if stored.state is ScheduleState.DONE:
        return outcome  # dispatched already: a later delivery's claim finds its result
    return replace(outcome, deferred_until=stored.due_at)


def _deferrable(delivery: Delivery, deps: Deps) -> bool:
    """Whether ``delivery`` may be deferred: a push (not a replay) to a worker with a ledger."""
    if not delivery.defer_held or deps.ledger is None:
        return False
    source = delivery.source
    if source is not None and source.kind is SourceKind.REPLAY:
        return False
    return REPLAY_COUNT_ATTRIBUTE not in delivery.attributes
