"""``email-worker console``: loopback only without IAP."""

from __future__ import annotations

from click.testing import CliRunner

from worker.app.cli import main


def test_the_console_refuses_a_non_loopback_address_without_iap() -> None:
    env = {"GOOGLE_CLOUD_PROJECT": "p", "EMAIL_WORKER_CONSOLE_HOST": "0.0.0.0"}
    result = CliRunner().invoke(main, ["console"], env=env)
    assert result.exit_code == 2
    assert "not a loopback address" in result.stderr
    assert "EMAIL_WORKER_CONSOLE_IAP_AUDIENCE" in result.stderr


def test_the_console_refuses_iap_keys_over_plain_http_elsewhere_than_loopback() -> None:
    env = {
        "GOOGLE_CLOUD_PROJECT": "p",
        "EMAIL_WORKER_CONSOLE_IAP_CERTS_URL": "http://keys.example/public_key",
    }
    result = CliRunner().invoke(main, ["console"], env=env)
    assert result.exit_code == 2
    assert "EMAIL_WORKER_CONSOLE_IAP_CERTS_URL must be an https URL" in result.stderr


def test_role_lists_hold_addresses_or_domains_only() -> None:
    env = {"GOOGLE_CLOUD_PROJECT": "p", "EMAIL_WORKER_CONSOLE_OPERATORS": "oncall-team"}
    result = CliRunner().invoke(main, ["console"], env=env)
    assert result.exit_code == 2
    assert "each entry must be an email address or domain:NAME" in result.stderr
