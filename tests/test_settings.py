"""Settings from the environment: defaults, parsing and one clear error for all problems."""

from __future__ import annotations

import dataclasses

import pytest

from worker.settings import Settings, SettingsError


def test_defaults_match_the_documented_names() -> None:
    settings = Settings.from_env({})
    assert settings.subscription == "email-requests-worker"
    assert settings.results_topic == "email-results"
    assert settings.dead_letter_topic == "email-requests-dead-letter"
    assert settings.requests_topic == "email-requests"
    assert settings.shutdown_timeout_s < 10


def test_values_are_parsed_into_their_types() -> None:
    settings = Settings.from_env(
        {
            "GOOGLE_CLOUD_PROJECT": "p",
            "EMAIL_WORKER_ALLOWED_SERVICES": "billing, alerts,,",
            "EMAIL_WORKER_CONCURRENCY": "8",
            "EMAIL_WORKER_SHUTDOWN_TIMEOUT_S": "2.5",
            "EMAIL_WORKER_LOG_LEVEL": "debug",
        }
    )
    assert settings.allowed_services == frozenset({"billing", "alerts"})
    assert settings.concurrency == 8
    assert settings.shutdown_timeout_s == 2.5
    assert settings.log_level == "DEBUG"


def test_every_invalid_value_is_reported_at_once() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(
            {
                "EMAIL_WORKER_CONCURRENCY": "lots",
                "EMAIL_WORKER_SHUTDOWN_TIMEOUT_S": "-1",
                "EMAIL_WORKER_ALLOWED_SERVICES": "Bad Service",
                "EMAIL_WORKER_MAX_DELIVERY_ATTEMPTS": "2",
            }
        )
    text = str(caught.value)
    assert "EMAIL_WORKER_CONCURRENCY='lots': not a whole number" in text
    assert "EMAIL_WORKER_SHUTDOWN_TIMEOUT_S must be positive" in text
    assert "'Bad Service' is not a service id" in text
    assert "EMAIL_WORKER_MAX_DELIVERY_ATTEMPTS must be 5-100" in text
    assert len(caught.value.problems) == 4


def test_settings_are_frozen() -> None:
    settings = Settings.from_env({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.concurrency = 3  # type: ignore[misc]


def test_a_missing_project_is_a_clear_error_when_needed() -> None:
    with pytest.raises(SettingsError, match="GOOGLE_CLOUD_PROJECT"):
        Settings.from_env({}).require_project()


def test_every_setting_is_documented() -> None:
    rows = Settings.documentation()
    assert len(rows) == len(dataclasses.fields(Settings))
    assert all(variable and meaning for variable, _, meaning in rows)
