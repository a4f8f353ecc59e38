"""A tenant SES has paused: its service's requests are held, the others sent, and sending
resumes when the tenant does. Against moto, behind the fault proxy answering for one tenant."""

from __future__ import annotations

import json
from typing import Any

from tests.support import fault_proxy as faults
from tests.support.clock import ManualClock
from worker.config.settings import Settings
from worker.processing.decisions import decide
from worker.processing.pipeline import Delivery, Deps, Status, process
from worker.processing.tenant_pauses import TenantPauses
from worker.sending.ses_session import Session
from worker.sending.session_cache import SessionCache

ROLE = "arn:aws:iam::123456789012:role/email-sender"
PROBE_S = 60.0


def tenant_session(service_id: str) -> Session:
    return Session(
        ROLE, tenant_name=f"{service_id}-tenant", default_from_address=f"{service_id}@example.com"
    )


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
