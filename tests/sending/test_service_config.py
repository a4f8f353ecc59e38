"""Service configuration documents: where they are found and what makes them invalid."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.ports import free_port
from worker.sending.errors import ConfigurationError
from worker.sending.service_config import (
    ServiceConfig,
    config_location,
    load_service_config,
    parse_service_config,
)

ROLE = "arn:aws:iam::123456789012:role/email-billing"


def write_config(directory: Path, service_id: str, document: object) -> None:
    path = directory / "production" / f"{service_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))


@pytest.fixture
def template(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    value = f"file://{tmp_path}/{{environment}}/{{service_id}}.json"
    monkeypatch.setenv("EMAIL_WORKER_SERVICE_CONFIG_URL", value)
    return value


def test_the_location_fills_environment_and_service_into_the_template() -> None:
    assert (
        config_location("billing", "staging", "gs://cfg/{environment}/{service_id}.json")
        == "gs://cfg/staging/billing.json"
    )


def test_the_location_template_comes_from_the_environment(template: str) -> None:
    assert config_location("billing", "production").endswith("/production/billing.json")


def test_the_default_location_is_the_documented_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EMAIL_WORKER_SERVICE_CONFIG_URL", raising=False)
    assert config_location("billing", "production") == (
        "gs://email-worker-config/production/billing.json"
    )


def test_a_template_with_an_unknown_placeholder_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="template"):
        config_location("billing", "production", "file:///x/{project}/{service_id}.json")


def test_a_complete_document_is_read_from_a_file(template: str, tmp_path: Path) -> None:
    write_config(
        tmp_path,
        "billing",
        {
            "service_id": "billing",
            "service_role_arn": ROLE,
            "aws_region": "eu-west-1",
            "default_from_address": "billing@example.org",
            "allowed_from_domains": ["Example.org."],
        },
    )
    config = load_service_config("billing")
    assert config.service_role_arn == ROLE
    assert config.aws_region == "eu-west-1"
    assert config.default_from_address == "billing@example.org"
    assert config.allowed_from_domains == ("example.org",)


def test_a_missing_document_names_the_service_and_location(template: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_service_config("nobody")
    assert "'nobody'" in caught.value.message
    assert str(tmp_path) in caught.value.message
    assert "does not exist" in caught.value.message


def test_an_unreadable_document_is_a_configuration_error(template: str, tmp_path: Path) -> None:
    (tmp_path / "production" / "billing.json").mkdir(parents=True)
    with pytest.raises(ConfigurationError, match="unreadable"):
        load_service_config("billing")


def test_an_unsupported_scheme_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="unsupported scheme"):
        load_service_config("billing", template="https://example.org/{service_id}")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b"{}", "service_role_arn is missing"),
        (b'{"service_role_arn": "role/x"}', "not an ARN"),
        (b'{"service_role_arn": "arn:aws:s3:::a-bucket"}', "not an ARN of an IAM role"),
        (b'{"service_role_arn": "arn:aws:iam::123:role/x"}', "not an ARN of an IAM role"),
        (json.dumps({"service_role_arn": ROLE, "region": "x"}).encode(), "unknown keys"),
        (json.dumps({"service_role_arn": ROLE, "service_id": "other"}).encode(), "names service"),
        (json.dumps({"service_role_arn": ROLE, "aws_region": 5}).encode(), "aws_region"),
        (
            json.dumps({"service_role_arn": ROLE, "default_from_address": "nobody"}).encode(),
            "default_from_address",
        ),
        (
            json.dumps({"service_role_arn": ROLE, "allowed_from_domains": "a.org"}).encode(),
            "allowed_from_domains",
        ),
        (
            json.dumps({"service_role_arn": ROLE, "allowed_from_domains": ["a b.org"]}).encode(),
            "allowed_from_domains: 'a b.org' is not a domain name",
        ),
        (
            json.dumps({"service_role_arn": ROLE, "allowed_from_domains": ["-a.org"]}).encode(),
            "allowed_from_domains: '-a.org' is not a domain name",
        ),
        (
            json.dumps({"service_role_arn": ROLE, "attachment_prefixes": "gs://b/"}).encode(),
            "attachment_prefixes: expected a list",
        ),
        (
            json.dumps(
                {"service_role_arn": ROLE, "attachment_prefixes": ["gs://files/a"]}
            ).encode(),
            "attachment_prefixes: a prefix must end with '/'",
        ),
        (
            json.dumps(
                {"service_role_arn": ROLE, "attachment_prefixes": ["gs://files/a/../"]}
            ).encode(),
            "attachment_prefixes: the object name has an empty, '.' or '..' segment",
        ),
    ],
)
def test_an_invalid_document_says_why(raw: bytes, reason: str) -> None:
    with pytest.raises(ConfigurationError, match=reason) as caught:
        parse_service_config(raw, service_id="billing", location="file:///cfg/billing.json")
    assert "'billing'" in caught.value.message
    assert "file:///cfg/billing.json" in caught.value.message


def test_an_oversized_document_is_a_configuration_error(template: str, tmp_path: Path) -> None:
    path = tmp_path / "production" / "billing.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(b" " * 70_000)
    with pytest.raises(ConfigurationError, match="larger than"):
        load_service_config("billing")


def test_internationalised_allowed_domains_are_kept_in_their_ascii_form() -> None:
    raw = json.dumps({"service_role_arn": ROLE, "allowed_from_domains": ["Bücher.example."]})
    config = parse_service_config(raw.encode(), service_id="billing", location="file:///c.json")
    assert config.allowed_from_domains == ("xn--bcher-kva.example",)


def test_a_gs_document_without_google_credentials_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No credentials file, and no metadata server answers the probe.
    monkeypatch.setenv("GCE_METADATA_IP", f"127.0.0.1:{free_port()}")
    with pytest.raises(ConfigurationError) as caught:
        load_service_config("billing", template="gs://cfg/{service_id}.json")
    assert caught.value.message == (
        "configuration for service 'billing' at gs://cfg/billing.json is unreadable: no Google "
        "credentials"
    )


def test_attachment_prefixes_are_read_as_bucket_and_path() -> None:
    raw = json.dumps(
        {"service_role_arn": ROLE, "attachment_prefixes": ["gs://files/billing/", "gs://mine/"]}
    ).encode()
    config = parse_service_config(raw, service_id="billing", location="file:///c.json")
    assert [(p.bucket, p.path) for p in config.attachment_prefixes] == [
        ("files", "billing/"),
        ("mine", ""),
    ]


def test_a_document_without_attachment_prefixes_allows_no_attachment_by_reference() -> None:
    raw = json.dumps({"service_role_arn": ROLE}).encode()
    config = parse_service_config(raw, service_id="billing", location="file:///c.json")
    assert config.attachment_prefixes == ()


def test_a_document_names_the_services_ses_tenant_and_its_reputation_policy() -> None:
    raw = json.dumps(
        {"service_role_arn": ROLE, "ses_tenant": "billing_eu-1", "reputation_policy": "strict"}
    ).encode()
    config = parse_service_config(raw, service_id="billing", location="file:///x.json")
    assert (config.ses_tenant, config.reputation_policy) == ("billing_eu-1", "strict")


def test_a_document_without_ses_tenant_sends_with_no_tenant() -> None:
    raw = json.dumps({"service_role_arn": ROLE}).encode()
    config = parse_service_config(raw, service_id="billing", location="file:///x.json")
    assert (config.ses_tenant, config.reputation_policy) == (None, None)


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ({"ses_tenant": "bill ing"}, "ses_tenant must be 1-64 letters"),
        ({"ses_tenant": "x" * 65}, "ses_tenant must be 1-64 letters"),
        ({"ses_tenant": 7}, "ses_tenant must be 1-64 letters"),
        ({"reputation_policy": "lenient"}, "reputation_policy must be one of none, standard"),
    ],
)
def test_an_invalid_tenant_or_reputation_policy_says_why(
    document: dict[str, object], reason: str
) -> None:
    raw = json.dumps({"service_role_arn": ROLE, **document}).encode()
    with pytest.raises(ConfigurationError, match=reason):
        parse_service_config(raw, service_id="billing", location="file:///x.json")


def _parsed(**fields: object) -> ServiceConfig:
    raw = json.dumps({"service_role_arn": ROLE, **fields}).encode()
    return parse_service_config(raw, service_id="billing", location="file:///c.json")


def test_a_document_without_sharing_keys_has_weight_1_and_no_daily_cap() -> None:
    config = _parsed()
    assert (config.weight, config.max_per_day, config.over_daily_cap) == (1.0, None, "wait")


def test_weight_max_per_day_and_over_daily_cap_are_read() -> None:
    config = _parsed(weight=2.5, max_per_day=50_000, over_daily_cap="reject")
    assert (config.weight, config.max_per_day, config.over_daily_cap) == (2.5, 50_000, "reject")


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"weight": 0}, "weight must be a number above 0"),
        ({"weight": -1}, "weight must be a number above 0"),
        ({"weight": "3"}, "weight must be a number above 0"),
        ({"weight": True}, "weight must be a number above 0"),
        ({"weight": 1e6}, "at most 1000"),
        ({"max_per_day": 1.5}, "max_per_day must be a whole number"),
        ({"max_per_day": -1}, "max_per_day must be a whole number"),
        ({"max_per_day": "100"}, "max_per_day must be a whole number"),
        ({"max_per_day": 10, "over_daily_cap": "drop"}, 'over_daily_cap must be "wait" or'),
        ({"over_daily_cap": "reject"}, "over_daily_cap needs max_per_day"),
    ],
)
def test_invalid_sharing_keys_say_why(fields: dict[str, object], reason: str) -> None:
    with pytest.raises(ConfigurationError, match=reason) as caught:
        _parsed(**fields)
    assert "'billing'" in caught.value.message


def test_a_nan_weight_is_invalid() -> None:
    raw = b'{"service_role_arn": "' + ROLE.encode() + b'", "weight": NaN}'
    with pytest.raises(ConfigurationError, match="weight must be a number above 0"):
        parse_service_config(raw, service_id="billing", location="file:///c.json")
