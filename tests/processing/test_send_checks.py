"""The send step's shared checks (worker/processing/send_checks.py): each gives the value the
next step needs, or the outcome that refuses the request or hands it back."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.email_requests import request_from
from worker.config.settings import Settings
from worker.processing.delivery import Deps, Outcome, Status
from worker.processing.send_checks import allowed_sender, failure, session_for
from worker.sending import errors
from worker.sending.service_config import ServiceConfig
from worker.sending.session_cache import SessionCache
from worker.sending.testing import RecordingSession

pytestmark = pytest.mark.unit

CONFIG = ServiceConfig(
    service_id="billing",
    service_role_arn="arn:aws:iam::123456789012:role/x",
    default_from_address="Billing <billing@example.com>",
    allowed_from_domains=("example.org",),
)
SETTINGS = {"EMAIL_WORKER_ALLOWED_SERVICES": "billing", "EMAIL_WORKER_TENANCY": "shared"}


def billing_request(**fields: Any) -> Any:
    document = {"version": 1, "service_id": "billing", "to": ["alice@example.net"]}
    return request_from({**document, "subject": "Hi", "text": "Hello", **fields})


class ReportedDeps(Deps):
    """Deps that keep what the send step reports to the outage breaker."""

    reports: list[tuple[str | None, bool]]

    def report(self, service_id: str | None, *, failed: bool) -> None:
        self.reports.append((service_id, failed))


def deps_loading(load: Any) -> ReportedDeps:
    deps = ReportedDeps(Settings.from_env(SETTINGS), SessionCache(load, ttl_s=60))
    deps.reports = []
    return deps


def test_a_session_that_cannot_load_for_now_hands_the_request_back_and_tells_the_breaker() -> None:
    def unreachable(_: str) -> Any:
        raise errors.TransientError("the configuration store is unreachable")

    deps = deps_loading(unreachable)
    outcome = session_for(billing_request(), deps)
    assert isinstance(outcome, Outcome)
    assert outcome.status is Status.RETRY
    assert deps.reports == [("billing", True)]


def test_a_session_that_loads_is_returned() -> None:
    session = RecordingSession(service_config=CONFIG)
    deps = deps_loading(lambda _: session)
    assert session_for(billing_request(), deps) is session
    assert deps.reports == []


def test_the_service_s_default_sender_is_allowed_when_the_request_names_none() -> None:
    sender = allowed_sender(billing_request(), CONFIG)
    assert not isinstance(sender, Outcome)
    assert (sender.address, sender.display_name) == ("billing@example.com", "Billing")


def test_a_sender_outside_the_allowed_domains_is_refused_by_its_code() -> None:
    outcome = allowed_sender(billing_request(**{"from": "news@elsewhere.example"}), CONFIG)
    assert isinstance(outcome, Outcome)
    assert (outcome.status, outcome.error_code) == (Status.REJECTED, "sender_not_allowed")


def test_a_failure_after_a_batch_was_accepted_is_a_partial_send_not_a_retry() -> None:
    error = errors.ThrottledError("slow down", sent_message_ids=("ses-1",))
    outcome = failure(billing_request(), error, retries=0)
    assert (outcome.status, outcome.error_code) == (Status.FAILED, "partially_sent")
    assert outcome.message_ids == ("ses-1",)
