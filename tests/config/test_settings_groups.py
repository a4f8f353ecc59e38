"""Settings by concern: each group checks its own values, choices are enums whose wrong
values are named, every field parses with the parser it declares, and the checks that need
two groups run once all groups are read."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from worker.config.fields import specs
from worker.config.groups import (
    Events,
    Http,
    Ledger,
    LedgerTakeover,
    LogLevel,
    Outage,
    Process,
    Pull,
    Push,
    Redelivery,
    Sending,
    Services,
    Tenancy,
    Topics,
)
from worker.config.settings import (
    Settings,
    SettingsError,
    all_specs,
    cross_group_problems,
    shown_value,
)

GROUPS = [group for _, group in Settings.groups()]


@pytest.mark.parametrize("group", GROUPS, ids=lambda g: g.__name__)
def test_a_group_with_its_defaults_has_no_problems(group: type[Any]) -> None:
    assert group().problems() == []


@pytest.mark.parametrize(
    ("group", "problem"),
    [
        (Topics(service_topic="no-placeholder"), "EMAIL_WORKER_SERVICE_TOPIC must be a Pub/Sub"),
        (Services(session_ttl_s=0), "EMAIL_WORKER_SESSION_TTL_S must be positive"),
        (Sending(max_attempts=0), "EMAIL_WORKER_SEND_MAX_ATTEMPTS must be at least 1"),
        (Ledger(url="redis://x"), "EMAIL_WORKER_LEDGER must be none, firestore"),
        (Redelivery(max_delivery_attempts=2), "EMAIL_WORKER_MAX_DELIVERY_ATTEMPTS must be 5-100"),
        (Outage(failure_ratio=1.5), "EMAIL_WORKER_OUTAGE_FAILURE_RATIO must be above 0"),
        (Pull(ack_deadline_s=10), "EMAIL_WORKER_ACK_DEADLINE_S must be 30-600"),
        (Push(service_account="pusher"), "EMAIL_WORKER_PUSH_SERVICE_ACCOUNT must be"),
        (Http(port=70000), "PORT must be 1-65535"),
        (Process(concurrency=0), "EMAIL_WORKER_CONCURRENCY must be at least 1"),
    ],
    ids=lambda value: type(value).__name__ if dataclasses.is_dataclass(value) else "",
)
def test_each_group_reports_its_own_invalid_value(group: Any, problem: str) -> None:
    [reported] = group.problems()
    assert reported.startswith(problem)


@pytest.mark.parametrize(
    ("variable", "raw", "message"),
    [
        ("EMAIL_WORKER_TENANCY", "private", "must be per-service or shared"),
        ("EMAIL_WORKER_LEDGER_TAKEOVER", "retry", "must be resend or fail"),
        ("EMAIL_WORKER_LOG_LEVEL", "loud", "must be one of DEBUG, INFO, WARNING, ERROR"),
    ],
)
def test_a_choice_outside_its_enum_is_named_with_the_values_allowed(
    variable: str, raw: str, message: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({variable: raw})
    assert caught.value.problems == [f"{variable}={raw!r}: {message}"]


def test_choices_are_parsed_into_their_enums() -> None:
    settings = Settings.from_env(
        {
            "EMAIL_WORKER_TENANCY": "shared",
            "EMAIL_WORKER_LEDGER_TAKEOVER": "fail",
            "EMAIL_WORKER_LOG_LEVEL": "warning",
        }
    )
    assert settings.services.tenancy is Tenancy.SHARED
    assert not settings.services.per_service
    assert settings.ledger.takeover is LedgerTakeover.FAIL
    assert settings.process.log_level is LogLevel.WARNING


def test_the_tenancy_is_matched_exactly_as_before() -> None:
    with pytest.raises(SettingsError, match="EMAIL_WORKER_TENANCY='Shared'"):
        Settings.from_env({"EMAIL_WORKER_TENANCY": "Shared"})


@pytest.mark.parametrize(
    ("variable", "attribute"),
    [
        ("EMAIL_WORKER_PUSH_ACK_DEADLINE_S", ("push", "ack_deadline_s")),
        ("EMAIL_WORKER_MAX_DELIVERY_ATTEMPTS", ("redelivery", "max_delivery_attempts")),
        ("EMAIL_WORKER_RETRY_MIN_BACKOFF_S", ("redelivery", "min_backoff_s")),
        ("PORT", ("http", "port")),
    ],
)
def test_an_optional_whole_number_is_parsed_as_a_whole_number(
    variable: str, attribute: tuple[str, str]
) -> None:
    group, name = attribute
    value = getattr(getattr(Settings.from_env({variable: "90"}), group), name)
    assert (value, type(value)) == (90, int)
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({variable: "ninety"})
    assert caught.value.problems == [f"{variable}='ninety': not a whole number"]


@pytest.mark.parametrize(
    "spec", [s for s in all_specs() if s.default is not None], ids=lambda spec: spec.variable
)
def test_every_default_parses_back_from_its_written_form_with_the_declared_parser(
    spec: Any,
) -> None:
    assert spec.parse(shown_value(spec.default)) == spec.default


def test_a_group_declares_every_field_as_a_setting_with_a_variable_and_a_parser() -> None:
    for group in GROUPS:
        declared = [spec.attribute for spec in specs(group)]
        assert declared == [f.name for f in dataclasses.fields(group)]
        assert all(callable(spec.parse) and spec.variable for spec in specs(group))


def test_the_claim_must_outlast_the_send_deadline_a_check_across_two_groups() -> None:
    settings = Settings(sending=Sending(deadline_s=60.0), ledger=Ledger(claim_s=90.0))
    assert settings.sending.problems() == []
    assert settings.ledger.problems() == []
    assert cross_group_problems(settings) == [
        "EMAIL_WORKER_LEDGER_CLAIM_S must be at least EMAIL_WORKER_SEND_DEADLINE_S + 60"
    ]
    with pytest.raises(SettingsError, match="EMAIL_WORKER_LEDGER_CLAIM_S"):
        Settings.from_env({"EMAIL_WORKER_SEND_DEADLINE_S": "60"})


def test_settings_without_an_environment_have_every_documented_default() -> None:
    assert Settings() == Settings.from_env({})


def test_events_settings_are_read_into_their_group() -> None:
    settings = Settings.from_env(
        {
            "EMAIL_WORKER_SES_EVENTS_QUEUE_URL": "https://sqs.example/1/q",
            "EMAIL_WORKER_SES_EVENTS_ROLE_ARN": "arn:aws:iam::123456789012:role/reader",
        }
    )
    assert settings.events == Events(
        queue_url="https://sqs.example/1/q", role_arn="arn:aws:iam::123456789012:role/reader"
    )


def test_a_negative_template_latest_ttl_is_refused() -> None:
    assert Services(template_latest_ttl_s=-1).problems() == [
        "EMAIL_WORKER_TEMPLATE_LATEST_TTL_S must not be negative"
    ]
