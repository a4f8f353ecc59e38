"""The claim step: a request sent at most once at a time, and never again once finished.

:func:`send_under_claim` claims the request in the ledger, and then, by what the ledger says:
republishes the stored result of a finished request; hands back one another delivery is
sending; refuses a request_id used for different content; settles a taken-over claim from
SES's events; otherwise sends (:func:`worker.processing.send_request.send_request`). It records the
outcome under the claim, or gives the claim back after a transient failure. The claim is
tracked in ``Deps.claims`` (:mod:`worker.processing.held_claims`) meanwhile, for a worker that
must exit before it finishes.
"""

from __future__ import annotations

import uuid
from dataclasses import replace

from worker.config.logs import get_logger
from worker.config.settings import LedgerTakeover
from worker.formats.pubsub import REPLAY_COUNT_ATTRIBUTE
from worker.formats.request import EmailRequest
from worker.formats.result import ErrorCode
from worker.ledger import (
    Claim,
    ClaimState,
    Ledger,
    LedgerKey,
    LedgerUnavailable,
    StoredResult,
    content_hash,
)
from worker.processing.delivery import (
    Delivery,
    Deps,
    LedgerEvent,
    Outcome,
    Status,
    report_ledger_unavailable,
)
from worker.processing.held_claims import HeldClaim
from worker.processing.send_request import send_request
from worker.processing.template_versions import latest_version, with_pinned_version
from worker.processing.tenancy import SourceKind
from worker.sending.envelope import MAX_RECIPIENTS_PER_CALL

__all__ = ["send_under_claim"]

log = get_logger()

# A delivery that finds another one sending the same request waits briefly, in growing steps,
# for its result (a send takes well under a second) before it is handed back as in progress.
_BUSY_WAITS_S = (0.1, 0.2, 0.4)


def send_under_claim(
    request: EmailRequest, delivery: Delivery, deps: Deps, ledger: Ledger
) -> Outcome:
    """Process ``request`` under the ledger's claim: at most one delivery sends it at a time,
    and one that finds it finished republishes the stored result instead of sending."""
    key = LedgerKey(request.service_id, request.request_id)
    # Unique per delivery, even for two deliveries of one message that overlap.
    owner = f"{delivery.message_id}/{delivery.delivery_attempt or 0}/{uuid.uuid4().hex[:12]}"
    held = deps.claims.hold(ledger, key, owner)
    try:
        return _claim_and_send(request, delivery, deps, held)
    finally:
        deps.claims.drop(held)


def _retries_unsent(delivery: Delivery, deps: Deps) -> bool:
    """Whether a finished request that sent nothing is claimed afresh: an operator's replay
    from the dead-letter topic (the cause may be fixed); one that was sent never is. With
    shared tenancy, ``dlq replay`` marks the message; with per-service, the replay topic does."""
    source = delivery.source
    if source is not None and source.kind is SourceKind.REPLAY:
        return True
    return not deps.settings.services.per_service and REPLAY_COUNT_ATTRIBUTE in delivery.attributes


def _claim_and_send(
    request: EmailRequest, delivery: Delivery, deps: Deps, held: HeldClaim
) -> Outcome:
    try:
        claim = _claim(delivery, deps, held, latest_version(request, deps))
    except LedgerUnavailable as error:
        return report_ledger_unavailable(request, deps, error)
    request = with_pinned_version(request, claim.template_version)
    if claim.state is ClaimState.DONE:
        assert claim.result is not None
        return _replayed(request, claim.result)
    if claim.state is ClaimState.BUSY:
        return Outcome.for_request(request, Status.IN_PROGRESS, ledger=LedgerEvent.BUSY)
    if claim.state is ClaimState.CONFLICT:
        return Outcome.refused(
            request,
            ErrorCode.REQUEST_ID_CONFLICT,
            f"request_id {request.request_id!r} was already used for a different request "
            f"of service {request.service_id!r}; this one was not sent",
            ledger=LedgerEvent.CONFLICT,
        )
    return _send_and_record(request, deps, held, takeover=claim.state is ClaimState.TAKEOVER)


def _claim(delivery: Delivery, deps: Deps, held: HeldClaim, template_version: int | None) -> Claim:
    """Ask the ledger for the claim, waiting briefly while another delivery holds it; the
    claim pins ``template_version`` (see :mod:`worker.processing.template_versions`)."""
    digest = content_hash(delivery.data)
    retry_unsent = _retries_unsent(delivery, deps)

    def ask() -> Claim:
        return held.ledger.claim(
            held.key,
            owner=held.owner,
            content_hash=digest,
            retry_unsent=retry_unsent,
            template_version=template_version,
        )

    claim = ask()
    for wait_s in _BUSY_WAITS_S:
        if claim.state is not ClaimState.BUSY or deps.stopping.is_set():
            break
        deps.pause(wait_s)
        claim = ask()
    return claim


def _send_and_record(
    request: EmailRequest, deps: Deps, held: HeldClaim, *, takeover: bool
) -> Outcome:
    """Send a request whose claim we hold (settle it first if we took the claim over), then
    record the outcome."""
    try:
        settled = _settled_from_events(request, held.ledger, held.key) if takeover else None
    except LedgerUnavailable as error:
        # The claim stays ours until it expires, not released: a delivery that claimed a
        # released record would send without asking SES's events first.
        return report_ledger_unavailable(request, deps, error, ledger=LedgerEvent.TAKEOVER)
    if takeover and settled is None:
        log.warning("took over an expired claim: an earlier delivery may have sent this request")
    if settled is not None:
        outcome = settled
    elif takeover and deps.settings.ledger.takeover is LedgerTakeover.FAIL:
        outcome = Outcome.refused(
            request,
            ErrorCode.OUTCOME_UNKNOWN,
            "an earlier delivery of this request stopped during its call to SES, so it may or "
            "may not have been sent; it is not sent again (at most once)",
        )
    else:
        try:
            outcome = send_request(request, deps, held)
        except Exception:
            held.release()  # a bug, not an answer: let a later delivery try
            raise
    outcome = replace(outcome, ledger=LedgerEvent.TAKEOVER if takeover else LedgerEvent.CLAIMED)
    _record(held, outcome)
    return outcome


def _settled_from_events(request: EmailRequest, ledger: Ledger, key: LedgerKey) -> Outcome | None:
    """What SES's events say the dead delivery whose claim was taken over achieved.

    A delivery that died during its SES call leaves no result, but SES reports every message
    it accepted (a Send event, then delivery or bounce, tagged with the request), and the
    events reader records those in the ledger. Any status of a message means SES accepted it.
    None: no event, so (the ledger having waited EMAIL_WORKER_SEND_EVENT_WAIT_S before the
    takeover) nothing was accepted, and the request is sent again.
    """
    statuses = ledger.statuses(key)
    if not statuses:
        return None
    by_batch: dict[int, str] = {}
    for status in statuses:
        by_batch.setdefault(status.batch if status.batch is not None else 0, status.message_id)
    # One SES call per MAX_RECIPIENTS_PER_CALL distinct recipients, as the session sends them.
    recipients = len(dict.fromkeys(request.envelope_recipients))
    expected = max(1, -(-recipients // MAX_RECIPIENTS_PER_CALL))
    message_ids = tuple(by_batch[index] for index in sorted(by_batch))
    log.info(
        "settled from SES's events: the earlier delivery's send was accepted",
        batches_accepted=len(by_batch),
        batches=expected,
    )
    if len(by_batch) >= expected:
        return Outcome.for_request(request, Status.SENT, message_ids=message_ids)
    return Outcome.for_request(
        request,
        Status.FAILED,
        message_ids=message_ids,
        error_code=ErrorCode.PARTIALLY_SENT,
        error_message=(
            f"{len(by_batch)} of {expected} recipient batches were accepted by SES before the "
            "delivery sending them stopped; the rest are not sent, to avoid duplicates"
        ),
    )


def _replayed(request: EmailRequest, stored: StoredResult) -> Outcome:
    """The stored result of a finished request, published again."""
    outcome = Outcome.for_request(
        request,
        Status(stored.status),
        message_ids=stored.message_ids,
        error_code=stored.error_code,
        error_message=stored.error_message,
        recipient_count=stored.recipient_count,
        ledger=LedgerEvent.REPLAYED,
    )
    return replace(outcome, template=stored.template)


def _record(held: HeldClaim, outcome: Outcome) -> None:
    """Store a final outcome under our claim; give the claim up after a transient failure
    (unless SES may have accepted the send) or when the request waits for its daily cap."""
    # HELD here: its service's max_per_day, before any send; the claim waits for nobody.
    if outcome.status in (Status.RETRY, Status.HELD):
        if outcome.error_code == ErrorCode.OUTCOME_UNKNOWN:
            # SES's answer was lost. The claim is kept until it expires; the delivery that
            # then takes it over settles the request from SES's events (sent, or send it).
            log.warning("SES's answer was lost: the claim is kept until SES's events tell")
            return
        held.release()
        return
    stored = StoredResult(
        status=outcome.status.value,
        message_ids=outcome.message_ids,
        error_code=outcome.error_code,
        error_message=outcome.error_message,
        recipient_count=outcome.recipient_count,
        template=outcome.template,
    )
    try:
        if not held.ledger.complete(held.key, owner=held.owner, result=stored):
            # Our claim expired and another delivery took it over: it may send again.
            log.warning("the claim expired before the result was stored")
    except LedgerUnavailable as error:
        # What happened is still published and acked; a later duplicate publish of this
        # request finds the claim, and after it expires, sends again.
        log.warning("could not store the result in the request ledger", error=str(error)[:300])
