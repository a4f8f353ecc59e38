"""A stopping worker leaves no ledger claim behind but those of SES calls under way.

The pipeline on a real SQLite ledger and a ``RecordingSession``: a stop (``Deps.stopping``)
that comes while a delivery waits (send rate limit, retry backoff) or before its SES call
hands the delivery back with its claim released, so the next delivery sends at once instead
of waiting for the claim to expire. Waits here pass on ``stopping``, as in production.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.processing.test_pipeline import CONFIG, delivery_of, deps_for, sent
from tests.support.clock import ManualClock
from worker.ledger import LedgerKey, SqliteLedger
from worker.processing.held_claims import ClaimsHeld
from worker.processing.pipeline import Deps, LedgerEvent, Outcome, Status, process
from worker.processing.send_rate import SendRateLimiter
from worker.sending import errors
from worker.sending.testing import RecordingSession

KEY = LedgerKey("billing", "invoice-7")
REQUEST = {"request_id": "invoice-7"}


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[SqliteLedger]:
    with SqliteLedger(tmp_path / "ledger.db", claim_lease_s=90.0) as opened:
        yield opened


def stop_soon(deps: Deps, after_s: float = 0.2) -> None:
    timer = threading.Timer(after_s, deps.stopping.set)
    timer.daemon = True
    timer.start()


def claim_holder(ledger: SqliteLedger, key: LedgerKey = KEY) -> str | None:
    record = ledger.get(key)
    assert record is not None
    assert record.result is None  # nothing was stored: the request is not finished
    return record.owner


def sent_by_the_next_delivery(ledger: SqliteLedger, key: LedgerKey = KEY) -> Outcome:
    """What a fresh delivery of the request does right away (it must not find it busy)."""
    session = RecordingSession(sent, service_config=CONFIG)
    outcome = process(delivery_of({"request_id": key.request_id}), deps_for(session, ledger=ledger))
    assert (outcome.status, outcome.ledger) == (Status.SENT, LedgerEvent.CLAIMED)
    return outcome


def test_a_stop_during_a_send_rate_wait_releases_the_claim_and_sends_nothing(
    ledger: SqliteLedger,
) -> None:
    session = RecordingSession(sent, service_config=CONFIG)
    send_rate = SendRateLimiter(1)
    send_rate.reserve(31, max_wait_s=60)  # the next send waits 30 s
    deps = deps_for(session, ledger=ledger, send_rate=send_rate)
    stop_soon(deps)
    started = time.monotonic()
    outcome = process(delivery_of(REQUEST), deps)
    assert time.monotonic() - started < 10
    assert (outcome.status, outcome.error_code) == (Status.RETRY, "worker_stopped")
    assert session.calls == 0
    assert claim_holder(ledger) is None
    sent_by_the_next_delivery(ledger)


def test_a_stop_during_a_retry_backoff_releases_the_claim_without_another_ses_call(
    ledger: SqliteLedger,
) -> None:
    session = RecordingSession(
        lambda _: (_ for _ in ()).throw(errors.ThrottledError("slow")), service_config=CONFIG
    )
    deps = deps_for(
        session,
        # A backoff of 10-11 s: inside the 30 s send deadline, so the retry is waited for.
        {"EMAIL_WORKER_SEND_INITIAL_BACKOFF_S": "10", "EMAIL_WORKER_SEND_MAX_BACKOFF_S": "20"},
        ledger=ledger,
    )
    stop_soon(deps)
    started = time.monotonic()
    outcome = process(delivery_of(REQUEST), deps)
    assert time.monotonic() - started < 5  # not the 10 s backoff
    assert (outcome.status, outcome.error_code) == (Status.RETRY, "worker_stopped")
    assert outcome.retries == 1
    assert session.calls == 1  # the first attempt only
    assert claim_holder(ledger) is None
    sent_by_the_next_delivery(ledger)


def test_a_stop_between_the_claim_and_the_ses_call_releases_the_claim(
    ledger: SqliteLedger,
) -> None:
    session = RecordingSession(sent, service_config=CONFIG)
    deps = deps_for(session, ledger=ledger)

    def session_while_the_stop_comes(service_id: str) -> RecordingSession:
        deps.stopping.set()  # as if SIGTERM came during the STS call
        return session

    deps.sessions = type(deps.sessions)(session_while_the_stop_comes, ttl_s=60)
    outcome = process(delivery_of(REQUEST), deps)
    assert (outcome.status, outcome.error_code) == (Status.RETRY, "worker_stopped")
    assert outcome.ledger is LedgerEvent.CLAIMED
    assert session.calls == 0
    assert claim_holder(ledger) is None


def test_a_delivery_arriving_after_the_stop_claims_nothing(ledger: SqliteLedger) -> None:
    session = RecordingSession(sent, service_config=CONFIG)
    deps = deps_for(session, ledger=ledger)
    deps.stopping.set()
    outcome = process(delivery_of(REQUEST), deps)
    assert (outcome.status, outcome.error_code) == (Status.RETRY, "worker_stopped")
    assert ledger.get(KEY) is None
    assert session.calls == 0


def test_a_stop_during_the_ses_call_lets_it_finish_and_store_its_result(
    ledger: SqliteLedger,
) -> None:
    deps: Deps

    def sent_as_the_stop_comes(_: int) -> list[str]:
        deps.stopping.set()
        return ["ses-1"]

    session = RecordingSession(sent_as_the_stop_comes, service_config=CONFIG)
    deps = deps_for(session, ledger=ledger)
    outcome = process(delivery_of(REQUEST), deps)
    assert (outcome.status, outcome.message_ids) == (Status.SENT, ("ses-1",))
    record = ledger.get(KEY)
    assert record is not None
    assert record.result is not None
    assert record.result.status == "sent"


def in_thread(target: Any) -> tuple[threading.Thread, list[Outcome]]:
    outcomes: list[Outcome] = []
    thread = threading.Thread(target=lambda: outcomes.append(target()), daemon=True)
    thread.start()
    return thread, outcomes


def test_at_exit_the_claims_are_released_except_where_the_ses_call_has_begun(
    ledger: SqliteLedger,
) -> None:
    """The shutdown timeout ran out: one delivery is stuck before its SES call (here in its
    rate wait, which a stop would cut short; an STS or ledger call would not be), the other in
    its SES call. Only the second's claim may stay; the first must not send afterwards."""
    claims = ClaimsHeld()
    waiting, in_ses = threading.Event(), threading.Event()
    let_go = threading.Event()

    clock = ManualClock()

    def stuck_wait(seconds: float, _stopping: object) -> None:
        waiting.set()
        let_go.wait(10)
        clock.now += seconds

    def stuck_send(_: int) -> list[str]:
        in_ses.set()
        let_go.wait(10)
        return ["ses-b"]

    send_rate = SendRateLimiter(1, clock=clock, wait=stuck_wait)
    send_rate.reserve(11, max_wait_s=60)
    session_a = RecordingSession(sent, service_config=CONFIG)
    deps_a = deps_for(session_a, ledger=ledger, send_rate=send_rate, claims=claims)
    deps_b = deps_for(
        RecordingSession(stuck_send, service_config=CONFIG), ledger=ledger, claims=claims
    )
    thread_a, outcome_a = in_thread(lambda: process(delivery_of({"request_id": "a"}), deps_a))
    thread_b, outcome_b = in_thread(lambda: process(delivery_of({"request_id": "b"}), deps_b))
    assert waiting.wait(10)
    assert in_ses.wait(10)

    assert claims.release_unsent() == 1
    assert claim_holder(ledger, LedgerKey("billing", "a")) is None
    assert claim_holder(ledger, LedgerKey("billing", "b")) is not None

    let_go.set()
    thread_a.join(10)
    thread_b.join(10)
    assert (outcome_a[0].status, outcome_a[0].error_code) == (Status.RETRY, "worker_stopped")
    assert session_a.calls == 0
    assert outcome_b[0].status is Status.SENT
    assert len(claims) == 0
