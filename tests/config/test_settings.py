"""Settings from the environment: defaults, parsing and one clear error for all problems."""

from __future__ import annotations

import dataclasses

import pytest

from worker.config.settings import Settings, SettingsError, all_specs, unknown_setting_names


def test_defaults_match_the_documented_names() -> None:
    settings = Settings.from_env({})
    assert settings.topics.subscription == "email-requests-worker"
    assert settings.topics.results_topic == "email-results"
    assert settings.topics.dead_letter_topic == "email-requests-dead-letter"
    assert settings.topics.requests_topic == "email-requests"
    assert settings.process.shutdown_timeout_s < 10


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
    assert settings.services.allowed == frozenset({"billing", "alerts"})
    assert settings.process.concurrency == 8
    assert settings.process.shutdown_timeout_s == 2.5
    assert settings.process.log_level == "DEBUG"


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
        settings.process.concurrency = 3  # type: ignore[misc]


def test_a_missing_project_is_a_clear_error_when_needed() -> None:
    with pytest.raises(SettingsError, match="GOOGLE_CLOUD_PROJECT"):
        Settings.from_env({}).require_project()


def test_what_pull_and_serve_need_is_reported_with_the_invalid_values_at_once() -> None:
    environ = {"EMAIL_WORKER_CONCURRENCY": "many"}
    with pytest.raises(SettingsError) as pull:
        Settings.from_env(environ, required_for="pull")
    assert pull.value.problems == [
        "EMAIL_WORKER_CONCURRENCY='many': not a whole number",
        "GOOGLE_CLOUD_PROJECT must name the Google Cloud project",
        "EMAIL_WORKER_ALLOWED_SERVICES must list at least one service",
    ]
    with pytest.raises(SettingsError) as serve:
        Settings.from_env(environ, required_for="serve")
    assert serve.value.problems[:3] == pull.value.problems
    assert len(serve.value.problems) == 4
    assert (
        "EMAIL_WORKER_PUSH_AUDIENCE and EMAIL_WORKER_PUSH_SERVICE_ACCOUNT must be set"
        in (serve.value.problems[3])
    )


def test_complete_settings_lack_nothing_for_pull_or_serve() -> None:
    environ = {
        "GOOGLE_CLOUD_PROJECT": "p",
        "EMAIL_WORKER_ALLOWED_SERVICES": "billing",
        "EMAIL_WORKER_PUSH_AUTH": "off",
    }
    for command in ("pull", "serve"):
        settings = Settings.from_env(environ, required_for=command)
        assert settings.missing_for(command) == []
    assert Settings.from_env({}).missing_for("pull") != []


def test_every_setting_is_documented_once() -> None:
    rows = Settings.documentation()
    variables = [variable for variable, _, _ in rows]
    assert len(variables) == len(set(variables)) == len(all_specs())
    assert all(variable and meaning for variable, _, meaning in rows)


# -- push endpoint -------------------------------------------------------------------


def test_push_authentication_is_on_by_default_and_verified_against_google_certs() -> None:
    settings = Settings.from_env({})
    assert settings.push.auth is True
    assert settings.push.certs_url == "https://www.googleapis.com/oauth2/v1/certs"
    assert settings.push.audience is None
    assert settings.push.service_account is None


@pytest.mark.parametrize(("raw", "expected"), [("off", False), ("OFF", False), ("on", True)])
def test_push_authentication_is_switched_with_on_or_off(raw: str, expected: bool) -> None:
    assert Settings.from_env({"EMAIL_WORKER_PUSH_AUTH": raw}).push.auth is expected


def test_a_push_authentication_switch_other_than_on_or_off_is_an_error() -> None:
    with pytest.raises(SettingsError, match="EMAIL_WORKER_PUSH_AUTH='maybe': must be on or off"):
        Settings.from_env({"EMAIL_WORKER_PUSH_AUTH": "maybe"})


def test_push_needs_both_audience_and_service_account_unless_authentication_is_off() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(
            {"EMAIL_WORKER_PUSH_AUDIENCE": "https://worker.example"}
        ).require_push_auth()
    assert "EMAIL_WORKER_PUSH_SERVICE_ACCOUNT must be set" in str(caught.value)
    assert "EMAIL_WORKER_PUSH_AUTH=off" in str(caught.value)
    Settings.from_env({"EMAIL_WORKER_PUSH_AUTH": "off"}).require_push_auth()


def test_push_authentication_settings_are_read() -> None:
    settings = Settings.from_env(
        {
            "EMAIL_WORKER_PUSH_AUDIENCE": "https://worker.example/pubsub/push",
            "EMAIL_WORKER_PUSH_SERVICE_ACCOUNT": "pusher@p.iam.gserviceaccount.com",
            "EMAIL_WORKER_PUSH_CERTS_URL": "http://127.0.0.1:8099/oauth2/v1/certs",
        }
    )
    settings.require_push_auth()
    assert settings.push.audience == "https://worker.example/pubsub/push"
    assert settings.push.service_account == "pusher@p.iam.gserviceaccount.com"
    assert settings.push.certs_url == "http://127.0.0.1:8099/oauth2/v1/certs"


@pytest.mark.parametrize(
    "url",
    ["http://certs.example/oauth2/v1/certs", "ftp://127.0.0.1/certs", "not a url"],
)
def test_certificates_are_fetched_over_https_or_from_loopback_only(url: str) -> None:
    with pytest.raises(SettingsError, match="EMAIL_WORKER_PUSH_CERTS_URL must be an https URL"):
        Settings.from_env({"EMAIL_WORKER_PUSH_CERTS_URL": url})


def test_the_push_service_account_must_be_an_email() -> None:
    with pytest.raises(SettingsError, match="EMAIL_WORKER_PUSH_SERVICE_ACCOUNT must be"):
        Settings.from_env({"EMAIL_WORKER_PUSH_SERVICE_ACCOUNT": "pusher"})


def test_the_http_server_listens_on_all_interfaces_unless_told_otherwise() -> None:
    assert Settings.from_env({}).http.host == "0.0.0.0"
    assert Settings.from_env({"EMAIL_WORKER_HTTP_HOST": "127.0.0.1"}).http.host == "127.0.0.1"


def test_switches_are_documented_as_on_or_off() -> None:
    rows = {variable: default for variable, default, _ in Settings.documentation()}
    assert rows["EMAIL_WORKER_PUSH_AUTH"] == "on"


SHARED = {"EMAIL_WORKER_TENANCY": "shared"}


def test_a_push_subscription_name_is_completed_with_the_project() -> None:
    settings = Settings.from_env(
        {
            **SHARED,
            "GOOGLE_CLOUD_PROJECT": "acme",
            "EMAIL_WORKER_PUSH_SUBSCRIPTION": "email-requests-push",
        }
    )
    assert settings.push_subscription_path() == "projects/acme/subscriptions/email-requests-push"


def test_a_full_push_subscription_path_is_kept_and_none_means_any() -> None:
    full = "projects/other/subscriptions/email-requests-push"
    settings = Settings.from_env({**SHARED, "EMAIL_WORKER_PUSH_SUBSCRIPTION": full})
    assert settings.push_subscription_path() == full
    assert Settings.from_env({}).push_subscription_path() is None


@pytest.mark.parametrize("bad", ["x", "1starts-with-digit", "projects//subscriptions/abc", "a b c"])
def test_an_invalid_push_subscription_is_a_settings_error(bad: str) -> None:
    with pytest.raises(SettingsError, match="EMAIL_WORKER_PUSH_SUBSCRIPTION"):
        Settings.from_env({"EMAIL_WORKER_PUSH_SUBSCRIPTION": bad})


def test_there_is_no_send_rate_limit_unless_one_is_set() -> None:
    assert Settings.from_env({}).sending.rate_per_s is None
    assert Settings.from_env({"EMAIL_WORKER_SEND_RATE_PER_S": "12.5"}).sending.rate_per_s == 12.5


@pytest.mark.parametrize("bad", ["0", "-3", "fast"])
def test_a_send_rate_that_is_not_a_positive_number_is_a_settings_error(bad: str) -> None:
    with pytest.raises(SettingsError, match="EMAIL_WORKER_SEND_RATE_PER_S"):
        Settings.from_env({"EMAIL_WORKER_SEND_RATE_PER_S": bad})


def test_the_ack_deadline_defaults_to_a_minute_and_holds_a_thousand_messages() -> None:
    settings = Settings.from_env({})
    assert settings.pull.ack_deadline_s == 60
    assert settings.pull.max_messages == 1000
    assert settings.pull.max_messages > settings.process.concurrency


@pytest.mark.parametrize("bad", ["10", "29", "601"])
def test_an_ack_deadline_too_short_to_renew_on_a_busy_machine_is_a_settings_error(
    bad: str,
) -> None:
    with pytest.raises(SettingsError, match="EMAIL_WORKER_ACK_DEADLINE_S"):
        Settings.from_env({"EMAIL_WORKER_ACK_DEADLINE_S": bad})


@pytest.mark.parametrize(
    "url", ["none", "firestore", "firestore://email-ledger", "sqlite:///l.db", "sqlite:////t/l.db"]
)
def test_every_documented_ledger_form_is_accepted(url: str) -> None:
    assert Settings.from_env({"EMAIL_WORKER_LEDGER": url}).ledger.url == url


@pytest.mark.parametrize("url", ["firestore//x", "redis://x", "sqlite:/x.db", "Firestore"])
def test_an_undocumented_ledger_form_is_a_settings_error(url: str) -> None:
    with pytest.raises(SettingsError, match="EMAIL_WORKER_LEDGER"):
        Settings.from_env({"EMAIL_WORKER_LEDGER": url})


def test_an_unknown_worker_variable_is_named_with_the_closest_setting() -> None:
    environ = {"EMAIL_WORKER_ALLOWED_SERVICE": "billing", "EMAIL_WORKER_LEDGER": "none"}
    assert unknown_setting_names(environ) == [
        "EMAIL_WORKER_ALLOWED_SERVICE is not a setting; did you mean EMAIL_WORKER_ALLOWED_SERVICES?"
    ]


def test_an_unknown_worker_variable_like_no_setting_is_named_without_a_guess() -> None:
    assert unknown_setting_names({"EMAIL_WORKER_XYZZY": "1"}) == [
        "EMAIL_WORKER_XYZZY is not a setting"
    ]


def test_only_variables_with_the_worker_prefix_can_be_unknown_settings() -> None:
    environ = {"PATH": "/bin", "GOOGLE_CLOUD_PROJECT": "p", "PORT": "8080", "EMAILWORKER_X": "1"}
    assert unknown_setting_names(environ) == []
    known = {variable: "x" for variable, _, _ in Settings.documentation()}
    assert unknown_setting_names(known) == []


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (
            "s3://config/{service_id}.json",
            "EMAIL_WORKER_SERVICE_CONFIG_URL must be a file:// or gs:// URL (s3:// is not "
            "supported)",
        ),
        (
            "/etc/email-worker/{service_id}.json",
            "EMAIL_WORKER_SERVICE_CONFIG_URL must be a file:// or gs:// URL",
        ),
        (
            "file:///etc/email-worker/{service}.json",
            "EMAIL_WORKER_SERVICE_CONFIG_URL may hold only the placeholders {environment} and "
            "{service_id}",
        ),
        (
            "gs://config/{environment/{service_id}.json",
            "EMAIL_WORKER_SERVICE_CONFIG_URL may hold only the placeholders {environment} and "
            "{service_id}",
        ),
    ],
)
def test_a_configuration_url_that_cannot_be_read_is_an_invalid_setting(
    url: str, problem: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"EMAIL_WORKER_SERVICE_CONFIG_URL": url})
    assert caught.value.problems == [problem]


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/email-worker/{environment}/{service_id}.json",
        "gs://email-worker-config/{environment}/{service_id}.json",
        "gs://email-worker-config/shared.json",
    ],
)
def test_file_and_gs_configuration_urls_are_valid(url: str) -> None:
    assert Settings.from_env({"EMAIL_WORKER_SERVICE_CONFIG_URL": url}).services.config_url == url


def test_a_platform_setting_given_the_worker_prefix_is_named() -> None:
    assert unknown_setting_names({"EMAIL_WORKER_PORT": "8080"}) == [
        "EMAIL_WORKER_PORT is not a setting; did you mean PORT?"
    ]
