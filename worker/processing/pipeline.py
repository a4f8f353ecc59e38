"""The one processing pipeline behind every transport: request bytes in, an :class:`Outcome` out.

``process`` decodes and validates the request, resolves the service, checks the sender, builds
the message and sends it, retrying transient SES/STS failures within a bounded budget. It never
acknowledges anything and never raises: what to do with the Pub/Sub message is decided
afterwards, from the outcome alone (see :mod:`worker.processing.decisions`).
"""

from __future__ import annotations

import enum
import functools
import threading
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from email.message import EmailMessage

import tenacity

from worker.config.logs import get_logger
from worker.config.names import colliding_name
from worker.config.settings import Settings
from worker.formats.addresses import Mailbox, parse_mailbox
from worker.formats.message import build_message, resolve_sender
from worker.formats.pubsub import (
    REPLAY_COUNT_ATTRIBUTE,
    REQUEST_ID_ATTRIBUTE,
    SERVICE_ID_ATTRIBUTE,
)
from worker.formats.request import EmailRequest, RequestRejected, parse_request
from worker.formats.result import ErrorCode
from worker.ledger import (
    ClaimState,
    Ledger,
    LedgerKey,
    LedgerUnavailable,
    ReplayVerdict,
    StoredResult,
    content_hash,
    replay_verdict,
)
from worker.processing.breaker import OutageBreaker
from worker.processing.claims import ClaimsHeld, HeldClaim
from worker.processing.send_rate import SendRateLimiter
from worker.processing.tenancy import Source, SourceKind
from worker.sending.envelope import MAX_RECIPIENTS_PER_CALL
from worker.sending.errors import EmailError, MaybeSentError, ThrottledError
from worker.sending.service_config import ServiceConfig
from worker.sending.session import BaseSession
from worker.sending.session_cache import SessionCache

__all__ = [
    "Delivery",
    "Deps",
    "LedgerEvent",
    "Outcome",
    "Status",
    "process",
]

log = get_logger()


@dataclass(frozen=True)
class Delivery:
    """One Pub/Sub message as a transport received it. The repr leaves out the data."""

    data: bytes = field(repr=False)
    attributes: Mapping[str, str] = field(repr=False)
    message_id: str
    delivery_attempt: int | None = None
    #: The subscription's word on who published it (:mod:`worker.processing.tenancy`); None:
    #: unknown, which only shared tenancy accepts.
    source: Source | None = None


class Status(enum.StrEnum):
    SENT = "sent"
    REJECTED = "rejected"  # the request is bad; the requester must change it
    FAILED = "failed"  # the provider refused it, or sending is impossible for now
    RETRY = "retry"  # transient trouble outlasted this delivery's retries; try a later one
    # Another delivery of the same request holds the ledger's claim and is sending it; this
    # one reports nothing and comes back later, to find the result.
    IN_PROGRESS = "in_progress"
    # Transient trouble while the outage breaker holds (worker.processing.breaker), or a
    # delivery it did not let start: kept back for after the outage, not retried now.
    HELD = "held"


class LedgerEvent(enum.StrEnum):
    """What the request ledger said about a delivery (the ``ledger`` log field)."""

    CLAIMED = "claimed"  # first delivery to claim the request: processed
    REPLAYED = "replayed"  # already finished: the stored result is published again, no send
    TAKEOVER = "takeover"  # an earlier claim expired mid-send: processed again (or failed)
    CONFLICT = "conflict"  # the request_id was used for different content
    BUSY = "busy"  # another delivery holds a live claim
    UNAVAILABLE = "unavailable"  # the ledger could not be reached: nothing sent


@dataclass(frozen=True)
class Outcome:
    """What became of one delivery."""

    status: Status
    request_id: str
    service_id: str | None = None
    message_ids: tuple[str, ...] = ()
    error_code: str | None = None
    error_message: str | None = None
    recipient_count: int = 0
    retries: int = 0
    #: Time spent waiting for EMAIL_WORKER_SEND_RATE_PER_S.
    send_rate_wait_s: float = 0.0
    #: What the request ledger said; None without a ledger or before the request was known.
    ledger: LedgerEvent | None = None
    #: Whether ``service_id`` is known to have published the request (its own topic, shared
    #: tenancy's trusted body, or a replay the ledger confirmed). False: a replay refused
    #: before that, whose result would reach a service that may never have asked for it.
    service_confirmed: bool = True


@dataclass
class Deps:
    """What the pipeline needs from the outside world, injected for tests."""

    settings: Settings
    sessions: SessionCache
    #: How retry backoffs and send-rate waits pass; None: waiting on ``stopping``, so that
    #: a shutdown cuts them short.
    sleep: Callable[[float], object] | None = None
    #: EMAIL_WORKER_SEND_RATE_PER_S, shared by every thread; None: no limit of our own.
    send_rate: SendRateLimiter | None = None
    #: Set on shutdown: waits end at once, and a delivery not yet inside its SES call is
    #: handed back (its claim released) instead of sent.
    stopping: threading.Event = field(default_factory=threading.Event)
    #: EMAIL_WORKER_LEDGER; None: no deduplication of redeliveries or repeated publishes.
    ledger: Ledger | None = None
    #: Told of every downstream call; holds work back while they fail for everyone. None:
    #: no breaker.
    breaker: OutageBreaker | None = None

    def report(self, service_id: str | None, *, failed: bool) -> None:
        """Tell the breaker how a downstream call went: a transient failure, or an answer
        (a permanent refusal is one: the downstream is up)."""
        if self.breaker is not None:
            self.breaker.record(service_id, failed=failed)

    @property
    def holding(self) -> bool:
        """Whether the outage breaker is holding work back."""
        return self.breaker is not None and self.breaker.holding

    #: The claims deliveries hold, for a worker that must exit before they finish.
    claims: ClaimsHeld = field(default_factory=ClaimsHeld)

    def pause(self, seconds: float) -> None:
        if self.sleep is None:
            self.stopping.wait(seconds)
        else:
            self.sleep(seconds)

    @functools.cached_property
    def send_retrying(self) -> tenacity.Retrying:
        """The send's retry policy, built once: tenacity keeps each call's state per thread,
        so every thread can use the same one (building it cost about 4% of a send's CPU)."""
        return _send_retrying(self)


def process(delivery: Delivery, deps: Deps) -> Outcome:
    """Turn one delivery into an outcome. Never raises."""
    try:
        outcome = _process(delivery, deps)
        if outcome.status is Status.RETRY and deps.holding:
            # The trouble is everyone's: keep the delivery for after the outage.
            return replace(outcome, status=Status.HELD)
        return outcome
    except Exception as error:  # a bug must not take the worker down or loop the message
        # The exception's text may quote the request, so only its type and place are logged.
        frame = traceback.extract_tb(error.__traceback__)[-1]
        log.error(
            "unexpected failure while processing",
            error=type(error).__name__,
            where=f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}",
        )
        return Outcome(
            Status.FAILED,
            request_id=delivery.message_id,
            error_code=ErrorCode.INTERNAL_ERROR,
            error_message="the worker failed unexpectedly; the request was not sent",
        )


def _status_of(code: str) -> Status:
    """The documented status of an error code: the request's fault, or not."""
    return Status(ErrorCode(code).status.value)


def _process(delivery: Delivery, deps: Deps) -> Outcome:
    settings = deps.settings
    source = delivery.source
    if settings.services.per_service and (source is None or source.kind is SourceKind.SHARED):
        # A transport that cannot say where a delivery came from must not get a body trusted.
        return Outcome(
            Status.REJECTED,
            request_id=delivery.message_id,
            error_code=ErrorCode.PUBLISHER_NOT_ALLOWED,
            error_message="the request did not come through a service's own topic",
        )
    replay = source is not None and source.kind is SourceKind.REPLAY
    request = _admissible(delivery, settings)
    if replay and isinstance(request, EmailRequest):
        refused = _unrecognised_replay(request, delivery, deps)
        request = request if refused is None else refused
    if isinstance(request, Outcome):
        # A replay's service is only claimed until the ledger confirms it: its refusal is
        # the operators' business (dead letters, logs), not that service's.
        return replace(request, service_confirmed=False) if replay else request
    if deps.stopping.is_set():
        return _stopped(request)  # nothing claimed yet: simply handed back
    if deps.ledger is None:
        return _admitted(request, deps)
    # An operator's replay from the dead-letter topic: a request that failed without sending
    # anything is tried again (the cause may be fixed); one that was sent never is. With
    # shared tenancy, dlq replay marks the message; with per-service, the replay topic does.
    retry_unsent = replay or (
        not settings.services.per_service and REPLAY_COUNT_ATTRIBUTE in delivery.attributes
    )
    return _claimed(request, delivery, deps, deps.ledger, retry_unsent=retry_unsent)


def _admissible(delivery: Delivery, settings: Settings) -> EmailRequest | Outcome:
    """The delivery's request, if it is valid and its service may send (as its publisher,
    through this worker); otherwise the refusal."""
    source = delivery.source
    default_service_id = settings.services.default_id
    fallback_request_id = delivery.message_id
    # The service whose own topic the request came through, if it did.
    publisher = source.service_id if source is not None else None
    if publisher is not None:
        default_service_id = publisher
    elif source is not None and source.kind is SourceKind.REPLAY:
        # A replayed dead letter: what the worker made of the original, which the ledger
        # check confirms or refutes.
        default_service_id = delivery.attributes.get(SERVICE_ID_ATTRIBUTE) or None
        fallback_request_id = delivery.attributes.get(REQUEST_ID_ATTRIBUTE) or fallback_request_id
    try:
        request = parse_request(
            delivery.data,
            pubsub_message_id=fallback_request_id,
            default_service_id=default_service_id,
        )
    except RequestRejected as error:
        return Outcome(
            _status_of(error.code),
            request_id=error.request_id or delivery.message_id,
            # The result is its publisher's, whatever service the request claims.
            service_id=publisher or error.service_id,
            error_code=error.code,
            error_message=error.message,
        )
    if publisher is not None and request.service_id != publisher:
        return replace(
            _refusal(
                request,
                ErrorCode.PUBLISHER_NOT_ALLOWED,
                f"the request names service {request.service_id!r} but was published to the "
                f"topic of service {publisher!r}; a service sends only as itself",
            ),
            service_id=publisher,
        )
    if (
        request.service_id not in settings.services.allowed
        # Settings from the environment never allow such a service; this guards the rest.
        or colliding_name(settings, request.service_id) is not None
    ):
        return _refusal(
            request,
            ErrorCode.UNKNOWN_SERVICE,
            f"service {request.service_id!r} is not allowed to send through this worker",
        )
    return request


def _unrecognised_replay(request: EmailRequest, delivery: Delivery, deps: Deps) -> Outcome | None:
    """Refuse a replay unless the ledger holds this very request from this service.

    Anyone may publish to the replay topic; only the services may publish to their own. The
    rule is :func:`worker.ledger.replay_verdict`, which ``email-worker dlq replay`` checks too.
    """
    unrecognised = _refusal(
        request,
        ErrorCode.PUBLISHER_NOT_ALLOWED,
        f"a replay is sent only if it is a request the worker received from service "
        f"{request.service_id!r}; the request ledger holds no such request",
    )
    ledger = deps.ledger
    if ledger is None:
        return unrecognised
    try:
        record = ledger.get(LedgerKey(request.service_id, request.request_id))
    except LedgerUnavailable as error:
        log.warning("request ledger unavailable; nothing sent", error=str(error)[:300])
        return _ledger_unavailable(request, deps)
    if replay_verdict(record, delivery.data) is not ReplayVerdict.VOUCHED:
        return unrecognised
    return None


def _ledger_unavailable(request: EmailRequest, deps: Deps) -> Outcome:
    deps.report(request.service_id, failed=True)
    return replace(
        _refusal(
            request,
            ErrorCode.LEDGER_UNAVAILABLE,
            "the request ledger could not be reached; the request was not sent",
        ),
        status=Status.RETRY,
        ledger=LedgerEvent.UNAVAILABLE,
    )


def _refusal(request: EmailRequest, code: str, message: str) -> Outcome:
    return Outcome(
        _status_of(code),
        request_id=request.request_id,
        service_id=request.service_id,
        error_code=code,
        error_message=message,
        recipient_count=request.recipient_count,
    )


# A delivery that finds another one sending the same request waits briefly, in growing steps,
# for its result (a send takes well under a second) before it is handed back as in progress.
_BUSY_WAITS_S = (0.1, 0.2, 0.4)


def _claimed(
    request: EmailRequest, delivery: Delivery, deps: Deps, ledger: Ledger, *, retry_unsent: bool
) -> Outcome:
    """Process ``request`` under the ledger's claim: at most one delivery sends it at a time,
    and one that finds it finished republishes the stored result instead of sending.

    ``retry_unsent``: a finished request that sent nothing is claimed afresh (a replay).
    """
    key = LedgerKey(request.service_id, request.request_id)
    # Unique per delivery, even for two deliveries of one message that overlap.
    owner = f"{delivery.message_id}/{delivery.delivery_attempt or 0}/{uuid.uuid4().hex[:12]}"
    held = deps.claims.hold(ledger, key, owner)
    try:
        return _under_claim(request, delivery, deps, held, retry_unsent=retry_unsent)
    finally:
        deps.claims.drop(held)


def _under_claim(
    request: EmailRequest, delivery: Delivery, deps: Deps, held: HeldClaim, *, retry_unsent: bool
) -> Outcome:
    ledger, key, owner = held.ledger, held.key, held.owner
    digest = content_hash(delivery.data)
    try:
        claim = ledger.claim(key, owner=owner, content_hash=digest, retry_unsent=retry_unsent)
        for wait_s in _BUSY_WAITS_S:
            if claim.state is not ClaimState.BUSY or deps.stopping.is_set():
                break
            deps.pause(wait_s)
            claim = ledger.claim(key, owner=owner, content_hash=digest, retry_unsent=retry_unsent)
    except LedgerUnavailable as error:
        log.warning("request ledger unavailable; nothing sent", error=str(error)[:300])
        return _ledger_unavailable(request, deps)
    if claim.state is ClaimState.DONE:
        assert claim.result is not None
        return _replayed(request, claim.result)
    if claim.state is ClaimState.BUSY:
        return Outcome(
            Status.IN_PROGRESS,
            request_id=request.request_id,
            service_id=request.service_id,
            recipient_count=request.recipient_count,
            ledger=LedgerEvent.BUSY,
        )
    if claim.state is ClaimState.CONFLICT:
        return replace(
            _refusal(
                request,
                ErrorCode.REQUEST_ID_CONFLICT,
                f"request_id {request.request_id!r} was already used for a different request "
                f"of service {request.service_id!r}; this one was not sent",
            ),
            ledger=LedgerEvent.CONFLICT,
        )
    takeover = claim.state is ClaimState.TAKEOVER
    try:
        settled = _settled_from_events(request, ledger, key) if takeover else None
    except LedgerUnavailable as error:
        # The claim stays ours until it expires, not released: a delivery that claimed a
        # released record would send without asking SES's events first.
        log.warning("request ledger unavailable; nothing sent", error=str(error)[:300])
        return replace(_ledger_unavailable(request, deps), ledger=LedgerEvent.TAKEOVER)
    if takeover and settled is None:
        log.warning("took over an expired claim: an earlier delivery may have sent this request")
    if settled is not None:
        outcome = settled
    elif takeover and deps.settings.ledger.takeover == "fail":
        outcome = _refusal(
            request,
            ErrorCode.OUTCOME_UNKNOWN,
            "an earlier delivery of this request stopped during its call to SES, so it may or "
            "may not have been sent; it is not sent again (at most once)",
        )
    else:
        try:
            outcome = _admitted(request, deps, held)
        except Exception:
            _release(ledger, key, owner)  # a bug, not an answer: let a later delivery try
            raise
    outcome = replace(outcome, ledger=LedgerEvent.TAKEOVER if takeover else LedgerEvent.CLAIMED)
    _record(ledger, key, owner, outcome)
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
        return Outcome(
            Status.SENT,
            request_id=request.request_id,
            service_id=request.service_id,
            message_ids=message_ids,
            recipient_count=request.recipient_count,
        )
    return Outcome(
        Status.FAILED,
        request_id=request.request_id,
        service_id=request.service_id,
        message_ids=message_ids,
        error_code=ErrorCode.PARTIALLY_SENT,
        error_message=(
            f"{len(by_batch)} of {expected} recipient batches were accepted by SES before the "
            "delivery sending them stopped; the rest are not sent, to avoid duplicates"
        ),
        recipient_count=request.recipient_count,
    )


def _replayed(request: EmailRequest, stored: StoredResult) -> Outcome:
    return Outcome(
        Status(stored.status),
        request_id=request.request_id,
        service_id=request.service_id,
        message_ids=stored.message_ids,
        error_code=stored.error_code,
        error_message=stored.error_message,
        recipient_count=stored.recipient_count,
        ledger=LedgerEvent.REPLAYED,
    )


def _record(ledger: Ledger, key: LedgerKey, owner: str, outcome: Outcome) -> None:
    """Store a final outcome under our claim; give the claim up after a transient failure,
    unless SES may have accepted the send."""
    if outcome.status is Status.RETRY:
        if outcome.error_code == ErrorCode.OUTCOME_UNKNOWN:
            # SES's answer was lost. The claim is kept until it expires; the delivery that
            # then takes it over settles the request from SES's events (sent, or send it).
            log.warning("SES's answer was lost: the claim is kept until SES's events tell")
            return
        _release(ledger, key, owner)
        return
    stored = StoredResult(
        status=outcome.status.value,
        message_ids=outcome.message_ids,
        error_code=outcome.error_code,
        error_message=outcome.error_message,
        recipient_count=outcome.recipient_count,
    )
    try:
        if not ledger.complete(key, owner=owner, result=stored):
            # Our claim expired and another delivery took it over: it may send again.
            log.warning("the claim expired before the result was stored")
    except LedgerUnavailable as error:
        # What happened is still published and acked; a later duplicate publish of this
        # request finds the claim, and after it expires, sends again.
        log.warning("could not store the result in the request ledger", error=str(error)[:300])


def _release(ledger: Ledger, key: LedgerKey, owner: str) -> None:
    try:
        ledger.release(key, owner=owner)
    except LedgerUnavailable as error:
        # The claim expires by itself; until then redeliveries wait.
        log.warning("could not release the claim", error=str(error)[:300])


def _admitted(request: EmailRequest, deps: Deps, held: HeldClaim | None = None) -> Outcome:
    """Resolve the service's session, check the sender, build the message and send it
    (under ``held``, the delivery's claim, if the ledger is on)."""
    try:
        session = deps.sessions.get(request.service_id)
    except EmailError as error:
        deps.report(request.service_id, failed=error.retryable)
        return _failure(request, error, retries=0)

    config = session.service_config
    default_from = config.default_from_address if config is not None else None
    try:
        sender = resolve_sender(request, default_from)
        if config is not None and not _sender_allowed(sender, config):
            return _refusal(
                request,
                ErrorCode.SENDER_NOT_ALLOWED,
                f"service {request.service_id!r} may not send from the domain {sender.domain!r}",
            )
        message = build_message(request, default_from=default_from, sender=sender)
    except RequestRejected as error:
        return _refusal(request, error.code, error.message)
    return _send(request, session, message, deps, held)


def _sender_allowed(sender: Mailbox, config: ServiceConfig) -> bool:
    """From must be the service's default address or in one of its allowed domains."""
    if config.default_from_address:
        default = parse_mailbox(config.default_from_address, field_name="default From")
        if sender.address.lower() == default.address.lower():
            return True
    return sender.domain in config.allowed_from_domains


def _worth_retrying(error: BaseException) -> bool:
    # A partial send is not repeated: the batches already accepted would be sent twice; nor
    # is a send whose answer was lost, which SES may have accepted.
    return (
        isinstance(error, EmailError)
        and error.retryable
        and not error.sent_message_ids
        and not isinstance(error, MaybeSentError)
    )


class _StopWhenHolding(tenacity.stop.stop_base):
    """Stop retrying once the outage breaker holds: the delivery waits out the outage."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return self._deps.holding


def _send_retrying(deps: Deps) -> tenacity.Retrying:
    settings = deps.settings

    def before_sleep(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.info(
            "send failed, retrying",
            error_code=getattr(error, "code", None),
            attempt=state.attempt_number,
            backoff_s=round(state.upcoming_sleep, 3),
        )

    return tenacity.Retrying(
        stop=(
            tenacity.stop_after_attempt(settings.sending.max_attempts)
            | tenacity.stop_before_delay(settings.sending.deadline_s)
            | tenacity.stop_when_event_set(deps.stopping)
            # The outage breaker holds: the delivery waits for the downstream's recovery.
            | _StopWhenHolding(deps)
        ),
        wait=tenacity.wait_exponential_jitter(
            multiplier=settings.sending.initial_backoff_s, max=settings.sending.max_backoff_s
        ),
        retry=tenacity.retry_if_exception(_worth_retrying),
        sleep=deps.pause,
        before_sleep=before_sleep,
        reraise=True,
    )


class _Stopped(Exception):
    """The worker is stopping and this delivery's SES call has not begun: hand it back."""


def _may_send(deps: Deps, held: HeldClaim | None) -> bool:
    """The last check before the SES call: after it, a stop lets the call finish."""
    if deps.stopping.is_set():
        return False
    return held is None or deps.claims.start_send(held)


def _send(
    request: EmailRequest,
    session: BaseSession,
    message: EmailMessage,
    deps: Deps,
    held: HeldClaim | None,
) -> Outcome:
    attempts = 0
    waited_s = 0.0
    try:
        for attempt in deps.send_retrying:
            with attempt:
                attempts = attempt.retry_state.attempt_number
                waited_s += _wait_for_send_rate(request, deps)
                if not _may_send(deps, held):
                    raise _Stopped
                message_ids = _send_once(session, message, request.service_id, deps)
    except _Stopped:
        return replace(_stopped(request), retries=max(attempts - 1, 0), send_rate_wait_s=waited_s)
    except EmailError as error:
        return _failure(request, error, retries=max(attempts - 1, 0), send_rate_wait_s=waited_s)
    return Outcome(
        Status.SENT,
        request_id=request.request_id,
        service_id=request.service_id,
        message_ids=tuple(message_ids),
        recipient_count=request.recipient_count,
        retries=attempts - 1,
        send_rate_wait_s=waited_s,
    )


def _send_once(
    session: BaseSession, message: EmailMessage, service_id: str, deps: Deps
) -> list[str]:
    """One call to SES, reported to the outage breaker."""
    try:
        message_ids = session.send_email(message)
    except Exception as error:
        # A transient error is SES's or STS's trouble; anything else is their answer.
        deps.report(service_id, failed=isinstance(error, EmailError) and error.retryable)
        raise
    deps.report(service_id, failed=False)
    return message_ids


def _wait_for_send_rate(request: EmailRequest, deps: Deps) -> float:
    """Pace sends to the configured rate; refuse, like SES throttling, when the wait is long.

    Returns the seconds waited.
    """
    if deps.send_rate is None:
        return 0.0
    wait_s = deps.send_rate.reserve(
        request.recipient_count, max_wait_s=deps.settings.sending.deadline_s
    )
    if wait_s is None:
        # Retried with backoff like SES's own throttling, then handed back to Pub/Sub.
        raise ThrottledError(
            f"the worker's send rate limit ({deps.send_rate.rate_per_s:g} recipients per "
            "second, EMAIL_WORKER_SEND_RATE_PER_S) is saturated"
        )
    if wait_s > 0:
        deps.pause(wait_s)
        if deps.stopping.is_set():
            raise _Stopped  # the shutdown cut the wait short: hand it back, don't send early
    return wait_s


def _stopped(request: EmailRequest) -> Outcome:
    """A delivery the stopping worker hands back unsent (its claim, if any, is released)."""
    return replace(
        _refusal(
            request,
            ErrorCode.WORKER_STOPPED,
            "the worker stopped before sending this request; it was handed back unsent",
        ),
        status=Status.RETRY,
    )


def _failure(
    request: EmailRequest, error: EmailError, *, retries: int, send_rate_wait_s: float = 0.0
) -> Outcome:
    status: Status
    code: str = error.code
    text = error.message
    if error.sent_message_ids:
        status, code = Status.FAILED, ErrorCode.PARTIALLY_SENT
        text = (
            f"{len(error.sent_message_ids)} recipient batch(es) were sent before SES failed "
            f"({error.code}); the rest were not sent, and nothing is retried to avoid duplicates"
        )
    elif error.retryable:
        status = Status.RETRY
    else:
        # The error code's documented status: the request's fault (rejected) or not (failed).
        status = _status_of(code)
    return Outcome(
        status,
        request_id=request.request_id,
        service_id=request.service_id,
        message_ids=error.sent_message_ids,
        error_code=code,
        error_message=text,
        recipient_count=request.recipient_count,
        retries=retries,
        send_rate_wait_s=send_rate_wait_s,
    )
