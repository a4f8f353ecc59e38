"""The push budget: one delivery must end within the push ack deadline, and within its claim.

worker/config/budget.py states the bound; these tests show that its constants are the SES
client's and the ledger's own, that terraform/budget.tf computes the same numbers (evaluated
with terraform where it is installed), that `terraform plan` fails on a deadline that cannot
hold, and that `email-worker serve` refuses to start on one.
"""

from __future__ import annotations

import inspect
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import botocore.session
import pytest
import structlog
from botocore.retries import standard

from tests.project.test_terraform import TF, TerraformAlone, _block, _preconditions, terraform_alone
from worker.app import serving, startup
from worker.app.checks import settings_problems
from worker.config import budget
from worker.config.logs import configure_logging, get_logger
from worker.config.settings import Settings
from worker.ledger.firestore_ledger import FirestoreLedger
from worker.sending.aws import SES_CLIENT_CONFIG

EMAIL_WORKER = str(Path(sys.executable).parent / "email-worker")
DEFAULTS = Settings.from_env({})


@pytest.fixture(scope="module")
def tf(tmp_path_factory: pytest.TempPathFactory) -> TerraformAlone:
    return terraform_alone(tmp_path_factory)


def _push_budget(settings: Settings = DEFAULTS, *, rate_limited: bool = False) -> float:
    return budget.push_budget_s(
        send_deadline_s=settings.sending.deadline_s,
        publish_timeout_s=settings.process.publish_timeout_s,
        send_rate_limited=rate_limited,
    )


# -- the constants are the worker's own ------------------------------------------------------


def test_the_ses_timeouts_and_retries_are_the_ses_client_s() -> None:
    config: Any = SES_CLIENT_CONFIG  # botocore's stubs do not list Config's options
    assert config.connect_timeout == budget.SES_CONNECT_TIMEOUT_S
    assert config.read_timeout == budget.SES_READ_TIMEOUT_S
    # botocore rewrites a Config's max_attempts (retries) as total_max_attempts (calls) in
    # place when it builds a client with it, so either form may be there.
    retries = dict(config.retries)
    calls = retries.pop("total_max_attempts", None) or retries.pop("max_attempts") + 1
    assert (retries.pop("mode"), calls, retries) == ("standard", budget.SES_RETRIES + 1, {})


def test_botocore_makes_one_call_more_than_its_max_attempts() -> None:
    # botocore's max_attempts counts retries: 3 means four calls
    # (tests/transports/test_pull.py relies on it too).
    client = botocore.session.get_session().create_client(
        "sesv2", region_name="eu-west-2", config=SES_CLIENT_CONFIG
    )
    config: Any = client.meta.config
    assert config.retries["total_max_attempts"] == budget.SES_RETRIES + 1


def test_botocore_s_backoff_is_no_longer_than_the_budget_allows() -> None:
    backoff: Any = standard.ExponentialBackoff
    assert backoff._MAX_BACKOFF <= budget.BOTOCORE_BACKOFF_CAP_S
    extra = getattr(backoff, "_RETRY_AFTER_MAX_ADDITIONAL", 0)
    assert extra <= budget.BOTOCORE_RETRY_AFTER_S


def test_a_ledger_call_is_bounded_by_the_firestore_ledger_s_timeout() -> None:
    timeout = inspect.signature(FirestoreLedger.__init__).parameters["timeout_s"].default
    assert timeout == budget.LEDGER_CALL_S


# -- the bound ---------------------------------------------------------------------------------


def test_one_ses_attempt_is_four_calls_of_25_s_and_their_backoff() -> None:
    backoff = (1 + 5) + (2 + 5) + (4 + 5)
    assert budget.ses_attempt_s() == 4 * (5 + 20) + backoff == 122


def test_with_the_default_settings_a_push_needs_242_s_and_a_claim_172_s() -> None:
    # 20 s of ledger calls + 30 s deadline + 122 s attempt + 2 x 30 s publishes + 10 s margin.
    assert _push_budget() == 242
    claim = budget.ledger_claim_s(
        send_deadline_s=DEFAULTS.sending.deadline_s, send_rate_limited=False
    )
    assert claim == 30 + 122 + 10 + 10 == 172


def test_a_send_rate_limit_adds_the_send_deadline_again() -> None:
    assert _push_budget(rate_limited=True) == _push_budget() + DEFAULTS.sending.deadline_s


def test_the_worker_s_default_ack_deadline_of_60_s_cannot_hold_a_push() -> None:
    # Why the issue was filed: terraform used to give push subscriptions 60 s.
    assert _push_budget() > 60


def test_a_deadline_of_the_budget_or_more_has_no_problem() -> None:
    for ack in (242, 243, 600):
        assert (
            budget.push_budget_problem(
                ack_deadline_s=ack,
                send_deadline_s=30,
                publish_timeout_s=30,
                send_rate_limited=False,
            )
            is None
        )


def test_a_short_deadline_is_a_problem_that_names_the_deadline_needed() -> None:
    problem = budget.push_budget_problem(
        ack_deadline_s=60, send_deadline_s=30, publish_timeout_s=30, send_rate_limited=False
    )
    assert problem is not None
    assert problem.startswith("EMAIL_WORKER_PUSH_ACK_DEADLINE_S=60 is too short")
    assert "at least 242 s" in problem
    assert "one more SES attempt of up to 122 s" in problem


def test_a_budget_over_600_s_is_a_problem_no_deadline_can_fix() -> None:
    problem = budget.push_budget_problem(
        ack_deadline_s=600, send_deadline_s=200, publish_timeout_s=60, send_rate_limited=True
    )
    assert problem is not None
    assert "exceeds Pub/Sub's 600 s maximum" in problem
    assert "lower EMAIL_WORKER_SEND_DEADLINE_S" in problem


def test_the_claim_always_meets_the_worker_s_own_minimum() -> None:
    # Settings refuse a claim shorter than the send deadline plus 60 s.
    for deadline in (1.0, 30.0, 120.0, 300.0):
        for limited in (False, True):
            claim = budget.ledger_claim_s(send_deadline_s=deadline, send_rate_limited=limited)
            assert claim >= deadline + 60


# -- terraform computes the same ---------------------------------------------------------------


def test_terraform_uses_the_same_constants() -> None:
    assert TF.locals["budget"] == {
        "ses_connect_timeout_s": budget.SES_CONNECT_TIMEOUT_S,
        "ses_read_timeout_s": budget.SES_READ_TIMEOUT_S,
        "ses_retries": budget.SES_RETRIES,
        "botocore_backoff_cap_s": budget.BOTOCORE_BACKOFF_CAP_S,
        "botocore_retry_after_s": budget.BOTOCORE_RETRY_AFTER_S,
        "ledger_call_s": budget.LEDGER_CALL_S,
        "margin_s": budget.MARGIN_S,
        "outage_allowance_s": budget.OUTAGE_ALLOWANCE_S,
    }


@pytest.mark.parametrize(
    ("send_deadline", "publish_timeout", "rate"),
    [(30, 30, None), (30, 30, 14), (10, 5, None), (90, 20, 100)],
)
def test_terraform_computes_the_same_budget_and_claim(
    tf: TerraformAlone, send_deadline: int, publish_timeout: int, rate: int | None
) -> None:
    computed = tf.value(
        "{attempt = local.ses_attempt_s, push = local.push_budget_s, claim = local.ledger_claim_s}",
        send_deadline_seconds=send_deadline,
        publish_timeout_seconds=publish_timeout,
        ses_max_send_rate_per_s=rate,
    )
    limited = rate is not None
    assert computed == {
        "attempt": budget.ses_attempt_s(),
        "push": budget.push_budget_s(
            send_deadline_s=send_deadline,
            publish_timeout_s=publish_timeout,
            send_rate_limited=limited,
        ),
        "claim": math.ceil(
            budget.ledger_claim_s(send_deadline_s=send_deadline, send_rate_limited=limited)
        ),
    }


def test_push_subscriptions_get_the_budget_as_ack_deadline_unless_one_is_given(
    tf: TerraformAlone,
) -> None:
    assert tf.value("local.ack_deadline_s", ses_max_send_rate_per_s=None) == math.ceil(
        _push_budget()
    )
    assert tf.value("local.ack_deadline_s", ack_deadline_seconds=300) == 300
    # Pull: the worker renews its own leases; the subscriptions keep Pub/Sub's usual 60 s.
    assert tf.value("local.ack_deadline_s", delivery_mode="pull") == 60


def test_the_subscriptions_and_cloud_run_wait_the_same_ack_deadline() -> None:
    subscription = TF.resource("google_pubsub_subscription", "worker")
    assert subscription["ack_deadline_seconds"] == "${local.ack_deadline_s}"
    service = TF.resource("google_cloud_run_v2_service", "worker")
    assert _block(service, "template")["timeout"] == "${local.ack_deadline_s}s"


def test_the_worker_is_given_the_settings_the_budget_was_computed_from() -> None:
    env = TF.locals["managed_env"]
    assert env["EMAIL_WORKER_SEND_DEADLINE_S"] == "${tostring(var.send_deadline_seconds)}"
    assert env["EMAIL_WORKER_PUBLISH_TIMEOUT_S"] == "${tostring(var.publish_timeout_seconds)}"
    assert env["EMAIL_WORKER_PUSH_ACK_DEADLINE_S"] == (
        "${local.push_mode ? tostring(local.ack_deadline_s) : null}"
    )
    assert env["EMAIL_WORKER_LEDGER_CLAIM_S"] == "${tostring(local.ledger_claim_s)}"
    # The budget reads the same variables.
    assert "var.send_deadline_seconds" in TF.locals["sending_s"]
    assert "var.publish_timeout_seconds" in TF.locals["push_budget_s"]
    assert TF.locals["send_rate_limited"] == "${var.ses_max_send_rate_per_s != null}"
    # And the variables default to the worker's own defaults.
    assert TF.variables["send_deadline_seconds"]["default"] == DEFAULTS.sending.deadline_s
    assert TF.variables["publish_timeout_seconds"]["default"] == DEFAULTS.process.publish_timeout_s


def test_the_plan_checks_the_budget() -> None:
    checks = _preconditions(TF.resource("terraform_data", "settings_check"))
    assert "${local.push_budget_fits}" in checks
    assert TF.locals["push_budget_fits"] == (
        "${!local.push_mode || (local.ack_deadline_s >= local.push_budget_s "
        "&& local.ack_deadline_s <= 600)}"
    )
    # Everything else waits for the checks.
    for type_ in ("google_cloud_run_v2_service", "google_cloud_run_v2_worker_pool"):
        assert "${terraform_data.settings_check}" in TF.resource(type_, "worker")["depends_on"]


def test_plan_fails_on_an_ack_deadline_shorter_than_one_delivery(tf: TerraformAlone) -> None:
    result = tf.plan(ack_deadline_seconds=200)
    assert result.returncode != 0
    message = " ".join(result.stderr.split())
    assert "The push budget does not fit" in message
    assert "up to 272 s" in message  # the example limits the send rate
    assert "the ack deadline is 200 s" in message


def test_plan_fails_on_a_budget_no_ack_deadline_can_hold(tf: TerraformAlone) -> None:
    result = tf.plan(send_deadline_seconds=200, publish_timeout_seconds=60)
    assert result.returncode != 0
    assert "The push budget does not fit" in " ".join(result.stderr.split())


def test_plan_passes_a_short_deadline_in_pull_mode(tf: TerraformAlone) -> None:
    result = tf.plan(delivery_mode="pull", ack_deadline_seconds=60)
    assert result.returncode == 0, result.stderr


# -- serve checks it at start ------------------------------------------------------------------


def _serve_env(**extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GOOGLE_CLOUD_PROJECT": "budget-test",
        "EMAIL_WORKER_ALLOWED_SERVICES": "billing",
        "EMAIL_WORKER_PUSH_AUTH": "off",
        **extra,
    }


def test_serve_refuses_to_start_when_one_delivery_may_outlast_the_ack_deadline() -> None:
    completed = subprocess.run(
        [EMAIL_WORKER, "serve"],
        env=_serve_env(EMAIL_WORKER_PUSH_ACK_DEADLINE_S="60"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 2
    assert "email-worker: invalid settings:" in completed.stderr
    assert "EMAIL_WORKER_PUSH_ACK_DEADLINE_S=60 is too short" in completed.stderr
    assert "at least 242 s" in completed.stderr
    assert "Traceback" not in completed.stderr
    # The same, as a log line for Cloud Logging.
    [record] = [
        json.loads(line) for line in completed.stdout.splitlines() if '"cannot start"' in line
    ]
    assert record["severity"] == "ERROR"


def _serve_until_runtime(monkeypatch: pytest.MonkeyPatch, **env: str) -> tuple[int, list[Any]]:
    """Run serve's start-up until it builds its runtime (stopped there); its code and logs."""

    def stop_here(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("stopped by the test before building the runtime")

    monkeypatch.setattr(serving, "build_runtime", stop_here)
    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    # A fresh logger: serving's own caches the configuration it first logged with.
    monkeypatch.setattr(serving, "log", get_logger())
    monkeypatch.setattr(startup, "log", get_logger())
    try:
        code = serving.run_serve(Settings.from_env(_serve_env(**env), required_for="serve"))
    finally:
        structlog.reset_defaults()
    return code, [json.loads(line) for line in stream.getvalue().splitlines()]


def test_serve_goes_on_when_the_ack_deadline_covers_one_delivery(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = _serve_env(EMAIL_WORKER_PUSH_ACK_DEADLINE_S="242")
    assert settings_problems(Settings.from_env(env, required_for="serve"), "serve") == []
    code, records = _serve_until_runtime(monkeypatch, EMAIL_WORKER_PUSH_ACK_DEADLINE_S="242")
    assert code == 1  # past the check, stopped at the runtime
    assert "stopped by the test" in records[-1]["detail"]
    assert not any("ACK_DEADLINE" in r["message"] for r in records)


def test_serve_without_an_ack_deadline_warns_what_it_would_need(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, records = _serve_until_runtime(monkeypatch)
    assert code == 1
    [warning] = [r for r in records if "EMAIL_WORKER_PUSH_ACK_DEADLINE_S" in r["message"]]
    assert warning["severity"] == "WARNING"
    assert warning["needed_s"] == 242


# -- the delivery attempts outlast a claim, the Send-event wait and an outage -----------------


def _redelivery_problem(attempts: int, low: float = 10, high: float = 600) -> str | None:
    return budget.redelivery_problem(
        max_delivery_attempts=attempts,
        min_backoff_s=low,
        max_backoff_s=high,
        claim_s=172,
        send_event_wait_s=120,
        outage_allowance_s=budget.OUTAGE_ALLOWANCE_S,
    )


def test_the_attempts_span_pubsub_s_backoffs_doubling_from_the_minimum_to_the_maximum() -> None:
    span = budget.redelivery_span_s(max_delivery_attempts=12, min_backoff_s=10, max_backoff_s=600)
    assert span == 10 + 20 + 40 + 80 + 160 + 320 + 5 * 600 == 3630


def test_five_attempts_with_a_10_s_backoff_last_only_150_s_which_is_why_the_issue_was_filed() -> (
    None
):
    assert budget.redelivery_span_s(
        max_delivery_attempts=5, min_backoff_s=10, max_backoff_s=600
    ) == (10 + 20 + 40 + 80)
    problem = _redelivery_problem(5)
    assert problem is not None
    assert problem.startswith("EMAIL_WORKER_MAX_DELIVERY_ATTEMPTS=5 with backoffs of 10-600 s")
    assert "after about 150 s" in problem
    assert "it may need 2092 s" in problem


def test_a_request_must_outlast_the_claim_the_send_event_wait_and_a_30_minute_outage() -> None:
    assert budget.OUTAGE_ALLOWANCE_S == 30 * 60
    needed = budget.redelivery_needed_s(claim_s=172, send_event_wait_s=120, outage_allowance_s=1800)
    assert needed == 2092
    assert _redelivery_problem(12) is None
    assert _redelivery_problem(10) is None  # 2430 s
    assert _redelivery_problem(9) is not None  # 1830 s


def test_the_worker_s_defaults_state_the_same_allowance() -> None:
    assert DEFAULTS.redelivery.outage_allowance_s == budget.OUTAGE_ALLOWANCE_S


def test_terraform_s_default_attempts_and_backoffs_outlast_the_allowance() -> None:
    attempts = TF.variables["max_delivery_attempts"]["default"]
    low = TF.variables["retry_minimum_backoff_seconds"]["default"]
    high = TF.variables["retry_maximum_backoff_seconds"]["default"]
    claim = math.ceil(
        budget.ledger_claim_s(send_deadline_s=DEFAULTS.sending.deadline_s, send_rate_limited=True)
    )
    problem = budget.redelivery_problem(
        max_delivery_attempts=attempts,
        min_backoff_s=low,
        max_backoff_s=high,
        claim_s=claim,
        send_event_wait_s=DEFAULTS.ledger.send_event_wait_s,
        outage_allowance_s=budget.OUTAGE_ALLOWANCE_S,
    )
    assert problem is None
    span = budget.redelivery_span_s(
        max_delivery_attempts=attempts, min_backoff_s=low, max_backoff_s=high
    )
    assert span >= claim + DEFAULTS.ledger.send_event_wait_s + budget.OUTAGE_ALLOWANCE_S


@pytest.mark.parametrize(
    ("attempts", "low", "high", "events"),
    [(12, 10, 600, True), (5, 10, 600, True), (20, 0, 600, False), (30, 60, 120, True)],
)
def test_terraform_computes_the_same_redelivery_span_and_need(
    tf: TerraformAlone, attempts: int, low: int, high: int, events: bool
) -> None:
    computed = tf.value(
        "{span = local.redelivery_span_s, needed = local.redelivery_needed_s, "
        "fits = local.redelivery_fits, claim = local.ledger_claim_s}",
        max_delivery_attempts=attempts,
        retry_minimum_backoff_seconds=low,
        retry_maximum_backoff_seconds=high,
        events_enabled=events,
    )
    span = budget.redelivery_span_s(
        max_delivery_attempts=attempts, min_backoff_s=low, max_backoff_s=high
    )
    needed = budget.redelivery_needed_s(
        claim_s=computed["claim"],
        send_event_wait_s=120 if events else 0,
        outage_allowance_s=budget.OUTAGE_ALLOWANCE_S,
    )
    assert (computed["span"], computed["needed"]) == (span, needed)
    assert computed["fits"] is (span >= needed)


def test_the_worker_is_given_the_retry_settings_the_span_was_computed_from() -> None:
    env = TF.locals["managed_env"]
    assert env["EMAIL_WORKER_MAX_DELIVERY_ATTEMPTS"] == "${tostring(var.max_delivery_attempts)}"
    assert env["EMAIL_WORKER_RETRY_MIN_BACKOFF_S"] == (
        "${tostring(var.retry_minimum_backoff_seconds)}"
    )
    assert env["EMAIL_WORKER_RETRY_MAX_BACKOFF_S"] == (
        "${tostring(var.retry_maximum_backoff_seconds)}"
    )
    # The Send-event wait the span allows for is the one the worker is given.
    assert env["EMAIL_WORKER_SEND_EVENT_WAIT_S"] == '${var.events_enabled ? "120" : "0"}'
    assert TF.locals["send_event_wait_s"] == "${var.events_enabled ? 120 : 0}"
    assert DEFAULTS.ledger.send_event_wait_s == 120
    # And the subscriptions use the same variables.
    subscription = TF.resource("google_pubsub_subscription", "worker")
    assert _block(subscription, "dead_letter_policy")["max_delivery_attempts"] == (
        "${var.max_delivery_attempts}"
    )
    retry = _block(subscription, "retry_policy")
    assert retry["minimum_backoff"] == "${var.retry_minimum_backoff_seconds}s"
    assert retry["maximum_backoff"] == "${var.retry_maximum_backoff_seconds}s"


def test_the_plan_checks_the_redelivery_span() -> None:
    checks = _preconditions(TF.resource("terraform_data", "settings_check"))
    assert "${local.redelivery_fits}" in checks


def test_plan_fails_on_attempts_that_an_outage_would_use_up(tf: TerraformAlone) -> None:
    result = tf.plan(max_delivery_attempts=5)
    assert result.returncode != 0
    message = " ".join(result.stderr.split())
    assert "The delivery attempts do not outlast an outage" in message
    assert "after about 150 s" in message


def test_plan_passes_the_default_attempts(tf: TerraformAlone) -> None:
    result = tf.plan(max_delivery_attempts=TF.variables["max_delivery_attempts"]["default"])
    assert result.returncode == 0, result.stderr


_SHORT_RETRIES = {
    "EMAIL_WORKER_MAX_DELIVERY_ATTEMPTS": "5",
    "EMAIL_WORKER_RETRY_MIN_BACKOFF_S": "10",
    "EMAIL_WORKER_RETRY_MAX_BACKOFF_S": "600",
}


@pytest.mark.parametrize("command", ["serve", "pull"])
def test_serve_and_pull_refuse_attempts_an_outage_would_use_up(command: str) -> None:
    completed = subprocess.run(
        [EMAIL_WORKER, command],
        env=_serve_env(**_SHORT_RETRIES, EMAIL_WORKER_PUSH_ACK_DEADLINE_S="242"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 2, completed.stderr
    assert "email-worker: invalid settings:" in completed.stderr
    assert "EMAIL_WORKER_MAX_DELIVERY_ATTEMPTS=5 with backoffs of 10-600 s" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_serve_goes_on_when_the_attempts_outlast_an_outage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, records = _serve_until_runtime(
        monkeypatch,
        **{**_SHORT_RETRIES, "EMAIL_WORKER_MAX_DELIVERY_ATTEMPTS": "12"},
        EMAIL_WORKER_PUSH_ACK_DEADLINE_S="242",
    )
    assert code == 1  # past the checks, stopped at the runtime
    assert "stopped by the test" in records[-1]["detail"]


def test_serve_without_the_retry_settings_warns_what_a_request_needs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, records = _serve_until_runtime(monkeypatch, EMAIL_WORKER_PUSH_ACK_DEADLINE_S="242")
    assert code == 1
    [warning] = [r for r in records if "retry settings are not all given" in r["message"]]
    assert warning["severity"] == "WARNING"
    assert warning["unset"] == [
        "EMAIL_WORKER_MAX_DELIVERY_ATTEMPTS",
        "EMAIL_WORKER_RETRY_MIN_BACKOFF_S",
        "EMAIL_WORKER_RETRY_MAX_BACKOFF_S",
    ]
    assert warning["needed_s"] == 90 + 120 + 1800
