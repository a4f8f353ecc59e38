"""The outage breaker in the pipeline, the decisions and the handler (no servers but a closed
port): what trips it, what a delivery does while it holds, and what a transport is asked to do.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any

from starlette.testclient import TestClient

from tests.support.clock import ManualClock
from tests.support.ports import free_port
from tests.support.push import envelope
from worker.config.settings import Settings
from worker.ledger import FirestoreLedger
from worker.processing.breaker import OutageBreaker
from worker.processing.decisions import Decision, decide
from worker.processing.handling import Handler
from worker.processing.metrics import Metrics
from worker.processing.outputs import Outputs
from worker.processing.pipeline import Delivery, Deps, Outcome, Status, process
from worker.sending import errors
from worker.sending.service_config import ServiceConfig
from worker.sending.session_cache import SessionCache
from worker.sending.testing import RecordingSession
from worker.transports.push import push_app

SERVICES = ("billing", "shop")


def config(service_id: str) -> ServiceConfig:
    return ServiceConfig(
        service_id=service_id,
        service_role_arn=f"arn:aws:iam::123456789012:role/{service_id}",
        default_from_address=f"{service_id}@example.com",
    )


def unavailable(_: int) -> list[str]:
    raise errors.TransientError("SendEmail failed: ServiceUnavailable")


def denied(_: int) -> list[str]:
    raise errors.AccessDeniedError("SendEmail failed: AccessDenied")


def sent(call: int) -> list[str]:
    return [f"ses-{call}"]


def new_breaker(clock: ManualClock, min_calls: int = 4) -> OutageBreaker:
    return OutageBreaker(
        window_s=30, min_calls=min_calls, failure_ratio=0.8, probe_interval_s=5, clock=clock
    )


def deps_with(sessions: dict[str, RecordingSession], breaker: OutageBreaker, **fields: Any) -> Deps:
    settings = Settings.from_env(
        {
            "EMAIL_WORKER_ALLOWED_SERVICES": ",".join(SERVICES),
            "EMAIL_WORKER_TENANCY": "shared",
            "EMAIL_WORKER_SEND_MAX_ATTEMPTS": "10",
        }
    )
    return Deps(
        settings,
        SessionCache(lambda service_id: sessions[service_id], ttl_s=60),
        sleep=lambda _s: None,
        breaker=breaker,
        **fields,
    )


def sessions_of(**behaviours: Any) -> dict[str, RecordingSession]:
    return {
        service: RecordingSession(behaviours.get(service, sent), service_config=config(service))
        for service in SERVICES
    }


def delivery(service_id: str, n: int = 1, attempt: int = 1) -> Delivery:
    request = {"version": 1, "service_id": service_id, "to": ["a@example.net"], "text": "Hi"}
    return Delivery(
        json.dumps({**request, "subject": f"r{n}"}).encode(),
        {},
        message_id=f"{service_id}-{n}",
        delivery_attempt=attempt,
    )


# -- the pipeline ------------------------------------------------------------------------------


def test_a_send_stops_retrying_once_every_service_fails_and_its_delivery_is_held() -> None:
    clock = ManualClock()
    breaker = new_breaker(clock)
    sessions = sessions_of(billing=unavailable, shop=unavailable)
    deps = deps_with(sessions, breaker)
    # Its fourth failure trips the breaker (billing is the one service active): the send stops
    # retrying there, although it may make 10 attempts.
    first = process(delivery("billing"), deps)
    assert first.status is Status.HELD
    assert breaker.holding
    assert sessions["billing"].calls == 4
    held = process(delivery("shop"), deps)
    assert held.status is Status.HELD
    assert held.error_code == "provider_unavailable"
    assert sessions["shop"].calls == 1  # no retries while holding


def test_one_service_s_denied_role_fails_its_requests_and_never_trips_the_breaker() -> None:
    breaker = new_breaker(ManualClock())
    sessions = sessions_of(billing=denied)
    deps = deps_with(sessions, breaker)
    for n in range(10):
        failed = process(delivery("billing", n), deps)
        assert (failed.status, failed.error_code) == (Status.FAILED, "access_denied")
        assert process(delivery("shop", n), deps).status is Status.SENT
    assert not breaker.holding
    assert breaker.trips == 0


def test_a_denied_role_alone_never_trips_the_breaker() -> None:
    breaker = new_breaker(ManualClock())
    deps = deps_with(sessions_of(billing=denied, shop=denied), breaker)
    for n in range(10):
        assert process(delivery("billing", n), deps).status is Status.FAILED
    assert not breaker.holding


def test_an_unreachable_ledger_trips_the_breaker() -> None:
    # A real Firestore client against a closed loopback port.
    previous = os.environ.get("FIRESTORE_EMULATOR_HOST")
    os.environ["FIRESTORE_EMULATOR_HOST"] = f"127.0.0.1:{free_port()}"
    try:
        ledger = FirestoreLedger(project="p", claim_lease_s=300, timeout_s=1.0)
    finally:
        if previous is None:
            del os.environ["FIRESTORE_EMULATOR_HOST"]
        else:
            os.environ["FIRESTORE_EMULATOR_HOST"] = previous
    breaker = new_breaker(ManualClock(), min_calls=2)
    sessions = sessions_of()
    deps = deps_with(sessions, breaker, ledger=ledger)
    try:
        outcomes = [process(delivery(service), deps) for service in SERVICES]
    finally:
        ledger.close()
    assert [o.error_code for o in outcomes] == ["ledger_unavailable"] * 2
    assert outcomes[1].status is Status.HELD
    assert breaker.holding
    assert sessions["billing"].calls == sessions["shop"].calls == 0


# -- the decision ------------------------------------------------------------------------------


HELD = Outcome(Status.HELD, request_id="r1", error_code="provider_unavailable")


def test_a_held_delivery_is_kept_by_a_transport_that_can_hold_even_on_its_last_attempt() -> None:
    for attempt in (1, 5):
        assert decide(
            HELD, delivery_attempt=attempt, max_delivery_attempts=5, can_hold=True
        ) == Decision(publish_result=False, dead_letter=False, ack=False, hold=True)


def test_a_held_delivery_is_nacked_by_push_and_reported_failed_on_its_last_attempt() -> None:
    early = decide(HELD, delivery_attempt=1, max_delivery_attempts=5)
    assert early == Decision(publish_result=False, dead_letter=False, ack=False)
    last = decide(HELD, delivery_attempt=5, max_delivery_attempts=5)
    assert last == Decision(publish_result=True, dead_letter=False, ack=False)


# -- the handler -------------------------------------------------------------------------------


class Settled:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.published: list[dict[str, Any]] = []

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str]) -> Future[Any]:
        self.published.append(json.loads(data))
        future: Future[Any] = Future()
        future.set_result("id")
        return future

    def __call__(self, handler: Handler, item: Delivery, *, can_hold: bool) -> Outcome:
        return handler(
            item,
            ack=lambda: self.calls.append("ack"),
            nack=lambda: self.calls.append("nack"),
            hold=(lambda: self.calls.append("hold")) if can_hold else None,
        )


def tripped_handler(
    sessions: dict[str, RecordingSession], settled: Settled
) -> tuple[Handler, Metrics]:
    breaker = new_breaker(ManualClock())
    for _ in range(4):
        breaker.record("billing", failed=True)
    assert breaker.holding
    outputs = Outputs(settled.publish, results_topic="r", dead_letter_topic="d", timeout_s=5)
    metrics = Metrics()
    handler = Handler(
        deps_with(sessions, breaker), outputs, max_delivery_attempts=5, metrics=metrics
    )
    return handler, metrics


def test_while_holding_pull_keeps_new_deliveries_without_processing_them() -> None:
    sessions, settled = sessions_of(), Settled()
    handler, metrics = tripped_handler(sessions, settled)
    outcome = settled(handler, delivery("shop", attempt=5), can_hold=True)
    assert outcome.status is Status.HELD
    assert settled.calls == ["hold"]
    assert settled.published == []
    assert sessions["shop"].calls == 0
    assert handler.seconds_until_admission() == 5
    assert metrics.outage_held.labels("not_started")._value.get() == 1


def test_while_holding_push_hands_new_deliveries_back_unprocessed() -> None:
    sessions, settled = sessions_of(), Settled()
    handler, _ = tripped_handler(sessions, settled)
    outcome = settled(handler, delivery("shop", attempt=2), can_hold=False)
    assert outcome.status is Status.HELD
    assert settled.calls == ["nack"]
    assert settled.published == []
    assert sessions["shop"].calls == 0


def test_while_holding_a_push_on_its_last_attempt_is_still_tried() -> None:
    sessions, settled = sessions_of(), Settled()
    handler, _ = tripped_handler(sessions, settled)
    outcome = settled(handler, delivery("shop", attempt=5), can_hold=False)
    assert outcome.status is Status.SENT
    assert settled.calls == ["ack"]


def test_the_metrics_show_the_breaker_holding_and_its_trips() -> None:
    clock = ManualClock()
    breaker = new_breaker(clock)
    metrics = Metrics()
    settled = Settled()
    outputs = Outputs(settled.publish, results_topic="r", dead_letter_topic="d", timeout_s=5)
    Handler(deps_with(sessions_of(), breaker), outputs, max_delivery_attempts=5, metrics=metrics)
    for _ in range(4):
        breaker.record("billing", failed=True)
    text = metrics.exposition().decode()
    assert "email_worker_outage_holding 1.0" in text
    assert "email_worker_outage_trips_total 1.0" in text
    clock.now = 5
    assert breaker.admit()
    breaker.record("billing", failed=False)
    assert "email_worker_outage_holding 0.0" in metrics.exposition().decode()


def test_while_holding_a_push_is_answered_503_without_calling_ses() -> None:
    sessions, settled = sessions_of(), Settled()
    handler, metrics = tripped_handler(sessions, settled)
    settings = handler.deps.settings
    app = push_app(handler, None, settings=settings)
    with TestClient(app) as client:
        answer = client.post(
            "/pubsub/push",
            json=envelope(
                delivery("shop").data, delivery_attempt=1, subscription="projects/p/subscriptions/s"
            ),
        )
    assert answer.status_code == 503
    assert answer.json() == {"outcome": "held", "error_code": None}
    assert sessions["shop"].calls == 0
    assert settled.published == []
    assert metrics.push_responses.labels("503")._value.get() == 1
