"""terraform/console.tf: the web console's own Cloud Run service, account and IAP access.

Parsed as tests/project/test_terraform.py parses the configuration; the roles' derivation
(console_access.tf) needs no provider and is evaluated with real terraform where it exists.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.project.test_terraform import (
    LEDGER_CONDITION,
    ROOT,
    TERRAFORM,
    TF,
    TerraformAlone,
    _block,
    _dynamic,
    _iam_members,
    terraform_alone,
)
from worker.config.settings import Settings

CONSOLE = "${google_service_account.console[0].member}"


@pytest.fixture(scope="module")
def tf(tmp_path_factory: pytest.TempPathFactory) -> TerraformAlone:
    return terraform_alone(tmp_path_factory)


def _target(body: dict[str, Any]) -> str:
    return str(
        body.get("topic")
        or body.get("subscription")
        or body.get("name")
        or body.get("bucket")
        or _block(body, "condition")["expression"]
    )


def test_the_console_is_off_unless_enabled() -> None:
    assert TF.variables["console_enabled"]["default"] is False
    for (type_, name), body in TF.resources.items():
        if "console" in name or (type_, name) == ("google_project_service_identity", "iap"):
            switch = str(body.get("count") or body.get("for_each"))
            assert "var.console_enabled" in switch, (type_, name)


def test_the_console_account_reads_the_ledger_dead_letters_and_configs_and_publishes_replays() -> (
    None
):
    grants = {
        (type_, body["role"], _target(body))
        for type_, _name, body in _iam_members()
        if body["member"] == CONSOLE
    }
    assert grants == {
        ("google_project_iam_member", "roles/datastore.viewer", LEDGER_CONDITION),
        (
            "google_pubsub_subscription_iam_member",
            "roles/pubsub.subscriber",
            "${google_pubsub_subscription.dead_letter_ops.name}",
        ),
        (
            "google_pubsub_topic_iam_member",
            "roles/pubsub.publisher",
            "${local.console_replay_topic}",
        ),
        # The services page: each service's weight and max_per_day.
        (
            "google_storage_bucket_iam_member",
            "roles/storage.objectViewer",
            "${google_storage_bucket.config.name}",
        ),
    }
    # Replays go where `email-worker dlq replay` sends them: never a service's topic.
    assert TF.locals["console_replay_topic"] == (
        "${local.per_service ? google_pubsub_topic.replays.name : "
        "one(google_pubsub_topic.requests[*].name)}"
    )
    # Nothing is granted on the account itself: nobody may act as it.
    for _type, _name, body in _iam_members():
        assert "google_service_account.console" not in str(body.get("service_account_id", ""))


def test_the_console_has_an_account_of_its_own() -> None:
    account = TF.resource("google_service_account", "console")
    assert account["account_id"] == "${var.console_service_account_id}"
    assert TF.variables["console_service_account_id"]["default"] == "email-worker-console"
    others = {
        TF.variables[name]["default"]
        for name in ("worker_service_account_id", "events_reader_service_account_id")
    }
    assert "email-worker-console" not in others


def test_the_console_runs_the_console_command_behind_iap_as_its_account() -> None:
    service = TF.resource("google_cloud_run_v2_service", "console")
    assert service["provider"] == "google-beta"
    assert service["iap_enabled"] is True
    assert service["name"] == "${local.console_service_name}"
    template = _block(service, "template")
    assert template["service_account"] == "${google_service_account.console[0].email}"
    (container,) = template["containers"]
    assert container["args"] == ["console"]
    assert "command" not in container, "the image's ENTRYPOINT must be kept"
    assert _dynamic(container, "env")["for_each"] == "${local.console_env}"
    # Jobs (replays and purges of large selections) live in one instance's memory and run
    # after their page answered.
    assert _block(template, "scaling")["max_instance_count"] == 1
    assert template["timeout"] == "3600s"  # a job's streamed page may stay open
    assert _block(container, "resources")["cpu_idle"] is False


def test_only_iap_may_invoke_the_console_and_iap_admits_the_viewer_and_operator_groups() -> None:
    invokers = [
        body
        for type_, _name, body in _iam_members()
        if type_ == "google_cloud_run_v2_service_iam_member" and "console" in body["name"]
    ]
    assert [body["member"] for body in invokers] == [
        "${google_project_service_identity.iap[0].member}"
    ]
    accessor = TF.resource("google_iap_web_cloud_run_service_iam_member", "console_accessor")
    assert accessor["role"] == "roles/iap.httpsResourceAccessor"
    assert accessor["cloud_run_service_name"] == "${google_cloud_run_v2_service.console[0].name}"
    assert "var.console_viewer_groups" in accessor["for_each"]
    assert "var.console_operator_groups" in accessor["for_each"]


def test_the_console_gets_its_iap_audience_roles_and_the_cli_s_settings() -> None:
    managed = TF.locals["console_managed_env"]
    for setting, source in (
        ("EMAIL_WORKER_CONSOLE_HOST", '"0.0.0.0"'),
        ("EMAIL_WORKER_CONSOLE_IAP_AUDIENCE", "local.console_iap_audience"),
        ("EMAIL_WORKER_CONSOLE_VIEWERS", 'join(",", sort(local.console_viewers))'),
        ("EMAIL_WORKER_CONSOLE_OPERATORS", 'join(",", sort(local.console_operators))'),
    ):
        assert f"{setting} = {source}" in managed
    assert TF.locals["console_iap_audience"] == (
        "/projects/${data.google_project.this.number}/locations/${var.region}"
        "/services/${local.console_service_name}"
    )
    shared = set(TF.locals["console_shared_env"])
    assert shared <= set(TF.locals["managed_env"])
    assert {"EMAIL_WORKER_LEDGER", "EMAIL_WORKER_DEAD_LETTER_SUBSCRIPTION"} <= shared
    known = {name for name, _default, _doc in Settings.documentation()}
    assert shared <= known


def test_the_console_accepts_the_environment_terraform_gives_it() -> None:
    settings = Settings.from_env(
        {
            "GOOGLE_CLOUD_PROJECT": "p",
            "EMAIL_WORKER_CONSOLE_HOST": "0.0.0.0",
            "EMAIL_WORKER_CONSOLE_IAP_AUDIENCE": "/projects/1/locations/r/services/console",
            "EMAIL_WORKER_CONSOLE_VIEWERS": "domain:example.org,viewer@example.org",
            "EMAIL_WORKER_CONSOLE_OPERATORS": "ops@example.org",
        }
    )
    assert settings.console.binding_problems() == []
    assert settings.console.operators == frozenset({"ops@example.org"})


def test_the_console_s_roles_come_from_the_users_and_domains_iap_admits(
    tf: TerraformAlone,
) -> None:
    groups = {
        "console_viewer_groups": ["group:support@example.org", "domain:example.org"],
        "console_operator_groups": ["user:ops@example.org", "group:oncall@example.org"],
    }
    roles = tf.value("{v = local.console_viewers, o = local.console_operators}", **groups)
    assert roles == {"v": ["domain:example.org"], "o": ["ops@example.org"]}
    # Given explicitly, the lists win.
    explicit = tf.value("local.console_operators", console_operators=["a@example.org"], **groups)
    assert explicit == ["a@example.org"]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("console_viewer_groups", ["support@example.org"]),
        ("console_operators", ["group:ops@example.org"]),
    ],
)
def test_console_access_in_the_wrong_form_fails_the_plan(
    tf: TerraformAlone, variable: str, value: list[str]
) -> None:
    result = tf.plan(**{variable: value})
    assert result.returncode != 0
    assert variable in result.stderr


def test_the_docs_say_how_to_deploy_the_console() -> None:
    readme = (TERRAFORM / "README.md").read_text()
    console = (ROOT / "docs" / "console.md").read_text()
    for text in (readme, console):
        assert "console_enabled" in text
        assert "roles/datastore.viewer" in text
