"""A tenant SES has paused: its service's requests are held, the others sent, and sending
resumes when the tenant does. Against moto, behind the fault proxy answering for one tenant."""

from __future__ import annotations

import json
from typing import Any

from tests.support import fault_proxy as faults
from tests.support.clock import ManualClock
from worker.config.settings import Settings
from worker.processing.decisions import decide
from worker.processing.handling import Handler
from worker.processing.metrics import Metrics
from worker.processing.outputs import Outputs
from worker.processing.pipeline import Delivery, Deps, Outcome, Status, process
from worker.processing.tenant_pauses import TenantPauses
from worker.sending.ses_session import Session
from worker.sending.session_cache import SessionCache

ROLE = "arn:aws:iam::123456789012:role/email-sender"
PROBE_S = 60.0


def tenant_session(service_id: str) -> Session:
    return Session(
        ROLE, tenant_name=f"{service_id}-tenant", default_from_address=f"{service_id}@example.com"
    )


def unused_publish(topic: str, data: bytes, attributes: Any) -> Any:
    raise AssertionError("nothing is published")


def deps_with(pauses: TenantPauses) -> Deps:
    settings = Settings.from_env(
        {"EMAIL_WORKER_ALLOWED_SERVICES": "billing,shop", "EMAIL_WORKER_TENANCY": "shared"}
    )
    sessions = SessionCache(tenant_session, ttl_s=600)
    return Deps(settings, sessions, sleep=lambda _s: None, tenant_pauses=pauses)


def delivery(service_id: str, n: int) -> Delivery:
    request = {
        "version": 1,
        "service_id": service_id,
        "from": f"{service_id}@example.com",
        "to": ["a@example.net"],
        "text": "Hi",
    }
    data = json.dumps({**request, "subject": f"r{n}"}).encode()
    return Delivery(data, {}, message_id=f"{service_id}-{n}", delivery_attempt=1)


def sends_for(proxy: faults.FaultProxy, tenant: str) -> int:
    return sum(r.request.ses_tenant == tenant for r in proxy.requests)


def pause_tenant(proxy: faults.FaultProxy, tenant: str) -> None:
    paused = faults.ses_error("SendingPausedException", 400, "Sending is paused for this tenant.")
    proxy.add_rule(faults.for_tenant(tenant, paused))


def test_a_paused_tenants_request_is_held_with_no_delivery_attempt_used(
    fault_proxy: faults.FaultProxy, moto: Any
) -> None:
    pause_tenant(fault_proxy, "billing-tenant")
    outcome = process(delivery("billing", 1), deps_with(TenantPauses(clock=ManualClock())))
    assert (outcome.status, outcome.error_code) == (Status.HELD, "sending_paused")
    decision = decide(outcome, delivery_attempt=1, max_delivery_attempts=5, can_hold=True)
    assert (decision.hold, decision.ack, decision.publish_result) == (True, False, False)
    assert moto.sent_messages() == []


def test_other_services_send_while_one_tenant_is_paused(
    fault_proxy: faults.FaultProxy, moto: Any
) -> None:
    pause_tenant(fault_proxy, "billing-tenant")
    deps = deps_with(TenantPauses(clock=ManualClock()))
    assert process(delivery("billing", 1), deps).status is Status.HELD
    for n in range(3):
        assert process(delivery("shop", n), deps).status is Status.SENT
    assert len(moto.sent_messages()) == 3


def test_held_requests_do_not_call_ses_again_until_the_probe_interval_passes(
    fault_proxy: faults.FaultProxy,
) -> None:
    pause_tenant(fault_proxy, "billing-tenant")
    clock = ManualClock()
    deps = deps_with(TenantPauses(probe_interval_s=PROBE_S, clock=clock))
    for n in range(5):
        assert process(delivery("billing", n), deps).status is Status.HELD
    assert sends_for(fault_proxy, "billing-tenant") == 1
    clock.now += PROBE_S
    for n in range(5, 10):
        assert process(delivery("billing", n), deps).status is Status.HELD
    assert sends_for(fault_proxy, "billing-tenant") == 2  # one probe per interval


def test_sending_resumes_when_the_tenant_does(fault_proxy: faults.FaultProxy, moto: Any) -> None:
    pause_tenant(fault_proxy, "billing-tenant")
    clock = ManualClock()
    deps = deps_with(TenantPauses(probe_interval_s=PROBE_S, clock=clock))
    assert process(delivery("billing", 1), deps).status is Status.HELD
    fault_proxy.clear()  # SES lifts the tenant's pause
    assert process(delivery("billing", 1), deps).status is Status.HELD  # not asked yet
    clock.now += PROBE_S
    assert process(delivery("billing", 1), deps).status is Status.SENT  # the probe
    assert process(delivery("billing", 2), deps).status is Status.SENT
    assert len(moto.sent_messages()) == 2
    assert [r.request.ses_tenant for r in fault_proxy.requests if r.kind == "ses_send"] == [
        "billing-tenant",
        "billing-tenant",
    ]


def test_a_service_nobody_paused_takes_no_lock_and_is_never_held() -> None:
    pauses = TenantPauses(clock=ManualClock())
    assert not pauses.holds("billing")
    pauses.sent("billing")  # nothing to end
    assert pauses.paused_services() == []


def test_a_pause_lasts_until_a_send_is_accepted() -> None:
    clock = ManualClock()
    pauses = TenantPauses(probe_interval_s=PROBE_S, clock=clock)
    pauses.paused("billing", "billing-tenant")
    assert pauses.holds("billing")
    assert pauses.paused_services() == ["billing"]
    pauses.sent("billing")
    assert not pauses.holds("billing")
    assert pauses.paused_services() == []


def held_for_tenant(service_id: str) -> Outcome:
    return Outcome(Status.HELD, request_id="r1", service_id=service_id, error_code="sending_paused")


def test_a_held_request_of_a_paused_tenant_waits_for_its_services_next_probe() -> None:
    clock = ManualClock()
    pauses = TenantPauses(probe_interval_s=PROBE_S, clock=clock)
    pauses.paused("billing", "billing-tenant")
    clock.now += 15
    outputs = Outputs(unused_publish, results_topic="r", dead_letter_topic="d", timeout_s=5)
    handler = Handler(deps_with(pauses), outputs, max_delivery_attempts=5)
    assert handler.seconds_until_admission(held_for_tenant("billing")) == PROBE_S - 15
    assert handler.seconds_until_admission(held_for_tenant("shop")) == 0


def test_a_paused_tenants_hold_is_not_counted_as_an_outage() -> None:
    metrics = Metrics()
    metrics.observe(held_for_tenant("billing"), acked=False, held=True, duration_s=0.01)
    samples = {"stage": "after_failure"}
    assert not metrics.registry.get_sample_value("email_worker_outage_held_total", samples)
    counted = {"outcome": "held", "error_code": "sending_paused"}
    assert metrics.registry.get_sample_value("email_worker_requests_total", counted) == 1
