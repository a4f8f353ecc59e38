"""terraform/: it parses, and the properties a reviewer looks for hold.

No terraform binary can be installed here (none is packaged for PyPI, Debian or npm in a usable
version), so the configuration is parsed with python-hcl2 and its key properties asserted: the
dead-letter policy, OIDC push, least-privilege grants, the AWS trust conditions, SES permissions
without wildcards, pinned providers, documented variables, and that the values terraform hands
the worker are the ones the worker reads.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import hcl2
import pytest

from tests.support.dockerfile import Dockerfile
from worker.config.settings import Settings
from worker.ledger import DEFAULT_COLLECTION, DEFAULT_RETENTION_S
from worker.sending.identity import TOKEN_AUDIENCE
from worker.sending.service_config import _KNOWN_KEYS, config_location, parse_service_config

ROOT = Path(__file__).resolve().parent.parent
TERRAFORM = ROOT / "terraform"
TF_FILES = sorted(TERRAFORM.glob("*.tf"))
OPTIONS = hcl2.SerializationOptions(
    with_comments=False, explicit_blocks=False, strip_string_quotes=True, preserve_heredocs=False
)


def _load(path: Path) -> dict[str, Any]:
    with path.open() as handle:
        return dict(hcl2.load(handle, serialization_options=OPTIONS))


class Config:
    """All of terraform/*.tf, indexed by block."""

    def __init__(self) -> None:
        self.resources: dict[tuple[str, str], dict[str, Any]] = {}
        self.data: dict[tuple[str, str], dict[str, Any]] = {}
        self.variables: dict[str, dict[str, Any]] = {}
        self.outputs: dict[str, dict[str, Any]] = {}
        self.locals: dict[str, Any] = {}
        self.terraform: list[dict[str, Any]] = []
        for path in TF_FILES:
            parsed = _load(path)
            for kind, target in (("resource", self.resources), ("data", self.data)):
                for block in parsed.get(kind, []):
                    for type_, named in block.items():
                        for name, body in named.items():
                            assert (type_, name) not in target, f"{type_}.{name} twice"
                            target[(type_, name)] = body
            for block in parsed.get("variable", []):
                self.variables.update(block)
            for block in parsed.get("output", []):
                self.outputs.update(block)
            for block in parsed.get("locals", []):
                self.locals.update(block)
            self.terraform.extend(parsed.get("terraform", []))

    def resource(self, type_: str, name: str) -> dict[str, Any]:
        return self.resources[(type_, name)]

    def of_type(self, type_: str) -> dict[str, dict[str, Any]]:
        return {name: body for (t, name), body in self.resources.items() if t == type_}


TF = Config()


def _block(body: dict[str, Any], name: str) -> dict[str, Any]:
    """The single nested block ``name`` of ``body``."""
    blocks = body[name]
    assert isinstance(blocks, list)
    assert len(blocks) == 1, f"expected one {name} block"
    return dict(blocks[0])


def _dynamic(body: dict[str, Any], name: str) -> dict[str, Any]:
    found = [d[name] for d in body.get("dynamic", []) if name in d]
    assert len(found) == 1, f"expected one dynamic {name} block"
    return dict(found[0])


def _ref(expression: str) -> str:
    """The expression inside ``${...}``."""
    match = re.fullmatch(r"\$\{(.*)\}", expression, re.DOTALL)
    assert match, f"{expression!r} is not an expression"
    return match.group(1)


# The resource name Firestore checks document reads and writes against: the ledger database.
LEDGER_CONDITION = (
    'resource.name == "projects/${var.project_id}/databases/'
    '${google_firestore_database.ledger.name}"'
)


def _iam_members() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (type_, name, body)
        for (type_, name), body in TF.resources.items()
        if type_.endswith("_iam_member")
    ]


# -- it parses, and it is written to be read ------------------------------------------------


@pytest.mark.parametrize("path", TF_FILES, ids=lambda p: p.name)
def test_every_terraform_file_parses(path: Path) -> None:
    assert _load(path)


def test_the_configuration_is_in_the_standard_layout() -> None:
    names = {p.name for p in TF_FILES}
    assert {"versions.tf", "variables.tf", "outputs.tf", "main.tf"} <= names
    assert (TERRAFORM / "README.md").is_file()
    assert (TERRAFORM / "terraform.tfvars.example").is_file()
    # Resources are split by concern, not piled into main.tf.
    assert len(names - {"versions.tf", "variables.tf", "outputs.tf", "providers.tf"}) >= 4


def test_provider_versions_are_pinned() -> None:
    (block,) = TF.terraform
    assert re.fullmatch(r">= ?1\.\d+(\.\d+)?", block["required_version"])
    (providers,) = block["required_providers"]
    assert set(providers) == {"google", "aws"}
    for name, spec in providers.items():
        assert spec["source"] == f"hashicorp/{name}"
        # Pessimistic to a minor version: bug fixes and features, never a new major.
        assert re.fullmatch(r"~> ?\d+\.\d+", spec["version"]), spec["version"]


def test_every_variable_has_a_description_and_a_type() -> None:
    assert TF.variables
    for name, spec in TF.variables.items():
        assert spec.get("description", "").strip(), f"variable {name} has no description"
        assert spec.get("type"), f"variable {name} has no type"


def test_every_variable_is_used_and_every_reference_is_declared() -> None:
    text = {p.name: p.read_text() for p in TF_FILES}
    used = {
        name
        for file, content in text.items()
        if file != "variables.tf"
        for name in re.findall(r"\bvar\.(\w+)", content)
    }
    referenced = {
        name for content in text.values() for name in re.findall(r"\bvar\.(\w+)", content)
    }
    assert referenced - set(TF.variables) == set(), "undeclared variables"
    assert set(TF.variables) - used == set(), "variables nothing reads"


def test_the_readme_documents_every_input_and_output() -> None:
    readme = (TERRAFORM / "README.md").read_text()
    for name in [*TF.variables, *TF.outputs]:
        assert f"| `{name}` |" in readme, f"{name} is not in terraform/README.md"
    assert (TERRAFORM / "terraform.tfvars.example").read_text() in readme


def test_every_output_has_a_description() -> None:
    for name, spec in TF.outputs.items():
        assert spec.get("description", "").strip(), f"output {name} has no description"


def test_the_example_tfvars_sets_every_required_variable_and_no_undeclared_one() -> None:
    example = _load(TERRAFORM / "terraform.tfvars.example")
    required = {name for name, spec in TF.variables.items() if "default" not in spec}
    assert required <= set(example), f"missing: {required - set(example)}"
    assert set(example) <= set(TF.variables), f"undeclared: {set(example) - set(TF.variables)}"
    for name in example:
        assert not re.search(r"secret|password|key$|token", name, re.IGNORECASE), name


def test_checkov_skips_carry_a_reason() -> None:
    files = [*TF_FILES, ROOT / "Dockerfile"]
    for path in files:
        for line in path.read_text().splitlines():
            if "checkov:skip" in line:
                assert re.search(r"checkov:skip=CKV2?_\w+:\s*\S{3,}", line), f"{path.name}: {line}"


def test_nothing_deployment_specific_is_hard_coded() -> None:
    # Projects, accounts, regions, ARNs and identities come from variables (or from the
    # resources terraform creates); only their defaults in variables.tf may name one.
    for path in TF_FILES:
        if path.name == "variables.tf":
            continue
        text = path.read_text()
        assert not re.search(r"\b\d{12}\b", text), f"{path.name}: an AWS account id"
        assert "arn:aws:" not in text, f"{path.name}: a literal ARN"
        assert not re.search(
            r"\b(?:europe|us|asia|australia|northamerica|southamerica|me|africa)-[a-z]+\d\b",
            text,
        ), f"{path.name}: a Google region"
        assert not re.search(r"\b(?:eu|us|ap|ca|sa|me|af)-[a-z]+-\d\b", text), (
            f"{path.name}: an AWS region"
        )
        for account in re.findall(r"[\w.${}-]+@[\w.-]+\.iam\.gserviceaccount\.com", text):
            assert account.startswith("service-${data.google_project.this.number}@gcp-sa-pubsub")


# -- Pub/Sub ---------------------------------------------------------------------------------


def test_the_topics_and_subscriptions_have_the_names_the_worker_expects_by_default() -> None:
    names = TF.variables["pubsub_names"]
    defaults = dict(re.findall(r"(\w+)\s*=\s*optional\(string,\s*\"?([\w-]+)\"?\)", names["type"]))
    settings = Settings.from_env({})
    assert defaults == {
        "requests_topic": settings.requests_topic,
        "results_topic": settings.results_topic,
        "dead_letter_topic": settings.dead_letter_topic,
        "worker_subscription": settings.subscription,
        "dead_letter_subscription": settings.dead_letter_subscription,
    }
    for topic in ("requests", "results", "dead_letter"):
        body = TF.resource("google_pubsub_topic", topic)
        assert body["name"] == f"${{var.pubsub_names.{topic}_topic}}"


def test_the_worker_subscription_dead_letters_after_max_delivery_attempts() -> None:
    subscription = TF.resource("google_pubsub_subscription", "worker")
    assert subscription["topic"] == "${google_pubsub_topic.requests.id}"
    policy = _block(subscription, "dead_letter_policy")
    assert policy["dead_letter_topic"] == "${google_pubsub_topic.dead_letter.id}"
    assert policy["max_delivery_attempts"] == "${var.max_delivery_attempts}"
    variable = TF.variables["max_delivery_attempts"]
    assert variable["default"] == 5
    assert variable["type"] == "number"
    assert "var.max_delivery_attempts >= 5" in variable["validation"][0]["condition"]
    assert "var.max_delivery_attempts <= 100" in variable["validation"][0]["condition"]
    # The worker is told the same number, so it knows which attempt is its last.
    assert TF.locals["managed_env"]["EMAIL_WORKER_MAX_DELIVERY_ATTEMPTS"] == (
        "${tostring(var.max_delivery_attempts)}"
    )


def test_the_worker_subscription_has_a_retry_policy_an_ack_deadline_and_never_expires() -> None:
    subscription = TF.resource("google_pubsub_subscription", "worker")
    retry = _block(subscription, "retry_policy")
    assert retry["minimum_backoff"] == "${var.retry_minimum_backoff_seconds}s"
    assert retry["maximum_backoff"] == "${var.retry_maximum_backoff_seconds}s"
    assert subscription["ack_deadline_seconds"] == "${var.ack_deadline_seconds}"
    # One attempt (sends retried up to the worker's send deadline) fits in the ack deadline.
    assert TF.variables["ack_deadline_seconds"]["default"] > Settings.from_env({}).send_deadline_s
    assert _block(subscription, "expiration_policy")["ttl"] == ""
    ops = TF.resource("google_pubsub_subscription", "dead_letter_ops")
    assert ops["topic"] == "${google_pubsub_topic.dead_letter.id}"
    assert ops["name"] == "${var.pubsub_names.dead_letter_subscription}"
    assert _block(ops, "expiration_policy")["ttl"] == ""


def test_push_delivery_carries_an_oidc_token_of_the_push_account_for_the_push_audience() -> None:
    subscription = TF.resource("google_pubsub_subscription", "worker")
    push = _dynamic(subscription, "push_config")
    assert push["for_each"] == "${local.push_mode ? [local.push_endpoint] : []}"
    (content,) = push["content"]
    assert content["push_endpoint"] == "${push_config.value}"
    token = _block(content, "oidc_token")
    assert token["service_account_email"] == "${one(google_service_account.push[*].email)}"
    assert token["audience"] == "${local.push_audience}"
    # The endpoint is the worker's push route, and the worker checks this audience and account.
    assert TF.locals["push_endpoint"] == "${local.service_url}/pubsub/push"
    assert '"/pubsub/push"' in (ROOT / "worker" / "transports" / "push.py").read_text()
    env = TF.locals["managed_env"]
    assert env["EMAIL_WORKER_PUSH_AUDIENCE"] == "${local.push_mode ? local.push_audience : null}"
    assert (
        env["EMAIL_WORKER_PUSH_SERVICE_ACCOUNT"] == "${one(google_service_account.push[*].email)}"
    )
    # Cloud Run admits the custom audience too.
    service = TF.resource("google_cloud_run_v2_service", "worker")
    assert service["custom_audiences"] == "${local.push_mode ? [local.push_audience] : null}"


def test_the_pubsub_service_agent_may_forward_dead_letters_and_sign_pushes() -> None:
    assert TF.locals["pubsub_service_agent"] == (
        "serviceAccount:service-${data.google_project.this.number}"
        "@gcp-sa-pubsub.iam.gserviceaccount.com"
    )
    agent = "${local.pubsub_service_agent}"
    grants = {
        (
            type_,
            body["role"],
            body.get("topic") or body.get("subscription") or body.get("service_account_id"),
        )
        for type_, _name, body in _iam_members()
        if body["member"] == agent
    }
    assert grants == {
        (
            "google_pubsub_topic_iam_member",
            "roles/pubsub.publisher",
            "${google_pubsub_topic.dead_letter.name}",
        ),
        (
            "google_pubsub_subscription_iam_member",
            "roles/pubsub.subscriber",
            "${google_pubsub_subscription.worker.name}",
        ),
        (
            "google_service_account_iam_member",
            "roles/iam.serviceAccountTokenCreator",
            "${google_service_account.push[0].name}",
        ),
    }


# -- Google identities: least privilege ------------------------------------------------------


def test_nothing_is_granted_project_wide_and_no_basic_role_is_used() -> None:
    # A Firestore database has no IAM policy of its own, so the worker's access to the ledger
    # database is the one project binding allowed: a member binding whose IAM condition admits
    # that database alone. Anything else at project or organisation level fails here.
    for (type_, name), body in TF.resources.items():
        if (type_, name) == ("google_project_iam_member", "ledger_user_worker"):
            assert _block(body, "condition")["expression"] == LEDGER_CONDITION
            continue
        assert not type_.startswith(("google_project_iam", "google_organization_iam")), name
    for type_, name, body in _iam_members():
        assert body["role"] not in {"roles/owner", "roles/editor", "roles/viewer"}, (type_, name)
        assert not body["member"].startswith(("allUsers", "allAuthenticatedUsers")), name


def test_the_worker_service_account_holds_only_the_grants_it_needs() -> None:
    worker = "${google_service_account.worker.member}"
    grants = {
        (
            body["role"],
            body.get("topic")
            or body.get("subscription")
            or body.get("bucket")
            or _block(body, "condition")["expression"],
        )
        for _type, _name, body in _iam_members()
        if body["member"] == worker
    }
    assert grants == {
        ("roles/pubsub.publisher", "${google_pubsub_topic.results.name}"),
        ("roles/pubsub.publisher", "${google_pubsub_topic.dead_letter.name}"),
        ("roles/pubsub.subscriber", "${google_pubsub_subscription.worker.name}"),
        ("roles/storage.objectViewer", "${google_storage_bucket.config.name}"),
        ("roles/datastore.user", LEDGER_CONDITION),
    }
    pull_only = TF.resource("google_pubsub_subscription_iam_member", "worker_subscriber_worker")
    assert pull_only["count"] == "${local.push_mode ? 0 : 1}"


def test_the_push_service_account_may_only_invoke_the_worker_service() -> None:
    push = "${google_service_account.push[0].member}"
    grants = [(t, b) for t, _n, b in _iam_members() if b["member"] == push]
    assert len(grants) == 1
    type_, body = grants[0]
    assert type_ == "google_cloud_run_v2_service_iam_member"
    assert body["role"] == "roles/run.invoker"
    assert body["name"] == "${google_cloud_run_v2_service.worker.name}"


# -- Cloud Run -------------------------------------------------------------------------------


def test_cloud_run_runs_the_image_entrypoint_in_the_chosen_mode_as_the_worker_account() -> None:
    dockerfile = Dockerfile(ROOT / "Dockerfile")
    service = TF.resource("google_cloud_run_v2_service", "worker")
    template = _block(service, "template")
    assert template["service_account"] == "${google_service_account.worker.email}"
    (container,) = template["containers"]
    assert container["image"] == "${var.image}"
    assert "command" not in container, "the image's ENTRYPOINT must be kept"
    cmd = dockerfile.final.last("CMD")
    assert cmd is not None
    assert container["args"] == ['${local.push_mode ? "serve" : "pull"}']
    assert cmd.exec_form() == ["serve"]
    assert [i.arguments for i in dockerfile.final.all("EXPOSE")] == [
        str(TF.locals["container_port"])
    ]
    assert _block(container, "ports")["container_port"] == "${local.container_port}"
    # A pull worker needs its CPU between requests.
    assert _block(container, "resources")["cpu_idle"] == "${local.push_mode}"
    env = _dynamic(container, "env")
    assert env["for_each"] == "${local.worker_env}"


def test_cloud_run_probes_the_worker_health_endpoints() -> None:
    service = TF.resource("google_cloud_run_v2_service", "worker")
    (container,) = _block(service, "template")["containers"]
    startup = _block(_block(container, "startup_probe"), "http_get")["path"]
    liveness = _block(_block(container, "liveness_probe"), "http_get")["path"]
    served = (ROOT / "worker" / "transports" / "http_app.py").read_text()
    for path in (startup, liveness):
        assert f'"{path}"' in served, f"the worker does not serve {path}"


def test_cloud_run_scaling_concurrency_ingress_and_resources_are_variables() -> None:
    service = TF.resource("google_cloud_run_v2_service", "worker")
    template = _block(service, "template")
    assert _block(template, "scaling") == {
        "min_instance_count": "${var.min_instances}",
        "max_instance_count": "${var.max_instances}",
    }
    assert template["max_instance_request_concurrency"] == "${var.request_concurrency}"
    assert service["ingress"] == "${var.ingress}"
    assert TF.variables["ingress"]["default"] == "INGRESS_TRAFFIC_INTERNAL_ONLY"
    (container,) = template["containers"]
    assert _block(container, "resources")["limits"] == {
        "cpu": "${var.cpu}",
        "memory": "${var.memory}",
    }


def test_the_worker_environment_sets_only_settings_the_worker_reads() -> None:
    known = {name for name, _default, _doc in Settings.documentation()}
    managed = set(TF.locals["managed_env"])
    assert managed <= known, f"the worker reads no {managed - known}"
    assert "PORT" not in managed, "Cloud Run sets PORT itself"
    # extra_env may not override what terraform manages.
    forbidden = set(
        re.findall(r'"([A-Z_]+)"', TF.variables["extra_env"]["validation"][0]["condition"])
    )
    assert forbidden == managed | {"PORT"}
    assert "EMAIL_WORKER_PUSH_AUTH" in TF.variables["extra_env"]["validation"][1]["condition"]


def test_each_instance_gets_its_share_of_the_ses_send_rate_and_none_is_the_default() -> None:
    rate = TF.locals["managed_env"]["EMAIL_WORKER_SEND_RATE_PER_S"]
    assert rate == (
        "${var.ses_max_send_rate_per_s == null ? null : "
        "tostring(var.ses_max_send_rate_per_s / var.max_instances)}"
    )
    assert TF.variables["ses_max_send_rate_per_s"]["default"] is None


# -- request ledger --------------------------------------------------------------------------


def _ledger_timestamps() -> set[str]:
    """The fields the Firestore ledger writes as timestamps (``"name": utc(...)``)."""
    source = (ROOT / "worker" / "ledger" / "firestore_ledger.py").read_text()
    return set(re.findall(r'"(\w+)": utc\(', source))


def test_the_ledger_is_a_native_mode_database_of_its_own_protected_from_deletion() -> None:
    database = TF.resource("google_firestore_database", "ledger")
    assert database["type"] == "FIRESTORE_NATIVE"
    assert database["database_edition"] == "STANDARD"
    assert database["name"] == "${var.ledger_database_id}"
    assert TF.variables["ledger_database_id"]["default"] == "email-worker-ledger"
    assert database["location_id"] == "${coalesce(var.ledger_location, var.region)}"
    assert database["delete_protection_state"] == (
        '${var.deletion_protection ? "DELETE_PROTECTION_ENABLED" : "DELETE_PROTECTION_DISABLED"}'
    )
    assert TF.variables["deletion_protection"]["default"] is True
    # Destroy deletes it (once unprotected) rather than leaving it behind out of state.
    assert database["deletion_policy"] == "DELETE"
    assert TF.variables["ledger_point_in_time_recovery"]["default"] is False


def test_the_ttl_policy_is_on_expire_at_in_the_collection_the_worker_uses() -> None:
    field = TF.resource("google_firestore_field", "ledger_expire_at")
    assert field["database"] == "${google_firestore_database.ledger.name}"
    assert field["collection"] == "${local.ledger_collection}"
    assert TF.locals["ledger_collection"] == DEFAULT_COLLECTION
    assert field["field"] == "expire_at"
    assert "expire_at" in _ledger_timestamps(), "the worker writes no expire_at timestamp"
    assert field["ttl_config"] == [{}]


def test_every_timestamp_the_worker_writes_is_exempt_from_single_field_indexes() -> None:
    expire_at = TF.resource("google_firestore_field", "ledger_expire_at")
    assert expire_at["index_config"] == [{}]
    others = TF.resource("google_firestore_field", "ledger_unindexed")
    assert others["for_each"] == "${local.ledger_unindexed_fields}"
    assert others["field"] == "${each.key}"
    assert others["collection"] == "${local.ledger_collection}"
    assert others["database"] == "${google_firestore_database.ledger.name}"
    assert others["index_config"] == [{}]
    assert "ttl_config" not in others
    unindexed = set(re.findall(r'"(\w+)"', TF.locals["ledger_unindexed_fields"]))
    assert unindexed | {"expire_at"} == _ledger_timestamps()


def test_the_worker_may_use_the_ledger_database_and_no_other() -> None:
    grant = TF.resource("google_project_iam_member", "ledger_user_worker")
    assert grant["project"] == "${var.project_id}"
    assert grant["member"] == "${google_service_account.worker.member}"
    assert grant["role"] == "roles/datastore.user"
    condition = _block(grant, "condition")
    assert condition["expression"] == LEDGER_CONDITION
    assert condition["title"].strip()


def test_the_service_uses_the_ledger_database_with_the_worker_s_default_retention() -> None:
    env = TF.locals["managed_env"]
    assert env["EMAIL_WORKER_LEDGER"] == "firestore://${google_firestore_database.ledger.name}"
    assert env["EMAIL_WORKER_LEDGER_RETENTION_S"] == "${tostring(var.ledger_retention_seconds)}"
    assert env["EMAIL_WORKER_LEDGER_TAKEOVER"] == "${var.ledger_takeover}"
    worker = Settings.from_env({})
    retention = TF.variables["ledger_retention_seconds"]["default"]
    assert retention == worker.ledger_retention_s == DEFAULT_RETENTION_S
    assert TF.variables["ledger_takeover"]["default"] == worker.ledger_takeover == "resend"
    assert '["resend", "fail"]' in TF.variables["ledger_takeover"]["validation"][0]["condition"]


def test_the_worker_accepts_the_ledger_settings_terraform_gives_it() -> None:
    settings = Settings.from_env(
        {
            "EMAIL_WORKER_LEDGER": "firestore://" + TF.variables["ledger_database_id"]["default"],
            "EMAIL_WORKER_LEDGER_RETENTION_S": str(
                TF.variables["ledger_retention_seconds"]["default"]
            ),
            "EMAIL_WORKER_LEDGER_TAKEOVER": "fail",
        }
    )
    assert settings.ledger == "firestore://email-worker-ledger"


def test_the_ledger_keeps_records_at_least_as_long_as_pubsub_keeps_requests() -> None:
    service = TF.resource("google_cloud_run_v2_service", "worker")
    conditions = [p["condition"] for p in service["lifecycle"][0]["precondition"]]
    assert "${var.ledger_retention_seconds >= var.request_retention_seconds}" in conditions
    assert (
        TF.variables["ledger_retention_seconds"]["default"]
        >= TF.variables["request_retention_seconds"]["default"]
    )


def test_extra_env_cannot_override_the_ledger_settings() -> None:
    forbidden = TF.variables["extra_env"]["validation"][0]["condition"]
    for name in (
        "EMAIL_WORKER_LEDGER",
        "EMAIL_WORKER_LEDGER_RETENTION_S",
        "EMAIL_WORKER_LEDGER_TAKEOVER",
    ):
        assert f'"{name}"' in forbidden, name
    # And were one let through, the managed value would still win.
    assert TF.locals["worker_env"].startswith("${merge(var.extra_env, ")


def test_the_service_starts_after_the_ledger_database_and_the_grant_to_use_it() -> None:
    service = TF.resource("google_cloud_run_v2_service", "worker")
    assert "${google_firestore_database.ledger}" in service["depends_on"]
    assert "${google_project_iam_member.ledger_user_worker}" in service["depends_on"]
    database = TF.resource("google_firestore_database", "ledger")
    assert database["depends_on"] == ["${google_project_service.enabled}"]


def test_the_firestore_api_is_enabled() -> None:
    apis = TF.resource("google_project_service", "enabled")["for_each"]
    assert '"firestore.googleapis.com"' in apis
    assert "Firestore" in TF.variables["enable_apis"]["description"]


# -- configuration documents -----------------------------------------------------------------


def test_the_configuration_bucket_is_private_versioned_and_uniform() -> None:
    bucket = TF.resource("google_storage_bucket", "config")
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    assert _block(bucket, "versioning")["enabled"] is True
    assert bucket["force_destroy"] is False


def test_configuration_documents_are_written_where_and_as_the_worker_reads_them() -> None:
    template = TF.locals["service_config_url"]
    assert template == "gs://${google_storage_bucket.config.name}/{environment}/{service_id}.json"
    assert TF.locals["managed_env"]["EMAIL_WORKER_SERVICE_CONFIG_URL"] == (
        "${local.service_config_url}"
    )
    document = TF.resource("google_storage_bucket_object", "service_config")
    assert document["for_each"] == "${var.services}"
    assert document["bucket"] == "${google_storage_bucket.config.name}"
    assert document["name"] == "${var.environment}/${each.key}.json"
    # Render both sides for one service and compare.
    url = config_location(
        "billing", "staging", template.replace("${google_storage_bucket.config.name}", "b")
    )
    assert url == "gs://b/" + document["name"].replace("${var.environment}", "staging").replace(
        "${each.key}", "billing"
    )
    # The document's keys are the ones the worker knows, and a document with them parses.
    keys = set(re.findall(r"\b(\w+)\s*=", _ref(document["content"]).split(":", 1)[0]))
    keys |= set(re.findall(r"[{,]\s*(\w+)\s*=", _ref(document["content"])))
    keys.discard("key")
    assert {"service_id", "service_role_arn"} <= keys <= _KNOWN_KEYS
    sample = {
        "service_id": "billing",
        "service_role_arn": "arn:aws:iam::000000000000:role/email-worker-billing",
        "aws_region": "eu-west-2",
        "default_from_address": "billing@example.org",
        "allowed_from_domains": ["example.org"],
    }
    parsed = parse_service_config(
        json.dumps({k: v for k, v in sample.items() if k in keys}).encode(),
        service_id="billing",
        location=url,
    )
    assert parsed.service_role_arn == sample["service_role_arn"]


# -- AWS -------------------------------------------------------------------------------------


def test_aws_roles_trust_only_the_worker_account_tokens_issued_for_sts() -> None:
    assert TF.locals["sts_token_audience"] == TOKEN_AUDIENCE
    (statement,) = TF.data[("aws_iam_policy_document", "trust_worker")]["statement"]
    assert statement["effect"] == "Allow"
    assert statement["actions"] == ["sts:AssumeRoleWithWebIdentity"]
    (principal,) = statement["principals"]
    assert principal == {"type": "Federated", "identifiers": ["accounts.google.com"]}
    conditions = {c["variable"]: (c["test"], c["values"]) for c in statement["condition"]}
    unique_id = ["${google_service_account.worker.unique_id}"]
    assert conditions == {
        # For Google tokens AWS maps :aud to the azp claim: the service account's unique id.
        "accounts.google.com:aud": ("StringEquals", unique_id),
        "accounts.google.com:oaud": ("StringEquals", ["${local.sts_token_audience}"]),
        "accounts.google.com:sub": ("StringEquals", unique_id),
    }
    role = TF.resource("aws_iam_role", "service")
    assert role["for_each"] == "${var.services}"
    assert role["assume_role_policy"] == "${data.aws_iam_policy_document.trust_worker.json}"
    assert not TF.of_type("aws_iam_role_policy_attachment"), "no managed policies"
    assert "managed_policy_arns" not in role


def test_ses_permissions_cover_only_sending_through_the_service_identity_from_its_addresses() -> (
    None
):
    policy = TF.data[("aws_iam_policy_document", "send")]
    assert policy["for_each"] == "${var.services}"
    (statement,) = policy["statement"]
    assert statement["effect"] == "Allow"
    assert sorted(statement["actions"]) == ["ses:SendEmail", "ses:SendRawEmail"]
    assert statement["resources"] == [
        "${aws_sesv2_email_identity.domain[each.value.sending_domain].arn}",
        "${aws_sesv2_configuration_set.events.arn}",
    ]
    (condition,) = statement["condition"]
    assert condition["test"] == "StringLike"
    assert condition["variable"] == "ses:FromAddress"
    assert condition["values"] == "${local.allowed_from_patterns[each.key]}"
    patterns = TF.locals["allowed_from_patterns"]
    assert "default_from_address" in patterns
    assert '"*@${d}"' in patterns
    attached = TF.resource("aws_iam_role_policy", "send")
    assert attached["policy"] == "${data.aws_iam_policy_document.send[each.key].json}"
    assert attached["role"] == "${aws_iam_role.service[each.key].id}"


def test_no_aws_policy_names_a_wildcard_action_or_resource() -> None:
    for (type_, name), body in TF.data.items():
        if type_ != "aws_iam_policy_document":
            continue
        for statement in body["statement"]:
            for action in statement.get("actions", []):
                assert "*" not in action, f"{name}: action {action}"
            for resource in statement.get("resources", []):
                assert "*" not in resource, f"{name}: resource {resource}"
            assert "not_actions" not in statement
            assert "not_resources" not in statement


def test_ses_domain_identities_sign_with_easy_dkim_and_their_records_are_output() -> None:
    identity = TF.resource("aws_sesv2_email_identity", "domain")
    assert identity["for_each"] == "${local.sending_domains}"
    assert identity["email_identity"] == "${each.key}"
    dkim = _block(identity, "dkim_signing_attributes")
    assert dkim == {"next_signing_key_length": "${var.ses_dkim_key_length}"}
    assert "domain_signing_private_key" not in dkim, "Easy DKIM: AWS holds the keys"
    records = TF.outputs["ses_dkim_records"]["value"]
    assert "dkim_signing_attributes[0].tokens" in records
    assert "._domainkey." in records
    assert ".dkim.amazonses.com" in records
    assert "CNAME" in records


def test_every_identity_sends_with_the_configuration_set_that_publishes_ses_events() -> None:
    identity = TF.resource("aws_sesv2_email_identity", "domain")
    assert identity["configuration_set_name"] == (
        "${aws_sesv2_configuration_set.events.configuration_set_name}"
    )
    destination = TF.resource("aws_sesv2_configuration_set_event_destination", "eventbridge")
    assert destination["configuration_set_name"] == identity["configuration_set_name"]
    events = _block(destination, "event_destination")
    assert events["enabled"] is True
    assert events["matching_event_types"] == "${var.ses_event_types}"
    assert {"SEND", "DELIVERY", "BOUNCE", "COMPLAINT"} <= set(
        TF.variables["ses_event_types"]["default"]
    )
    bus = _block(events, "event_bridge_destination")["event_bus_arn"]
    assert bus == "${data.aws_cloudwatch_event_bus.default.arn}"
    assert TF.data[("aws_cloudwatch_event_bus", "default")]["name"] == "default"


def test_the_configuration_set_requires_tls_by_default_and_keeps_reputation_metrics() -> None:
    configuration_set = TF.resource("aws_sesv2_configuration_set", "events")
    assert _block(configuration_set, "delivery_options")["tls_policy"] == "${var.ses_tls_policy}"
    assert TF.variables["ses_tls_policy"]["default"] == "REQUIRE"
    assert _block(configuration_set, "reputation_options")["reputation_metrics_enabled"] is True
