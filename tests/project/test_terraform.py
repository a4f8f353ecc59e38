"""terraform/: it parses, and the properties a reviewer looks for hold.

The configuration is parsed with python-hcl2 and its key properties asserted: the dead-letter
policy, OIDC push, per-service topics and who may publish to each, least-privilege grants, the
fixed pull pool, the alerts, the deliverability records, the AWS trust conditions, SES
permissions without wildcards, pinned providers, documented variables, and that the values
terraform hands the worker are the ones the worker reads.

The Google providers cannot be installed everywhere, but budget.tf, tenancy.tf,
events_routing.tf and checks.tf need none: where a terraform binary exists, those files are
evaluated (`terraform console`) and planned with real terraform, so their locals and
preconditions are tested as terraform runs them, not only as text.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import hcl2
import pytest

from tests.support.dockerfile import Dockerfile
from worker.app.relaying import events_settings_problems
from worker.config.settings import Settings
from worker.events.reader import MAX_WAIT_TIME_S
from worker.events.sqs import queue_region
from worker.formats.event import EventType
from worker.formats.result import EmailResult
from worker.ledger import DEFAULT_COLLECTION, DEFAULT_RETENTION_S
from worker.ledger.firestore_ledger import (
    COUNTS_COLLECTION,
    HEARTBEATS_COLLECTION,
    STATUSES_COLLECTION,
)
from worker.ledger.service_count_stores import FIRESTORE_COLLECTION as SERVICE_COUNTS_COLLECTION
from worker.sending.identity import TOKEN_AUDIENCE
from worker.sending.service_config import _KNOWN_KEYS, config_location, parse_service_config

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM = ROOT / "terraform"
TF_FILES = sorted(TERRAFORM.glob("*.tf"))
EXAMPLE_TFVARS = TERRAFORM / "terraform.tfvars.example"
OPTIONS = hcl2.SerializationOptions(
    with_comments=False, explicit_blocks=False, strip_string_quotes=True, preserve_heredocs=False
)
#: The files terraform can evaluate and plan without any provider: locals and checks computed
#: from variables only (test_the_provider_free_files_read_only_variables_and_each_other).
PROVIDER_FREE = (
    "variables.tf",
    "attachments.tf",
    "budget.tf",
    "tenancy.tf",
    "events_routing.tf",
    "checks.tf",
    "console_access.tf",
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
        self.locals_by_file: dict[str, set[str]] = {}
        self.moved: list[dict[str, str]] = []
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
                for name in block:
                    assert name not in self.locals, f"local.{name} twice"
                self.locals.update(block)
                self.locals_by_file.setdefault(path.name, set()).update(block)
            self.moved.extend(parsed.get("moved", []))
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


def _preconditions(body: dict[str, Any]) -> list[str]:
    return [p["condition"] for block in body.get("lifecycle", []) for p in block["precondition"]]


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


def _settings_default(variable: str) -> str:
    """The worker's default for the environment variable ``variable``."""
    return next(default for name, default, _doc in Settings.documentation() if name == variable)


def _events_reader_own_env() -> dict[str, str]:
    """The settings only the events reader gets, and the expression terraform gives each."""
    managed = TF.locals["events_reader_managed_env"]
    own = managed[managed.index("}, {") + len("}, {") :]
    return dict(re.findall(r"(EMAIL_WORKER_\w+) = ([^,}]+)", own))


# -- real terraform, on the files that need no provider -------------------------------------


class TerraformAlone:
    """Evaluates and plans PROVIDER_FREE with real terraform, variables from the example.

    ``overrides`` are further variables (any JSON value); None is passed as null.
    """

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary = binary
        self.directory = directory
        for name in PROVIDER_FREE:
            shutil.copy(TERRAFORM / name, directory / name)
        self._calls = 0

    def run(
        self, command: list[str], overrides: dict[str, Any], stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        self._calls += 1
        variables = self.directory.parent / f"overrides-{self._calls}.tfvars.json"
        variables.write_text(json.dumps(overrides))
        return subprocess.run(
            [
                self.binary,
                f"-chdir={self.directory}",
                *command,
                f"-var-file={EXAMPLE_TFVARS}",
                f"-var-file={variables}",
            ],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def value(self, expression: str, **overrides: Any) -> Any:
        """``expression`` as terraform computes it, decoded from JSON."""
        result = self.run(["console"], overrides, stdin=f"jsonencode({expression})\n")
        assert result.returncode == 0, result.stderr
        return json.loads(json.loads(result.stdout.strip().splitlines()[-1]))

    def plan(self, **overrides: Any) -> subprocess.CompletedProcess[str]:
        """`terraform plan` of the checks (init first: it installs nothing, there is nothing)."""
        init = self.run(["init", "-backend=false", "-input=false", "-no-color"], {})
        assert init.returncode == 0, init.stderr
        return self.run(["plan", "-input=false", "-lock=false", "-no-color"], overrides)


def terraform_alone(factory: pytest.TempPathFactory) -> TerraformAlone:
    binary = shutil.which("terraform")
    if binary is None:
        pytest.skip("no terraform binary: the files are checked as parsed HCL only")
    directory = factory.mktemp("terraform-alone") / "config"
    directory.mkdir()
    return TerraformAlone(binary, directory)


@pytest.fixture(scope="module")
def tf(tmp_path_factory: pytest.TempPathFactory) -> TerraformAlone:
    return terraform_alone(tmp_path_factory)


# -- it parses, and it is written to be read ------------------------------------------------


@pytest.mark.parametrize("path", TF_FILES, ids=lambda p: p.name)
def test_every_terraform_file_parses(path: Path) -> None:
    assert _load(path)


def test_the_configuration_is_in_the_standard_layout() -> None:
    names = {p.name for p in TF_FILES}
    assert {"versions.tf", "variables.tf", "outputs.tf", "main.tf"} <= names
    assert (TERRAFORM / "README.md").is_file()
    assert EXAMPLE_TFVARS.is_file()
    # Resources are split by concern, not piled into main.tf.
    assert len(names - {"versions.tf", "variables.tf", "outputs.tf", "providers.tf"}) >= 4


def test_terraform_fmt_finds_nothing_to_change() -> None:
    binary = shutil.which("terraform")
    if binary is None:
        pytest.skip("no terraform binary")
    result = subprocess.run(
        [binary, "fmt", "-check", "-recursive", "-diff", str(TERRAFORM)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout


def test_make_lint_deploy_checks_formatting_and_validates_where_it_can() -> None:
    makefile = (ROOT / "Makefile").read_text()
    target = makefile[makefile.index("\nlint-deploy:") :].split("\n\n", 1)[0]
    assert "fmt -check -recursive" in target
    assert "terraform/scripts/validate.sh" in target
    script = (TERRAFORM / "scripts" / "validate.sh").read_text()
    # On a copy, so that init leaves nothing in the tree; unreachable providers skip, loudly.
    assert 'cp "$source_dir"/*.tf "$work"/' in script
    assert "validate: skipped" in script
    assert '"$terraform" -chdir="$work" validate' in script


def _validate(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(TERRAFORM / "scripts" / "validate.sh")],
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": "/nonexistent", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_validate_warns_loudly_when_there_is_no_terraform_to_validate_with() -> None:
    result = _validate({"TERRAFORM": "/nonexistent/terraform"})
    assert result.returncode == 0
    assert "WARNING: terraform validate did NOT run: no terraform binary" in result.stderr
    assert "NOT checked against the providers' schemas" in result.stderr
    assert result.stderr.count("#" * 72) == 2
    assert "terraform validate: skipped" in result.stdout


def test_validate_warns_loudly_naming_the_providers_it_could_not_install(
    tmp_path: Path,
) -> None:
    binary = shutil.which("terraform")
    if binary is None:
        pytest.skip("no terraform binary")
    # An empty mirror: terraform looks nowhere else, so nothing can be installed, as on a
    # machine without the registry.
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    result = _validate(
        {
            "TERRAFORM": binary,
            "TF_PLUGIN_DIR": str(mirror),
            "TF_CLI_CONFIG_FILE": "/dev/null",
        }
    )
    assert result.returncode == 0, result.stderr
    banner = " ".join(result.stderr.split())
    assert "WARNING: terraform validate did NOT run: cannot install provider(s)" in banner
    for provider in (
        "hashicorp/google",
        "hashicorp/google-beta",
        "hashicorp/aws",
        "hashicorp/time",
    ):
        assert provider in banner
    assert f"not in {mirror}" in banner
    # Nothing written in the tree.
    assert not (TERRAFORM / ".terraform").exists()
    assert not (TERRAFORM / ".terraform.lock.hcl").exists()


def test_the_readme_records_which_provider_versions_were_last_validated_and_how() -> None:
    readme = (TERRAFORM / "README.md").read_text()
    section = readme[readme.index("### Last validated") :].split("\n## ")[0]
    (block,) = TF.terraform
    (providers,) = block["required_providers"]
    # Every pinned provider, with its constraint, and how (or whether) it was validated.
    for name, spec in providers.items():
        assert f"`hashicorp/{name}`" in section, name
        assert f"`{spec['version']}`" in section, name
    for needed in ("terraform validate", "scripts/validate.sh", "not validated"):
        assert needed in section, needed


def test_the_provider_free_files_read_only_variables_and_each_other() -> None:
    free_locals = set().union(*(TF.locals_by_file.get(name, set()) for name in PROVIDER_FREE))
    for name in PROVIDER_FREE[1:]:
        parsed = _load(TERRAFORM / name)
        assert set(parsed) <= {"locals", "resource"}, name
        for type_ in (t for block in parsed.get("resource", []) for t in block):
            assert type_ == "terraform_data", f"{name}: {type_} needs a provider"
        text = (TERRAFORM / name).read_text()
        for ref in re.findall(r"\b(local|var|data|google_\w+|aws_\w+)\.(\w+)", text):
            kind, target = ref
            assert kind in ("local", "var"), f"{name} reads {kind}.{target}"
            if kind == "local":
                assert target in free_locals, f"{name} reads local.{target} from elsewhere"


def test_provider_versions_are_pinned() -> None:
    (block,) = TF.terraform
    assert re.fullmatch(r">= ?1\.\d+(\.\d+)?", block["required_version"])
    (providers,) = block["required_providers"]
    assert set(providers) == {"google", "google-beta", "aws", "time"}
    for name, spec in providers.items():
        assert spec["source"] == f"hashicorp/{name}"
        # Pessimistic to a minor version: bug fixes and features, never a new major.
        assert re.fullmatch(r"~> ?\d+\.\d+", spec["version"]), spec["version"]
    # The beta provider moves with the GA one.
    assert providers["google-beta"]["version"] == providers["google"]["version"]


def _minimum(spec: str) -> tuple[int, int]:
    major, minor = re.fullmatch(r"~> ?(\d+)\.(\d+)", spec).groups()  # type: ignore[union-attr]
    return int(major), int(minor)


def test_the_google_providers_are_7_18_or_later_where_worker_pools_have_no_permanent_diff() -> None:
    (block,) = TF.terraform
    (providers,) = block["required_providers"]
    for name in ("google", "google-beta"):
        major, minor = _minimum(providers[name]["version"])
        assert major == 7, name
        assert minor >= 18, name
    # With 6.x, scaling_mode = "MANUAL" planned a change on every run; MANUAL is the default.
    for path in TF_FILES:
        assert "scaling_mode" not in re.sub(r"#.*", "", path.read_text()), path.name
    for name, pool in TF.of_type("google_cloud_run_v2_worker_pool").items():
        assert set(_block(pool, "scaling")) == {"manual_instance_count"}, name


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


def test_every_local_is_defined_once_and_every_one_read_exists() -> None:
    # Config() refuses a local defined twice; here every local.NAME read must be defined.
    read = {name for p in TF_FILES for name in re.findall(r"\blocal\.(\w+)", p.read_text())}
    assert read - set(TF.locals) == set()


def test_the_readme_documents_every_input_and_output() -> None:
    readme = (TERRAFORM / "README.md").read_text()
    for name in [*TF.variables, *TF.outputs]:
        assert f"| `{name}` |" in readme, f"{name} is not in terraform/README.md"
    assert EXAMPLE_TFVARS.read_text() in readme


def test_the_readme_walks_through_a_first_deploy_in_order() -> None:
    readme = (TERRAFORM / "README.md").read_text()
    section = readme[readme.index("## First deploy") :].split("\n## ", 1)[0]
    steps = ["APIs", "image", "DNS", "production access", "email-worker send"]
    positions = [section.find(step) for step in steps]
    assert -1 not in positions, dict(zip(steps, positions, strict=True))
    assert positions == sorted(positions)
    assert "--wait" in section


def test_every_output_has_a_description() -> None:
    for name, spec in TF.outputs.items():
        assert spec.get("description", "").strip(), f"output {name} has no description"


def test_the_example_tfvars_sets_every_required_variable_and_no_undeclared_one() -> None:
    example = _load(EXAMPLE_TFVARS)
    required = {name for name, spec in TF.variables.items() if "default" not in spec}
    assert required <= set(example), f"missing: {required - set(example)}"
    assert set(example) <= set(TF.variables), f"undeclared: {set(example) - set(TF.variables)}"
    for name in example:
        assert not re.search(r"secret|password|key$|token", name, re.IGNORECASE), name


def test_the_example_tfvars_passes_every_check(tf: TerraformAlone) -> None:
    result = tf.plan()
    assert result.returncode == 0, result.stderr


def test_the_example_pairs_the_ses_quota_with_the_instances_docs_scaling_suggests() -> None:
    example = _load(EXAMPLE_TFVARS)
    quota = example["ses_max_send_rate_per_s"]
    instances = (
        example.get("max_instances", TF.variables["max_instances"]["default"])
        if example.get("delivery_mode", "push") == "push"
        else example.get("pull_instances", TF.variables["pull_instances"]["default"])
    )
    # docs/scaling.md's table: | SES sending rate | 1-vCPU instances | note |
    table = (ROOT / "docs" / "scaling.md").read_text()
    rows = dict(re.findall(r"^\| ([\d,]+)/s[^|]*\| (\d+) \|", table, re.MULTILINE))
    assert int(rows[f"{quota:,}"]) == instances
    # The comment states the share each instance gets, as terraform computes it.
    share = quota / instances
    assert f"{quota} / {instances} = {share:g}" in EXAMPLE_TFVARS.read_text()


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
        assert not re.findall(r"[\w.${}-]+@[\w.-]+\.iam\.gserviceaccount\.com", text), path.name


def test_the_apis_the_configuration_needs_are_enabled() -> None:
    apis = set(
        re.findall(
            r'"([a-z]+\.googleapis\.com)"',
            TF.resource("google_project_service", "enabled")["for_each"],
        )
    )
    assert apis == {
        "artifactregistry.googleapis.com",  # the image's registry
        "cloudresourcemanager.googleapis.com",  # the project number, the ledger's IAM binding
        "firestore.googleapis.com",
        "iam.googleapis.com",
        "logging.googleapis.com",  # the worker's failure metric
        "monitoring.googleapis.com",  # the alert policies
        "pubsub.googleapis.com",
        "run.googleapis.com",
        "storage.googleapis.com",
    }
    description = TF.variables["enable_apis"]["description"]
    for name in ("Cloud Resource Manager", "Artifact Registry", "Cloud Monitoring", "Firestore"):
        assert name in description


# -- Pub/Sub ---------------------------------------------------------------------------------


def test_the_topics_and_subscriptions_have_the_names_the_worker_expects_by_default() -> None:
    names = TF.variables["pubsub_names"]
    defaults = dict(
        re.findall(r"(\w+)\s*=\s*optional\(string,\s*\"?([\w{}-]+)\"?\)", names["type"])
    )
    assert defaults == {
        "requests_topic": _settings_default("EMAIL_WORKER_REQUESTS_TOPIC"),
        "results_topic": _settings_default("EMAIL_WORKER_RESULTS_TOPIC"),
        "dead_letter_topic": _settings_default("EMAIL_WORKER_DEAD_LETTER_TOPIC"),
        "worker_subscription": _settings_default("EMAIL_WORKER_SUBSCRIPTION"),
        "dead_letter_subscription": _settings_default("EMAIL_WORKER_DEAD_LETTER_SUBSCRIPTION"),
        "service_topic": _settings_default("EMAIL_WORKER_SERVICE_TOPIC"),
        "service_subscription": _settings_default("EMAIL_WORKER_SERVICE_SUBSCRIPTION"),
        "replay_topic": _settings_default("EMAIL_WORKER_REPLAY_TOPIC"),
        "replay_subscription": _settings_default("EMAIL_WORKER_REPLAY_SUBSCRIPTION"),
        "events_topic": _settings_default("EMAIL_WORKER_EVENTS_TOPIC"),
        # Terraform's only: the worker publishes results to the topic, whoever reads them.
        "results_subscription": "email-results-{service}",
    }
    for topic in ("requests", "results", "dead_letter"):
        body = TF.resource("google_pubsub_topic", topic)
        assert body["name"] == f"${{var.pubsub_names.{topic}_topic}}"
    assert TF.resource("google_pubsub_topic", "replays")["name"] == (
        "${var.pubsub_names.replay_topic}"
    )


def test_every_worker_subscription_dead_letters_after_max_delivery_attempts() -> None:
    subscription = TF.resource("google_pubsub_subscription", "worker")
    assert subscription["for_each"] == "${local.worker_subscription_topics}"
    assert subscription["topic"] == "${each.value.topic}"
    policy = _block(subscription, "dead_letter_policy")
    assert policy["dead_letter_topic"] == "${google_pubsub_topic.dead_letter.id}"
    assert policy["max_delivery_attempts"] == "${var.max_delivery_attempts}"
    variable = TF.variables["max_delivery_attempts"]
    assert variable["default"] == 12  # enough to outlast an outage (tests/config/test_budget.py)
    assert variable["type"] == "number"
    assert "var.max_delivery_attempts >= 5" in variable["validation"][0]["condition"]
    assert "var.max_delivery_attempts <= 100" in variable["validation"][0]["condition"]
    # The worker is told the same number, so it knows which attempt is its last.
    assert TF.locals["managed_env"]["EMAIL_WORKER_MAX_DELIVERY_ATTEMPTS"] == (
        "${tostring(var.max_delivery_attempts)}"
    )


def test_every_worker_subscription_has_a_retry_policy_an_ack_deadline_and_never_expires() -> None:
    subscription = TF.resource("google_pubsub_subscription", "worker")
    retry = _block(subscription, "retry_policy")
    assert retry["minimum_backoff"] == "${var.retry_minimum_backoff_seconds}s"
    assert retry["maximum_backoff"] == "${var.retry_maximum_backoff_seconds}s"
    assert subscription["ack_deadline_seconds"] == "${local.ack_deadline_s}"
    assert _block(subscription, "expiration_policy")["ttl"] == ""
    ops = TF.resource("google_pubsub_subscription", "dead_letter_ops")
    assert ops["topic"] == "${google_pubsub_topic.dead_letter.id}"
    assert ops["name"] == "${var.pubsub_names.dead_letter_subscription}"
    assert _block(ops, "expiration_policy")["ttl"] == ""


def test_the_worker_subscriptions_come_after_the_operators_dead_letter_subscription() -> None:
    # A dead letter reaches only the subscriptions that exist when it is published.
    subscription = TF.resource("google_pubsub_subscription", "worker")
    assert set(subscription["depends_on"]) == {
        "${google_pubsub_subscription.dead_letter_ops}",
        "${google_pubsub_topic_iam_member.dead_letter_publisher_pubsub_agent}",
    }


def test_dead_letters_are_kept_31_days_on_the_topic_and_the_operators_subscription() -> None:
    variable = TF.variables["dead_letter_retention_seconds"]
    assert variable["default"] == 31 * 86400
    assert "var.dead_letter_retention_seconds <= 2678400" in variable["validation"][0]["condition"]
    topic = TF.resource("google_pubsub_topic", "dead_letter")
    ops = TF.resource("google_pubsub_subscription", "dead_letter_ops")
    for body in (topic, ops):
        assert body["message_retention_duration"] == "${var.dead_letter_retention_seconds}s"


def test_push_delivery_carries_an_oidc_token_of_the_push_account_for_the_push_audience() -> None:
    subscription = TF.resource("google_pubsub_subscription", "worker")
    push = _dynamic(subscription, "push_config")
    assert push["for_each"] == "${local.push_mode ? [local.push_endpoint] : []}"
    (content,) = push["content"]
    assert content["push_endpoint"] == "${push_config.value}"
    token = _block(content, "oidc_token")
    assert token["service_account_email"] == "${one(google_service_account.push[*].email)}"
    assert token["audience"] == "${local.push_audiences[each.key]}"
    # The endpoint is the worker's push route, and the worker checks this audience and account.
    assert TF.locals["push_endpoint"] == "${local.service_url}/pubsub/push"
    assert '"/pubsub/push"' in (ROOT / "worker" / "transports" / "push.py").read_text()
    env = TF.locals["managed_env"]
    assert env["EMAIL_WORKER_PUSH_AUDIENCE"] == (
        "${local.push_mode ? local.push_audience_template : null}"
    )
    assert (
        env["EMAIL_WORKER_PUSH_SERVICE_ACCOUNT"] == "${one(google_service_account.push[*].email)}"
    )
    # Cloud Run admits every subscription's audience too.
    service = TF.resource("google_cloud_run_v2_service", "worker")
    assert service["custom_audiences"] == "${sort(values(local.push_audiences))}"


def test_each_push_subscription_has_its_own_audience_in_the_form_the_worker_checks() -> None:
    from worker.transports.push_auth import SUBSCRIPTION_PLACEHOLDER

    template = TF.locals["push_audience_template"]
    assert template == "${local.push_audience}:" + SUBSCRIPTION_PLACEHOLDER
    assert TF.locals["push_audiences"] == (
        "${{for key, sub in local.worker_subscription_topics : key => "
        'replace(local.push_audience_template, "{subscription}", sub.name)}}'
    )


def test_the_pubsub_service_agent_is_created_then_may_forward_dead_letters_and_sign_pushes() -> (
    None
):
    identity = TF.resource("google_project_service_identity", "pubsub")
    assert identity["service"] == "pubsub.googleapis.com"
    assert identity["provider"] == "google-beta"
    assert identity["depends_on"] == ["${google_project_service.enabled}"]
    # Every grant to the agent names the created identity, so it comes after it.
    assert TF.locals["pubsub_service_agent"] == "${google_project_service_identity.pubsub.member}"
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
        ("google_pubsub_subscription_iam_member", "roles/pubsub.subscriber", "${each.value.name}"),
        (
            "google_service_account_iam_member",
            "roles/iam.serviceAccountTokenCreator",
            "${google_service_account.push[0].name}",
        ),
    }
    # ... subscriber on every worker subscription: per service, shared and replays alike.
    agent_subscriber = TF.resource(
        "google_pubsub_subscription_iam_member", "worker_subscriber_pubsub_agent"
    )
    assert agent_subscriber["for_each"] == "${google_pubsub_subscription.worker}"


# -- who may publish: per-service topics -----------------------------------------------------


def test_per_service_is_the_default_tenancy_and_the_worker_is_told_which() -> None:
    tenancy = TF.variables["tenancy"]
    assert tenancy["default"] == _settings_default("EMAIL_WORKER_TENANCY") == "per-service"
    assert '["per-service", "shared"]' in tenancy["validation"][0]["condition"]
    env = TF.locals["managed_env"]
    assert env["EMAIL_WORKER_TENANCY"] == "${var.tenancy}"
    assert env["EMAIL_WORKER_SERVICE_TOPIC"] == "${var.pubsub_names.service_topic}"
    assert env["EMAIL_WORKER_SERVICE_SUBSCRIPTION"] == "${var.pubsub_names.service_subscription}"
    assert env["EMAIL_WORKER_REPLAY_TOPIC"] == "${google_pubsub_topic.replays.name}"
    assert env["EMAIL_WORKER_REPLAY_SUBSCRIPTION"] == (
        '${google_pubsub_subscription.worker["replay"].name}'
    )
    assert env["EMAIL_WORKER_ALLOWED_SERVICES"] == '${join(",", sort(keys(var.services)))}'
    # The shared names only when there is a shared topic.
    assert env["EMAIL_WORKER_REQUESTS_TOPIC"] == "${one(google_pubsub_topic.requests[*].name)}"
    assert env["EMAIL_WORKER_SUBSCRIPTION"] == "${local.shared_subscription}"
    assert 'if key == "shared"' in TF.locals["shared_subscription"]


def test_each_service_gets_one_topic_and_one_worker_subscription(tf: TerraformAlone) -> None:
    topic = TF.resource("google_pubsub_topic", "service")
    assert topic["for_each"] == "${local.service_topic_names}"
    assert topic["name"] == "${each.value}"
    topics = TF.locals["worker_subscription_topics"]
    assert (
        '{for id, topic in google_pubsub_topic.service : "service:${id}" => '
        "{name = local.service_subscription_names[id], topic = topic.id}}"
    ) in topics
    services = {
        "billing": {"sending_domain": "example.org"},
        "alerts": {"sending_domain": "example.net"},
    }
    assert tf.value("local.service_topic_names", services=services) == {
        "billing": "email-requests-billing",
        "alerts": "email-requests-alerts",
    }
    assert tf.value("local.service_subscription_names", services=services) == {
        "billing": "email-requests-billing-worker",
        "alerts": "email-requests-alerts-worker",
    }
    # The worker's own templates name the same topics and subscriptions.
    settings = Settings.from_env({})
    assert settings.topics.service_topic_for("billing") == "email-requests-billing"
    assert settings.topics.service_subscription_for("billing") == "email-requests-billing-worker"


def test_each_service_topic_admits_exactly_that_service_s_publishers(tf: TerraformAlone) -> None:
    grant = TF.resource("google_pubsub_topic_iam_member", "service_publisher")
    assert grant["for_each"] == "${local.service_publishers}"
    assert grant["topic"] == "${google_pubsub_topic.service[each.value.service].name}"
    assert grant["member"] == "${each.value.member}"
    assert grant["role"] == "roles/pubsub.publisher"
    services = {
        "billing": {
            "sending_domain": "example.org",
            "publishers": ["serviceAccount:billing@p.iam.gserviceaccount.com"],
        },
        "alerts": {
            "sending_domain": "example.net",
            "publishers": [
                "serviceAccount:alerting@p.iam.gserviceaccount.com",
                "group:oncall@example.net",
            ],
        },
    }
    grants = tf.value("local.service_publishers", services=services)
    by_service: dict[str, set[str]] = {}
    for entry in grants.values():
        by_service.setdefault(entry["service"], set()).add(entry["member"])
    assert by_service == {
        "billing": {"serviceAccount:billing@p.iam.gserviceaccount.com"},
        "alerts": {"serviceAccount:alerting@p.iam.gserviceaccount.com", "group:oncall@example.net"},
    }
    # Nothing else grants anything on a service's topic.
    on_service_topics = [
        name
        for type_, name, body in _iam_members()
        if "google_pubsub_topic.service[" in str(body.get("topic", ""))
    ]
    assert on_service_topics == ["service_publisher"]


def test_operators_may_publish_to_the_replay_topic_and_nowhere_else(tf: TerraformAlone) -> None:
    grant = TF.resource("google_pubsub_topic_iam_member", "replay_publisher")
    assert grant["for_each"] == "${toset(local.replay_publishers)}"
    assert grant["topic"] == "${google_pubsub_topic.replays.name}"
    assert grant["role"] == "roles/pubsub.publisher"
    # By default the dead-letter readers replay; replay_publishers may name others.
    operators = ["group:email-operators@example.org"]
    assert tf.value("local.replay_publishers", dead_letter_readers=operators) == operators
    assert tf.value("local.replay_publishers", replay_publishers=["user:a@example.org"]) == [
        "user:a@example.org"
    ]
    # The operators' members reach only the replay topic and their dead-letter subscription.
    operator_sources = ("local.replay_publishers", "var.dead_letter_readers")
    for type_, name, body in _iam_members():
        if any(source in body.get("for_each", "") for source in operator_sources):
            target = body.get("topic") or body.get("subscription")
            assert target in (
                "${google_pubsub_topic.replays.name}",
                "${google_pubsub_subscription.dead_letter_ops.name}",
            ), (type_, name)
    for text in (
        TF.variables["replay_publishers"]["description"],
        TERRAFORM.joinpath("README.md").read_text(),
    ):
        assert "ledger" in text


def test_the_shared_topic_exists_only_in_shared_tenancy(tf: TerraformAlone) -> None:
    assert TF.resource("google_pubsub_topic", "requests")["count"] == (
        "${local.per_service ? 0 : 1}"
    )
    assert TF.resource("google_pubsub_topic", "service")["for_each"] == (
        "${local.service_topic_names}"
    )
    publishers = TF.resource("google_pubsub_topic_iam_member", "requests_publisher")
    assert publishers["for_each"] == "${toset(local.shared_publishers)}"
    assert publishers["topic"] == "${google_pubsub_topic.requests[0].name}"
    topics = TF.locals["worker_subscription_topics"]
    assert '{for topic in google_pubsub_topic.requests : "shared" =>' in topics
    shared = {
        "tenancy": "shared",
        "request_publishers": ["serviceAccount:x@p.iam.gserviceaccount.com"],
    }
    assert tf.value("local.per_service") is True
    assert tf.value("local.service_topic_names", **shared) == {}
    assert tf.value("local.shared_publishers", **shared) == shared["request_publishers"]
    assert tf.value("local.shared_publishers", request_publishers=["user:a@example.org"]) == []


def test_publishers_given_for_the_other_tenancy_fail_the_plan(tf: TerraformAlone) -> None:
    per_service = tf.plan(request_publishers=["serviceAccount:x@p.iam.gserviceaccount.com"])
    assert per_service.returncode != 0
    assert "not request_publishers" in " ".join(per_service.stderr.split())
    shared = tf.plan(tenancy="shared")  # the example's services name publishers
    assert shared.returncode != 0
    assert "services' publishers do not apply" in " ".join(shared.stderr.split())


def test_a_shared_deployment_keeps_its_topic_subscription_and_grants_on_upgrade() -> None:
    moved = {(m["from"], m["to"]) for m in TF.moved}
    assert {
        ("${google_pubsub_topic.requests}", "${google_pubsub_topic.requests[0]}"),
        ("${google_pubsub_subscription.worker}", '${google_pubsub_subscription.worker["shared"]}'),
        (
            "${google_pubsub_subscription_iam_member.worker_subscriber_pubsub_agent}",
            '${google_pubsub_subscription_iam_member.worker_subscriber_pubsub_agent["shared"]}',
        ),
        (
            "${google_pubsub_subscription_iam_member.worker_subscriber_worker[0]}",
            '${google_pubsub_subscription_iam_member.worker_subscriber_worker["shared"]}',
        ),
        ("${google_cloud_run_v2_service.worker}", "${google_cloud_run_v2_service.worker[0]}"),
    } <= moved


def test_each_service_reads_its_own_results_on_a_subscription_filtered_on_its_id(
    tf: TerraformAlone,
) -> None:
    subscription = TF.resource("google_pubsub_subscription", "results")
    assert subscription["for_each"] == "${local.results_subscription_names}"
    assert subscription["name"] == "${each.value}"
    assert subscription["topic"] == "${google_pubsub_topic.results.id}"
    assert subscription["filter"].replace('\\"', '"') == 'attributes.service_id = "${each.key}"'
    assert _block(subscription, "expiration_policy") == {"ttl": ""}
    # Every result the worker publishes carries the service_id attribute the filter reads.
    result = EmailResult.sent(
        request_id="r-1",
        service_id="billing",
        message_ids=["m-1"],
        pubsub_message_id="p-1",
    )
    assert result.pubsub_attributes()["service_id"] == "billing"
    services = {
        "billing": {"sending_domain": "example.org"},
        "alerts": {"sending_domain": "example.net"},
    }
    assert tf.value("local.results_subscription_names", services=services) == {
        "billing": "email-results-billing",
        "alerts": "email-results-alerts",
    }
    # In shared tenancy too: the results topic is shared in both.
    assert tf.value("local.results_subscription_names", services=services, tenancy="shared") == {
        "billing": "email-results-billing",
        "alerts": "email-results-alerts",
    }
    output = TF.outputs["results_subscriptions"]["value"]
    assert output == (
        "${{for id, subscription in google_pubsub_subscription.results : id => subscription.name}}"
    )


def test_only_a_service_s_publishers_may_read_its_results_subscription(tf: TerraformAlone) -> None:
    grant = TF.resource("google_pubsub_subscription_iam_member", "results_subscriber")
    assert grant["for_each"] == "${local.results_subscribers}"
    assert grant["subscription"] == (
        "${google_pubsub_subscription.results[each.value.service].name}"
    )
    assert grant["role"] == "roles/pubsub.subscriber"
    assert grant["member"] == "${each.value.member}"
    services = {
        "billing": {
            "sending_domain": "example.org",
            "publishers": ["serviceAccount:billing@p.iam.gserviceaccount.com"],
        },
        "alerts": {
            "sending_domain": "example.net",
            "publishers": ["serviceAccount:alerting@p.iam.gserviceaccount.com"],
        },
    }
    readers: dict[str, set[str]] = {}
    for entry in tf.value("local.results_subscribers", services=services).values():
        readers.setdefault(entry["service"], set()).add(entry["member"])
    assert readers == {
        "billing": {"serviceAccount:billing@p.iam.gserviceaccount.com"},
        "alerts": {"serviceAccount:alerting@p.iam.gserviceaccount.com"},
    }
    # Shared tenancy: request_publishers act for every service, and read every service's.
    shared = {
        "tenancy": "shared",
        "services": {id_: {"sending_domain": "example.org"} for id_ in services},
        "request_publishers": ["serviceAccount:x@p.iam.gserviceaccount.com"],
    }
    shared_readers = {
        (entry["service"], entry["member"])
        for entry in tf.value("local.results_subscribers", **shared).values()
    }
    assert shared_readers == {
        ("billing", "serviceAccount:x@p.iam.gserviceaccount.com"),
        ("alerts", "serviceAccount:x@p.iam.gserviceaccount.com"),
    }
    # Nothing else is granted on a results subscription, and on the results topic only the
    # worker's publishing: nobody can read another service's results, or attach an unfiltered
    # subscription of their own (pubsub.topics.attachSubscription is on the topic).
    on_results = [
        name
        for _type, name, body in _iam_members()
        if "google_pubsub_subscription.results" in str(body.get("subscription", ""))
    ]
    assert on_results == ["results_subscriber"]
    on_topic = [
        (name, body["role"], body["member"])
        for _type, name, body in _iam_members()
        if body.get("topic") == "${google_pubsub_topic.results.name}"
    ]
    assert on_topic == [
        (
            "results_publisher_worker",
            "roles/pubsub.publisher",
            "${google_service_account.worker.member}",
        )
    ]


def test_the_readme_and_security_docs_say_each_service_reads_only_its_results() -> None:
    readme = (TERRAFORM / "README.md").read_text()
    assert "email-results-<service id>" in readme
    assert "results_subscriptions" in readme
    security = (ROOT / "docs" / "security.md").read_text()
    threat_model = security[security.index("## Threat model") :].split("\n## ")[0]
    assert "email-results-SERVICE" in threat_model
    assert "so one service's subscriber can read another's results" not in security


# -- reserved service ids ----------------------------------------------------------------------

#: The worker's fixed Pub/Sub names, as pubsub_names defaults them.
WORKER_FIXED_NAMES = {
    "email-requests",
    "email-results",
    "email-requests-dead-letter",
    "email-requests-worker",
    "email-requests-dead-letter-ops",
    "email-replays",
    "email-replays-worker",
    "email-events",
}


def _pubsub_name_defaults() -> dict[str, str]:
    return dict(
        re.findall(
            r"(\w+)\s*=\s*optional\(string,\s*\"?([\w{}-]+)\"?\)",
            TF.variables["pubsub_names"]["type"],
        )
    )


def test_the_reserved_names_are_the_worker_s_fixed_names_by_default() -> None:
    defaults = _pubsub_name_defaults()
    fixed = {value for value in defaults.values() if "{service}" not in value}
    assert fixed == WORKER_FIXED_NAMES
    validation = next(
        v for v in TF.variables["services"]["validation"] if "setintersection" in v["condition"]
    )
    listed = set(re.findall(r'"(email-[a-z-]+)"', validation["condition"]))
    assert listed == WORKER_FIXED_NAMES
    assert '"email-requests-${id}"' in validation["condition"]
    assert '"email-requests-${id}-worker"' in validation["condition"]
    # The precondition lists the configured names, each of the fixed ones.
    listed_local = {
        name.removeprefix("${var.pubsub_names.").removesuffix("}")
        for name in TF.locals["worker_fixed_names"]
    }
    assert {defaults[key] for key in listed_local} == WORKER_FIXED_NAMES


@pytest.mark.parametrize("service_id", ["dead-letter", "dead-letter-ops", "worker"])
def test_a_service_id_that_takes_a_worker_topic_or_subscription_fails_the_plan(
    tf: TerraformAlone, service_id: str
) -> None:
    result = tf.plan(services={service_id: {"sending_domain": "example.org"}})
    assert result.returncode != 0
    message = " ".join(result.stderr.split())
    assert "must not make a topic or subscription name the worker uses for itself" in message


def test_no_other_service_id_is_refused_for_its_names(tf: TerraformAlone) -> None:
    ids = ["billing", "dead", "letter", "dead-letters", "workers", "replays", "results", "x"]
    services = {id_: {"sending_domain": "example.org"} for id_ in ids}
    assert tf.value("local.colliding_service_ids", services=services) == []
    result = tf.plan(services=services)
    assert result.returncode == 0, result.stderr


def test_a_service_colliding_with_names_configured_otherwise_fails_the_plan(
    tf: TerraformAlone,
) -> None:
    # Not a default name, so only the precondition (checks.tf) can see it.
    services = {"audit": {"sending_domain": "example.org"}, "billing": {"sending_domain": "a.bc"}}
    names = {"dead_letter_topic": "email-requests-audit"}
    assert tf.value("local.colliding_service_ids", services=services, pubsub_names=names) == [
        "audit"
    ]
    result = tf.plan(services=services, pubsub_names=names)
    assert result.returncode != 0
    message = " ".join(result.stderr.split())
    assert "The service id(s) audit would make a topic or subscription" in message
    # A results subscription template that would take a fixed name counts too.
    results = {"results_subscription": "email-{service}"}
    assert tf.value(
        "local.colliding_service_ids",
        services={"events": {"sending_domain": "example.org"}},
        pubsub_names=results,
        events_enabled=False,
    ) == ["events"]


# -- Google identities: least privilege ------------------------------------------------------


def test_nothing_is_granted_project_wide_and_no_basic_role_is_used() -> None:
    # A Firestore database has no IAM policy of its own, so the worker's access to the ledger
    # database is the one project binding allowed: a member binding whose IAM condition admits
    # that database alone. Anything else at project or organisation level fails here.
    ledger_users = {
        "ledger_user_worker": "roles/datastore.user",
        "ledger_user_events_reader": "roles/datastore.user",
        "ledger_viewer_console": "roles/datastore.viewer",
    }
    for (type_, name), body in TF.resources.items():
        if type_ == "google_project_iam_member" and name in ledger_users:
            assert body["role"] == ledger_users[name]
            assert _block(body, "condition")["expression"] == LEDGER_CONDITION
            continue
        if type_ == "google_project_iam_custom_role":
            # A role's definition grants nothing; it is bound on single subscriptions.
            assert "member" not in body
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
        ("roles/pubsub.subscriber", "${each.value.name}"),
        ("roles/storage.objectViewer", "${google_storage_bucket.config.name}"),
        ("roles/storage.objectViewer", "${each.value.bucket}"),
        ("roles/datastore.user", LEDGER_CONDITION),
    }
    # Subscriber on every worker subscription (its services' and the replays), in pull mode.
    pull_only = TF.resource("google_pubsub_subscription_iam_member", "worker_subscriber_worker")
    assert pull_only["for_each"] == (
        "${{for key, subscription in google_pubsub_subscription.worker : "
        "key => subscription if !local.push_mode}}"
    )
    # Never a publisher on a request topic: the worker cannot make requests up.
    for _type, _name, body in _iam_members():
        if body["member"] == worker:
            assert "google_pubsub_topic.service" not in str(body.get("topic"))
            assert "google_pubsub_topic.replays" not in str(body.get("topic"))


def test_the_push_service_account_may_only_invoke_the_worker_service() -> None:
    push = "${google_service_account.push[0].member}"
    grants = [(t, b) for t, _n, b in _iam_members() if b["member"] == push]
    assert len(grants) == 1
    type_, body = grants[0]
    assert type_ == "google_cloud_run_v2_service_iam_member"
    assert body["role"] == "roles/run.invoker"
    assert body["name"] == "${google_cloud_run_v2_service.worker[0].name}"


# -- Cloud Run: a request-driven service for push, a fixed pool for pull ---------------------


def test_push_mode_runs_a_service_of_the_image_entrypoint_as_the_worker_account() -> None:
    dockerfile = Dockerfile(ROOT / "Dockerfile")
    service = TF.resource("google_cloud_run_v2_service", "worker")
    assert service["count"] == "${local.push_mode ? 1 : 0}"
    template = _block(service, "template")
    assert template["service_account"] == "${google_service_account.worker.email}"
    (container,) = template["containers"]
    assert container["image"] == "${var.image}"
    assert "command" not in container, "the image's ENTRYPOINT must be kept"
    cmd = dockerfile.final.last("CMD")
    assert cmd is not None
    assert container["args"] == cmd.exec_form() == ["serve"]
    assert [i.arguments for i in dockerfile.final.all("EXPOSE")] == [
        str(TF.locals["container_port"])
    ]
    assert _block(container, "ports")["container_port"] == "${local.container_port}"
    env = _dynamic(container, "env")
    assert env["for_each"] == "${local.worker_env}"


def test_pull_mode_runs_a_worker_pool_of_a_fixed_instance_count() -> None:
    pool = TF.resource("google_cloud_run_v2_worker_pool", "worker")
    assert pool["count"] == "${local.push_mode ? 0 : 1}"
    assert _block(pool, "scaling") == {"manual_instance_count": "${var.pull_instances}"}
    template = _block(pool, "template")
    assert template["service_account"] == "${google_service_account.worker.email}"
    (container,) = template["containers"]
    assert container["image"] == "${var.image}"
    assert container["args"] == ["pull"]
    assert _dynamic(container, "env")["for_each"] == (
        "${merge(local.worker_env, {PORT = tostring(local.container_port)})}"
    )
    assert _block(container, "resources")["limits"] == {
        "cpu": "${var.cpu}",
        "memory": "${var.memory}",
    }
    variable = TF.variables["pull_instances"]
    assert variable["default"] == 1
    assert "var.pull_instances >= 0" in variable["validation"][0]["condition"]
    # It starts only when it may pull its subscriptions.
    assert "${google_pubsub_subscription_iam_member.worker_subscriber_worker}" in pool["depends_on"]
    readme = (TERRAFORM / "README.md").read_text()
    assert "pull_instances" in readme[readme.index("### Resizing the pull pool") :]


def test_each_instance_gets_its_share_of_the_ses_send_rate_and_none_is_the_default() -> None:
    rate = TF.locals["managed_env"]["EMAIL_WORKER_SEND_RATE_PER_S"]
    assert rate == (
        "${var.ses_max_send_rate_per_s == null ? null : "
        "tostring(var.ses_max_send_rate_per_s / local.instance_count)}"
    )
    # The instances that may run at once: the push ceiling, or the pull pool's fixed count.
    assert TF.locals["instance_count"] == (
        "${local.push_mode ? var.max_instances : max(var.pull_instances, 1)}"
    )
    assert TF.variables["ses_max_send_rate_per_s"]["default"] is None


def test_cloud_run_probes_the_worker_health_endpoints() -> None:
    service = TF.resource("google_cloud_run_v2_service", "worker")
    (container,) = _block(service, "template")["containers"]
    startup = _block(_block(container, "startup_probe"), "http_get")["path"]
    liveness = _block(_block(container, "liveness_probe"), "http_get")["path"]
    served = (ROOT / "worker" / "transports" / "http_app.py").read_text()
    for path in (startup, liveness):
        assert f'"{path}"' in served, f"the worker does not serve {path}"


def test_the_pull_pool_is_probed_on_the_health_endpoints_it_serves_on_the_port_it_is_given() -> (
    None
):
    pool = TF.resource("google_cloud_run_v2_worker_pool", "worker")
    (container,) = _block(pool, "template")["containers"]
    # A worker pool gets no PORT from Cloud Run: terraform gives the pull worker one, and
    # `email-worker pull` serves /healthz and /readyz only when PORT is set.
    assert "PORT = tostring(local.container_port)" in _dynamic(container, "env")["for_each"]
    assert "settings.http.port is None" in (ROOT / "worker" / "app" / "http_server.py").read_text()
    served = (ROOT / "worker" / "transports" / "http_app.py").read_text()
    probes = {}
    for kind in ("startup_probe", "liveness_probe"):
        probe = _block(container, kind)
        http_get = _block(probe, "http_get")
        assert http_get["port"] == "${local.container_port}", kind
        assert f'"{http_get["path"]}"' in served, kind
        # Cloud Run's limits: a startup probe gives up after at most 240 s.
        assert probe["timeout_seconds"] < probe["period_seconds"], kind
        probes[kind] = (http_get["path"], probe["period_seconds"] * probe["failure_threshold"])
    assert probes["startup_probe"][0] == "/readyz"
    assert probes["startup_probe"][1] <= 240
    assert probes["liveness_probe"][0] == "/healthz"
    # The same probes as the push service's, so that both modes restart a wedged instance alike.
    service = TF.resource("google_cloud_run_v2_service", "worker")
    (service_container,) = _block(service, "template")["containers"]
    for kind in ("startup_probe", "liveness_probe"):
        ours, theirs = _block(container, kind), _block(service_container, kind)
        for field in ("period_seconds", "timeout_seconds", "failure_threshold"):
            assert ours[field] == theirs[field], (kind, field)


def test_push_scaling_ingress_and_resources_are_variables() -> None:
    service = TF.resource("google_cloud_run_v2_service", "worker")
    template = _block(service, "template")
    assert _block(template, "scaling") == {
        "min_instance_count": "${var.min_instances}",
        "max_instance_count": "${var.max_instances}",
    }
    assert service["ingress"] == "${var.ingress}"
    assert TF.variables["ingress"]["default"] == "INGRESS_TRAFFIC_INTERNAL_ONLY"
    (container,) = template["containers"]
    assert _block(container, "resources")["limits"] == {
        "cpu": "${var.cpu}",
        "memory": "${var.memory}",
    }


def test_push_cpu_is_allocated_between_pushes_only_when_asked() -> None:
    service = TF.resource("google_cloud_run_v2_service", "worker")
    (container,) = _block(service, "template")["containers"]
    assert _block(container, "resources")["cpu_idle"] == "${!var.push_cpu_always_allocated}"
    assert TF.variables["push_cpu_always_allocated"]["default"] is False


def test_request_concurrency_is_also_the_worker_s_thread_count() -> None:
    # A push that waited for a thread would spend its ack deadline waiting.
    service = TF.resource("google_cloud_run_v2_service", "worker")
    assert _block(service, "template")["max_instance_request_concurrency"] == (
        "${var.request_concurrency}"
    )
    assert TF.locals["managed_env"]["EMAIL_WORKER_CONCURRENCY"] == (
        "${tostring(var.request_concurrency)}"
    )
    # Flow control holds well more than the threads, as docs/scaling.md asks.
    assert (
        "var.request_concurrency <= 1000"
        in TF.variables["request_concurrency"]["validation"][0]["condition"]
    )
    assert int(_settings_default("EMAIL_WORKER_MAX_MESSAGES")) >= 1000


def test_the_worker_environment_sets_only_settings_the_worker_reads() -> None:
    known = {name for name, _default, _doc in Settings.documentation()}
    managed = set(TF.locals["managed_env"])
    assert managed <= known, f"the worker reads no {managed - known}"
    assert "PORT" not in managed, "Cloud Run sets PORT itself"
    # extra_env may not override what terraform manages.
    forbidden = set(
        re.findall(r'"([A-Z_]+)"', TF.variables["extra_env"]["validation"][0]["condition"])
    )
    assert forbidden == managed | set(_events_reader_own_env()) | {"PORT"}
    assert "EMAIL_WORKER_PUSH_AUTH" in TF.variables["extra_env"]["validation"][1]["condition"]


def test_the_worker_accepts_the_environment_terraform_gives_it(tf: TerraformAlone) -> None:
    # The budget's values and the tenancy names, as terraform computes them, as settings.
    budget = tf.value(
        "{ack = local.ack_deadline_s, claim = local.ledger_claim_s}", ses_max_send_rate_per_s=None
    )
    settings = Settings.from_env(
        {
            "EMAIL_WORKER_TENANCY": TF.variables["tenancy"]["default"],
            "EMAIL_WORKER_SEND_DEADLINE_S": str(TF.variables["send_deadline_seconds"]["default"]),
            "EMAIL_WORKER_PUBLISH_TIMEOUT_S": str(
                TF.variables["publish_timeout_seconds"]["default"]
            ),
            "EMAIL_WORKER_PUSH_ACK_DEADLINE_S": str(budget["ack"]),
            "EMAIL_WORKER_LEDGER_CLAIM_S": str(budget["claim"]),
            "EMAIL_WORKER_CONCURRENCY": str(TF.variables["request_concurrency"]["default"]),
        }
    )
    assert settings.push.ack_deadline_s == budget["ack"]
    assert settings.ledger.claim_s == budget["claim"]


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


def test_the_send_counters_expire_by_a_ttl_policy_in_their_collection() -> None:
    field = TF.resource("google_firestore_field", "ledger_counts_expire_at")
    assert field["database"] == "${google_firestore_database.ledger.name}"
    assert field["collection"] == "${local.ledger_counts_collection}"
    assert TF.locals["ledger_counts_collection"] == COUNTS_COLLECTION
    assert field["field"] == "expire_at"
    assert field["ttl_config"] == [{}]


def test_the_outcome_counters_expire_by_a_ttl_policy_in_their_collection() -> None:
    field = TF.resource("google_firestore_field", "ledger_service_counts_expire_at")
    assert field["database"] == "${google_firestore_database.ledger.name}"
    assert field["collection"] == "${local.ledger_service_counts_collection}"
    assert TF.locals["ledger_service_counts_collection"] == SERVICE_COUNTS_COLLECTION
    assert field["field"] == "expire_at"
    assert field["ttl_config"] == [{}]


def test_recipients_statuses_expire_by_the_same_ttl_policy_in_their_collection_group() -> None:
    field = TF.resource("google_firestore_field", "ledger_statuses_expire_at")
    assert field["database"] == "${google_firestore_database.ledger.name}"
    # A field policy names a collection group: every request's statuses subcollection.
    assert field["collection"] == "${local.ledger_statuses_collection}"
    assert TF.locals["ledger_statuses_collection"] == STATUSES_COLLECTION
    assert field["field"] == "expire_at"
    assert field["ttl_config"] == [{}]
    assert field["index_config"] == [{}]
    # The ledger writes an expire_at into each status document (its _advance fields).
    source = (ROOT / "worker" / "ledger" / "firestore_ledger.py").read_text()
    advance = source[source.index("def _advance") :].split("\n    def ", 1)[0]
    assert '"expire_at": utc(' in advance
    # Not only when the events path is on: statuses written earlier still expire.
    assert "count" not in field
    assert "for_each" not in field


def test_instances_heartbeats_expire_by_a_ttl_policy_in_their_collection() -> None:
    field = TF.resource("google_firestore_field", "ledger_heartbeats_expire_at")
    assert field["database"] == "${google_firestore_database.ledger.name}"
    assert field["collection"] == "${local.ledger_heartbeats_collection}"
    assert TF.locals["ledger_heartbeats_collection"] == HEARTBEATS_COLLECTION
    assert field["field"] == "expire_at"
    assert field["ttl_config"] == [{}]
    assert field["index_config"] == [{}]


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
    assert retention == worker.ledger.retention_s == DEFAULT_RETENTION_S
    assert TF.variables["ledger_takeover"]["default"] == worker.ledger.takeover == "resend"
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
    assert settings.ledger.url == "firestore://email-worker-ledger"


def test_the_ledger_keeps_records_at_least_as_long_as_pubsub_keeps_requests() -> None:
    conditions = _preconditions(TF.resource("terraform_data", "settings_check"))
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


def test_the_worker_starts_after_the_ledger_database_and_the_grant_to_use_it() -> None:
    for runner in (
        TF.resource("google_cloud_run_v2_service", "worker"),
        TF.resource("google_cloud_run_v2_worker_pool", "worker"),
    ):
        assert "${google_firestore_database.ledger}" in runner["depends_on"]
        assert "${google_project_iam_member.ledger_user_worker}" in runner["depends_on"]
    database = TF.resource("google_firestore_database", "ledger")
    assert database["depends_on"] == ["${google_project_service.enabled}"]


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
        "attachment_prefixes": ["gs://files/billing/"],
        "ses_tenant": "billing",
        "reputation_policy": "standard",
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
    statement, quota = policy["statement"]
    assert quota == {
        "sid": "ReadSendingQuota",
        "effect": "Allow",
        "actions": ["ses:GetAccount"],
        "resources": ["*"],
    }
    assert statement["effect"] == "Allow"
    assert sorted(statement["actions"]) == ["ses:SendEmail", "ses:SendRawEmail"]
    resources = _ref(statement["resources"])
    assert resources.startswith("concat([")
    assert "aws_sesv2_email_identity.domain[each.value.sending_domain].arn," in resources
    assert "aws_sesv2_configuration_set.events.arn]" in resources
    # The tenant the service's sends name, for a service with one.
    assert resources.endswith(
        "each.value.ses_tenant == null ? [] : [aws_sesv2_tenant.service[each.key].arn])"
    )
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


def test_each_service_naming_a_tenant_gets_one_with_its_identity_and_configuration_set() -> None:
    assert "ses_tenants.tf" in {p.name for p in TF_FILES}
    assert TF.locals["tenant_services"] == (
        "${{for id, s in var.services : id => s if s.ses_tenant != null}}"
    )
    tenant = TF.resource("aws_sesv2_tenant", "service")
    assert tenant["for_each"] == "${local.tenant_services}"
    assert tenant["tenant_name"] == "${each.value.ses_tenant}"
    associations = _ref(TF.locals["tenant_associations"])
    assert "aws_sesv2_email_identity.domain[s.sending_domain].arn" in associations
    assert "aws_sesv2_configuration_set.events.arn" in associations
    association = TF.resource("aws_sesv2_tenant_resource_association", "service")
    assert association["for_each"] == "${local.tenant_associations}"
    assert association["tenant_name"] == (
        "${aws_sesv2_tenant.service[each.value.service].tenant_name}"
    )
    assert association["resource_arn"] == "${each.value.arn}"


def test_a_tenants_reputation_policy_is_applied_as_the_ses_managed_policy_it_names() -> None:
    policy = TF.resource("terraform_data", "tenant_reputation_policy")
    assert "s.reputation_policy != null" in policy["for_each"]
    (provisioner,) = policy["provisioner"]
    command = provisioner["local-exec"]["command"]
    assert "aws sesv2 update-reputation-entity-policy" in command
    assert "--reputation-entity-reference ${aws_sesv2_tenant.service[each.key].arn}" in command
    assert ":aws:reputation-policy/${each.value.reputation_policy}" in command
    services = TF.variables["services"]
    conditions = " ".join(v["condition"] for v in services["validation"])
    assert '["none", "standard", "strict"]' in conditions


def test_the_aws_provider_pin_has_the_tenant_resources() -> None:
    (block,) = [b for b in TF.terraform if "required_providers" in b]
    (providers,) = block["required_providers"]
    assert providers["aws"]["version"] == "~> 6.29"


#: The only actions allowed on "*": they take no resource, and they only read.
_RESOURCELESS_READS = ["ses:GetAccount"]


def test_no_aws_policy_names_a_wildcard_action_or_resource() -> None:
    for (type_, name), body in TF.data.items():
        if type_ != "aws_iam_policy_document":
            continue
        for statement in body["statement"]:
            for action in statement.get("actions", []):
                assert "*" not in action, f"{name}: action {action}"
            if statement.get("actions") == _RESOURCELESS_READS:
                continue  # IAM allows an action without resource types only on "*"
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


# -- SES events back in Google Cloud ---------------------------------------------------------

#: Every resource of the events path, created only with events_enabled.
EVENTS_RESOURCES = {
    ("aws_cloudwatch_event_rule", "ses_events"),
    ("aws_cloudwatch_event_target", "ses_events"),
    ("aws_sqs_queue", "ses_events"),
    ("aws_sqs_queue", "ses_events_dead_letter"),
    ("aws_sqs_queue_redrive_allow_policy", "ses_events_dead_letter"),
    ("aws_sqs_queue_policy", "ses_events"),
    ("aws_iam_role", "events_reader"),
    ("aws_iam_role_policy", "events_reader"),
    ("google_pubsub_topic", "events"),
    ("google_pubsub_topic_iam_member", "events_publisher_events_reader"),
    ("google_project_iam_member", "ledger_user_events_reader"),
    ("google_service_account", "events_reader"),
    ("google_cloud_run_v2_worker_pool", "events_reader"),
}

#: The IAM action each SQS call of the reader is authorised as.
SQS_CALL_ACTIONS = {
    "receive_message": "sqs:ReceiveMessage",
    "delete_message": "sqs:DeleteMessage",
    "delete_message_batch": "sqs:DeleteMessage",
    "change_message_visibility": "sqs:ChangeMessageVisibility",
    "change_message_visibility_batch": "sqs:ChangeMessageVisibility",
}


def test_the_events_path_is_on_by_default_and_switches_off_as_a_whole() -> None:
    assert TF.variables["events_enabled"]["default"] is True
    for type_, name in EVENTS_RESOURCES:
        assert TF.resource(type_, name)["count"] == "${var.events_enabled ? 1 : 0}", name
    for name in ("ses_events_queue", "events_reader", "trust_events_reader"):
        assert TF.data[("aws_iam_policy_document", name)]["count"] == (
            "${var.events_enabled ? 1 : 0}"
        )
    # Nothing reads an attribute of one but through [0] (or [*] and one(), as the outputs and
    # the reader's environment do): each exists only when the path is on.
    for type_, name in EVENTS_RESOURCES:
        for path in TF_FILES:
            unguarded = re.findall(rf"\b{type_}\.{name}\.\w+", path.read_text())
            assert unguarded == [], f"{path.name}: {unguarded}"


def test_the_rule_maps_each_ses_event_type_the_reader_carries_to_its_detail_type() -> None:
    mapping = TF.locals["ses_event_detail_types"]
    assert mapping == {
        "SEND": "Email Sent",
        "DELIVERY": "Email Delivered",
        "BOUNCE": "Email Bounced",
        "COMPLAINT": "Email Complaint Received",
        "DELIVERY_DELAY": "Email Delivery Delayed",
        "REJECT": "Email Rejected",
    }
    # Exactly the event types of event v1, under SES's names.
    assert {name.lower() for name in mapping} == {t.value for t in EventType}
    allowed = TF.variables["ses_event_types"]["validation"][0]["condition"]
    for name in mapping:
        assert f'"{name}"' in allowed, name


def test_the_rule_matches_ses_events_of_the_configured_types_on_the_default_bus(
    tf: TerraformAlone,
) -> None:
    rule = TF.resource("aws_cloudwatch_event_rule", "ses_events")
    assert rule["event_bus_name"] == "${data.aws_cloudwatch_event_bus.default.name}"
    assert rule["event_pattern"] == "${jsonencode(local.ses_events_pattern)}"
    # SES's events of the routed types, about email sent with this deployment's configuration
    # set only: SES names the set in every event's mail.tags.
    assert tf.value("local.ses_events_pattern", ses_configuration_set_name="mail-prod") == {
        "source": ["aws.ses"],
        "detail-type": tf.value("local.ses_events_routed"),
        "detail": {"mail": {"tags": {"ses:configuration-set": ["mail-prod"]}}},
    }
    # The configured types the reader carries, in order, each once; others stay on the bus.
    assert tf.value("local.ses_events_routed") == [
        "Email Sent",
        "Email Rejected",
        "Email Bounced",
        "Email Complaint Received",
        "Email Delivered",
        "Email Delivery Delayed",
    ]
    assert tf.value(
        "local.ses_events_routed", ses_event_types=["OPEN", "DELIVERY", "CLICK", "DELIVERY"]
    ) == ["Email Delivered"]
    # The rule sends to the queue; the queue's policy comes first.
    target = TF.resource("aws_cloudwatch_event_target", "ses_events")
    assert target["rule"] == "${aws_cloudwatch_event_rule.ses_events[0].name}"
    assert target["event_bus_name"] == "${aws_cloudwatch_event_rule.ses_events[0].event_bus_name}"
    assert target["arn"] == "${aws_sqs_queue.ses_events[0].arn}"
    assert target["depends_on"] == ["${aws_sqs_queue_policy.ses_events}"]


def test_plan_fails_when_the_events_path_would_route_nothing_or_clash(tf: TerraformAlone) -> None:
    nothing = tf.plan(ses_event_types=["OPEN", "CLICK"])
    assert nothing.returncode != 0
    assert "the events reader carries no other" in " ".join(nothing.stderr.split())
    services = {"events": {"sending_domain": "example.org"}}
    clash = tf.plan(services=services)
    assert clash.returncode != 0
    assert "would have the AWS role name of the events reader" in " ".join(clash.stderr.split())
    long_name = tf.plan(ses_configuration_set_name="c" * 60)
    assert long_name.returncode != 0
    assert "must be at most 64 characters" in " ".join(long_name.stderr.split())
    # Without the events path none of that matters.
    off = tf.plan(events_enabled=False, services=services, ses_event_types=["OPEN"])
    assert off.returncode == 0, off.stderr


def test_the_queue_is_encrypted_and_redrives_to_its_dead_letter_queue(tf: TerraformAlone) -> None:
    queue = TF.resource("aws_sqs_queue", "ses_events")
    dead_letter = TF.resource("aws_sqs_queue", "ses_events_dead_letter")
    for body in (queue, dead_letter):
        # SQS-managed keys: neither EventBridge nor the reader needs a KMS grant.
        assert body["sqs_managed_sse_enabled"] is True
        assert "kms_master_key_id" not in body
    assert queue["redrive_policy"] == (
        "${jsonencode({deadLetterTargetArn = aws_sqs_queue.ses_events_dead_letter[0].arn, "
        "maxReceiveCount = var.ses_events_max_receive_count})}"
    )
    assert TF.variables["ses_events_max_receive_count"]["default"] == 5
    assert "redrive_policy" not in dead_letter
    # Only the events queue may send its failures there.
    allow = TF.resource("aws_sqs_queue_redrive_allow_policy", "ses_events_dead_letter")
    assert allow["queue_url"] == "${aws_sqs_queue.ses_events_dead_letter[0].id}"
    assert allow["redrive_allow_policy"] == (
        '${jsonencode({redrivePermission = "byQueue", '
        "sourceQueueArns = [aws_sqs_queue.ses_events[0].arn]})}"
    )
    # A standard queue's message keeps its first enqueue time in the dead-letter queue, which
    # must therefore keep messages longer than the queue does.
    times = tf.value(
        "{visibility = local.ses_events_visibility_timeout_s, long_poll = local.sqs_long_poll_s,"
        " retention = local.ses_events_retention_s,"
        " dead_letter = local.ses_events_dead_letter_retention_s}"
    )
    assert times["retention"] == 4 * 86400
    assert times["dead_letter"] == 14 * 86400 > times["retention"]
    assert queue["message_retention_seconds"] == "${local.ses_events_retention_s}"
    assert dead_letter["message_retention_seconds"] == (
        "${local.ses_events_dead_letter_retention_s}"
    )
    # Hidden long enough for a long poll, the batch's publishes and a margin: 90 s by default.
    assert queue["visibility_timeout_seconds"] == "${local.ses_events_visibility_timeout_s}"
    assert times["long_poll"] == MAX_WAIT_TIME_S
    publish_timeout = TF.variables["publish_timeout_seconds"]["default"]
    assert times["visibility"] == 90 >= MAX_WAIT_TIME_S + publish_timeout + 30
    assert tf.value("local.ses_events_visibility_timeout_s", publish_timeout_seconds=300) == 360
    assert queue["receive_wait_time_seconds"] == "${local.sqs_long_poll_s}"


def test_only_the_rule_may_send_to_the_queue() -> None:
    policy = TF.resource("aws_sqs_queue_policy", "ses_events")
    assert policy["queue_url"] == "${aws_sqs_queue.ses_events[0].id}"
    assert policy["policy"] == "${data.aws_iam_policy_document.ses_events_queue[0].json}"
    (statement,) = TF.data[("aws_iam_policy_document", "ses_events_queue")]["statement"]
    assert statement["effect"] == "Allow"
    assert statement["actions"] == ["sqs:SendMessage"]
    assert statement["resources"] == ["${aws_sqs_queue.ses_events[0].arn}"]
    assert statement["principals"] == [{"type": "Service", "identifiers": ["events.amazonaws.com"]}]
    (condition,) = statement["condition"]
    assert condition == {
        "test": "ArnEquals",
        "variable": "aws:SourceArn",
        "values": ["${aws_cloudwatch_event_rule.ses_events[0].arn}"],
    }
    # The dead-letter queue has no policy: nothing outside the account sends to it.
    policies = TF.of_type("aws_sqs_queue_policy")
    assert set(policies) == {"ses_events"}


def _trust_conditions(document: str) -> dict[str, tuple[str, list[str]]]:
    (statement,) = TF.data[("aws_iam_policy_document", document)]["statement"]
    assert statement["effect"] == "Allow"
    assert statement["actions"] == ["sts:AssumeRoleWithWebIdentity"]
    assert statement["principals"] == [
        {"type": "Federated", "identifiers": ["accounts.google.com"]}
    ]
    return {c["variable"]: (c["test"], c["values"]) for c in statement["condition"]}


def test_the_reader_role_trusts_only_the_reader_s_own_account_and_only_reads_the_queue() -> None:
    role = TF.resource("aws_iam_role", "events_reader")
    senders = TF.resource("aws_iam_role", "service")
    for attribute in ("max_session_duration", "permissions_boundary"):
        assert role[attribute] == senders[attribute], attribute
    assert role["assume_role_policy"] == (
        "${data.aws_iam_policy_document.trust_events_reader[0].json}"
    )
    # The reader's account's Google ID tokens for STS, exactly as the senders' roles trust the
    # worker's: its unique id as azp and sub, and the worker's STS audience.
    reader_id = ["${google_service_account.events_reader[0].unique_id}"]
    assert _trust_conditions("trust_events_reader") == {
        "accounts.google.com:aud": ("StringEquals", reader_id),
        "accounts.google.com:oaud": ("StringEquals", ["${local.sts_token_audience}"]),
        "accounts.google.com:sub": ("StringEquals", reader_id),
    }
    # The senders' roles trust the worker's account alone, never the reader's.
    worker_id = ["${google_service_account.worker.unique_id}"]
    senders_trust = _trust_conditions("trust_worker")
    assert senders_trust["accounts.google.com:aud"] == ("StringEquals", worker_id)
    assert senders_trust["accounts.google.com:sub"] == ("StringEquals", worker_id)
    trusting_worker = [
        name
        for name, body in TF.of_type("aws_iam_role").items()
        if body["assume_role_policy"] == "${data.aws_iam_policy_document.trust_worker.json}"
    ]
    assert trusting_worker == ["service"]
    assert role["name"] == "${local.events_reader_role_name}"
    assert TF.locals["events_reader_role_name"] == "${var.aws_role_name_prefix}events"
    attached = TF.resource("aws_iam_role_policy", "events_reader")
    assert attached["role"] == "${aws_iam_role.events_reader[0].id}"
    assert attached["policy"] == "${data.aws_iam_policy_document.events_reader[0].json}"
    (statement,) = TF.data[("aws_iam_policy_document", "events_reader")]["statement"]
    assert statement["effect"] == "Allow"
    assert sorted(statement["actions"]) == [
        "sqs:ChangeMessageVisibility",
        "sqs:DeleteMessage",
        "sqs:ReceiveMessage",
    ]
    assert statement["resources"] == ["${aws_sqs_queue.ses_events[0].arn}"]
    assert "condition" not in statement
    # Every SQS call the reader makes is one of those actions.
    reader = "".join(
        (ROOT / "worker" / "events" / name).read_text() for name in ("reader.py", "sqs_batches.py")
    )
    calls = set(re.findall(r"sqs\.(\w+)\(", reader))
    assert {"receive_message", "delete_message_batch"} <= calls
    for call in calls:
        assert SQS_CALL_ACTIONS[call] in statement["actions"], call
    # Only the services' roles and this one exist, and each has just its inline policy.
    assert set(TF.of_type("aws_iam_role")) == {"service", "events_reader"}
    assert set(TF.of_type("aws_iam_role_policy")) == {"send", "events_reader"}


def test_the_events_topic_has_the_events_reader_as_its_only_publisher() -> None:
    topic = TF.resource("google_pubsub_topic", "events")
    assert topic["name"] == "${var.pubsub_names.events_topic}"
    assert topic["kms_key_name"] == "${var.kms_key_name}"
    grants = [
        (name, body)
        for type_, name, body in _iam_members()
        if "google_pubsub_topic.events" in str(body.get("topic", ""))
    ]
    assert [name for name, _body in grants] == ["events_publisher_events_reader"]
    ((_name, grant),) = grants
    assert grant["topic"] == "${google_pubsub_topic.events[0].name}"
    assert grant["role"] == "roles/pubsub.publisher"
    assert grant["member"] == "${google_service_account.events_reader[0].member}"


def test_the_events_reader_has_its_own_account_that_may_publish_events_and_use_the_ledger() -> None:
    account = TF.resource("google_service_account", "events_reader")
    assert account["account_id"] == "${var.events_reader_service_account_id}"
    assert TF.variables["events_reader_service_account_id"]["default"] == "email-worker-events"
    assert account["account_id"] != TF.resource("google_service_account", "worker")["account_id"]
    reader = "${google_service_account.events_reader[0].member}"
    grants = {
        (
            type_,
            body["role"],
            body.get("topic")
            or body.get("subscription")
            or _block(body, "condition")["expression"],
        )
        for type_, _name, body in _iam_members()
        if body["member"] == reader
    }
    # Publish to email-events, and read and write documents in the ledger database: the
    # narrowest Firestore grant IAM has (a database, not a collection); and, for the
    # reputation breaker's pauses, read the worker subscriptions and switch them to pull.
    assert grants == {
        (
            "google_pubsub_topic_iam_member",
            "roles/pubsub.publisher",
            "${google_pubsub_topic.events[0].name}",
        ),
        ("google_project_iam_member", "roles/datastore.user", LEDGER_CONDITION),
        (
            "google_pubsub_subscription_iam_member",
            "${google_project_iam_custom_role.subscription_pauser[0].id}",
            "${each.value.name}",
        ),
    }
    pauser = TF.resource("google_project_iam_custom_role", "subscription_pauser")
    assert pauser["permissions"] == ["pubsub.subscriptions.get", "pubsub.subscriptions.update"]
    granted = TF.resource("google_pubsub_subscription_iam_member", "pauser_events_reader")
    assert granted["for_each"] == "${var.events_enabled ? google_pubsub_subscription.worker : {}}"
    # Nothing is granted on the account itself: nobody may act as it or mint its tokens.
    for _type, _name, body in _iam_members():
        assert "google_service_account.events_reader" not in str(body.get("service_account_id", ""))
    # docs/security.md and the README say what it may do, and that IAM allows no narrower.
    readme = (TERRAFORM / "README.md").read_text()
    security = (ROOT / "docs" / "security.md").read_text()
    for text in (readme, security):
        assert "email-worker-events@" in text
        assert "narrow" in text


def test_the_reader_runs_as_a_worker_pool_of_its_own_in_either_mode() -> None:
    pool = TF.resource("google_cloud_run_v2_worker_pool", "events_reader")
    # Not tied to the delivery mode: the same pool in push and pull.
    assert "push_mode" not in pool["count"]
    assert pool["name"] == "${local.events_reader_pool_name}"
    assert TF.locals["events_reader_pool_name"] == "${var.service_name}-events"
    assert pool["location"] == "${var.region}"
    assert _block(pool, "scaling") == {"manual_instance_count": "${var.events_reader_instances}"}
    assert TF.variables["events_reader_instances"]["default"] == 1
    template = _block(pool, "template")
    assert template["service_account"] == "${google_service_account.events_reader[0].email}"
    (container,) = template["containers"]
    assert container["image"] == "${var.image}"
    assert container["args"] == ["events"]
    assert "command" not in container, "the image's ENTRYPOINT must be kept"
    assert _dynamic(container, "env")["for_each"] == "${local.events_reader_env}"
    # It starts once it may read the queue, publish the events and write the ledger.
    assert {
        "${aws_iam_role_policy.events_reader}",
        "${google_pubsub_topic_iam_member.events_publisher_events_reader}",
        "${google_firestore_database.ledger}",
        "${google_project_iam_member.ledger_user_events_reader}",
        "${terraform_data.settings_check}",
    } <= set(pool["depends_on"])
    readme = (TERRAFORM / "README.md").read_text()
    assert "email-worker events" in readme[readme.index("### Where the events reader runs") :]


def test_the_reader_gets_the_events_settings_and_the_senders_ledger_settings() -> None:
    shared = TF.locals["events_reader_shared_env"]
    # The same values as the senders', taken from their environment.
    assert "local.managed_env[name]" in TF.locals["events_reader_managed_env"]
    assert set(shared) <= set(TF.locals["managed_env"])
    assert {
        "GOOGLE_CLOUD_PROJECT",
        "EMAIL_WORKER_PUBLISH_TIMEOUT_S",
        "EMAIL_WORKER_LEDGER",
        "EMAIL_WORKER_LEDGER_CLAIM_S",
        "EMAIL_WORKER_LEDGER_RETENTION_S",
        "EMAIL_WORKER_LEDGER_TAKEOVER",
    } <= set(shared)
    assert _events_reader_own_env() == {
        "EMAIL_WORKER_SES_EVENTS_QUEUE_URL": "one(aws_sqs_queue.ses_events[*].url)",
        "EMAIL_WORKER_SES_EVENTS_ROLE_ARN": "one(aws_iam_role.events_reader[*].arn)",
        "EMAIL_WORKER_EVENTS_TOPIC": "one(google_pubsub_topic.events[*].name)",
    }
    known = {name for name, _default, _doc in Settings.documentation()}
    assert set(shared) | set(_events_reader_own_env()) <= known
    # Unset values are left out, and extra_env cannot override the managed ones.
    assert TF.locals["events_reader_env"] == (
        "${merge(var.extra_env, {for name, value in local.events_reader_managed_env : "
        "name => value if value != null})}"
    )


def test_the_reader_accepts_the_queue_and_role_terraform_names(tf: TerraformAlone) -> None:
    names = tf.value("{queue = local.ses_events_queue_name, role = local.events_reader_role_name}")
    region = _load(EXAMPLE_TFVARS).get("aws_region", TF.variables["aws_region"]["default"])
    # The shapes of aws_sqs_queue.url and aws_iam_role.arn, with a made-up account.
    queue_url = f"https://sqs.{region}.amazonaws.com/123456789012/{names['queue']}"
    role_arn = f"arn:aws:iam::123456789012:role/{names['role']}"
    settings = Settings.from_env(
        {
            "GOOGLE_CLOUD_PROJECT": "my-project",
            "EMAIL_WORKER_SES_EVENTS_QUEUE_URL": queue_url,
            "EMAIL_WORKER_SES_EVENTS_ROLE_ARN": role_arn,
        }
    )
    assert events_settings_problems(settings) == []
    # The reader's SQS client goes to the queue's region, where the rule and SES are.
    assert queue_region(queue_url) == region


def test_the_events_outputs_name_the_queues_the_role_and_the_topic() -> None:
    assert TF.outputs["ses_events_queue_url"]["value"] == "${one(aws_sqs_queue.ses_events[*].url)}"
    assert TF.outputs["ses_events_dead_letter_queue_url"]["value"] == (
        "${one(aws_sqs_queue.ses_events_dead_letter[*].url)}"
    )
    assert TF.outputs["ses_events_role_arn"]["value"] == "${one(aws_iam_role.events_reader[*].arn)}"
    assert TF.outputs["events_topic"]["value"] == "${one(google_pubsub_topic.events[*].id)}"
    assert TF.outputs["events_reader_service_account"]["value"] == (
        "${one(google_service_account.events_reader[*].email)}"
    )
    assert TF.outputs["events_reader_service_account_unique_id"]["value"] == (
        "${one(google_service_account.events_reader[*].unique_id)}"
    )


def test_operations_covers_the_events_dead_letter_queue_and_the_status_command() -> None:
    operations = (ROOT / "docs" / "operations.md").read_text()
    dead_letters = operations[operations.index("## Events dead-letter queue") :].split("\n## ")[0]
    for needed in (
        "ses_events_dead_letter_queue_url",
        "aws sqs receive-message",
        "aws sqs start-message-move-task",
        "aws sqs purge-queue",
    ):
        assert needed in dead_letters, needed
    status = operations[operations.index("## email-worker status") :].split("\n## ")[0]
    for needed in ("email-worker status SERVICE REQUEST_ID", "--json", "5"):
        assert needed in status, needed


# -- alerts ----------------------------------------------------------------------------------


def _condition_filters(policy: dict[str, Any]) -> list[str]:
    """Each condition's filter, its quotes unescaped."""
    return [
        _block(c, "condition_threshold")["filter"].replace('\\"', '"') for c in policy["conditions"]
    ]


def test_every_alert_policy_notifies_the_channels_given_and_says_what_to_do() -> None:
    policies = TF.of_type("google_monitoring_alert_policy")
    assert set(policies) == {
        "dead_letters_waiting",
        "requests_waiting",
        "push_failures",
        "worker_failures",
        "outage_holding",
        "reputation_breaker",
        "ses_throttling",
    }
    for name, policy in policies.items():
        assert policy["notification_channels"] == "${var.notification_channels}", name
        documentation = _block(policy, "documentation")
        assert documentation["mime_type"] == "text/markdown"
        assert "${local.runbook}" in documentation["content"], name
    assert "docs/operations.md" in TF.locals["runbook"]
    operations = (ROOT / "docs" / "operations.md").read_text()
    alerts = operations[operations.index("## Alerts") :]
    for policy in policies.values():
        assert policy["display_name"] in alerts, policy["display_name"]
    for alarm in ("bounce rate", "complaint rate"):
        assert alarm in alerts


def test_dead_letters_alert_once_one_has_waited_the_hours_given() -> None:
    policy = TF.resource("google_monitoring_alert_policy", "dead_letters_waiting")
    (condition,) = policy["conditions"]
    threshold = _block(condition, "condition_threshold")
    assert "pubsub.googleapis.com/subscription/oldest_unacked_message_age" in threshold["filter"]
    assert "${google_pubsub_subscription.dead_letter_ops.name}" in threshold["filter"]
    assert threshold["threshold_value"] == "${var.alerts.dead_letter_age_hours * 3600}"
    assert "dead_letter_age_hours = optional(number, 24)" in TF.variables["alerts"]["type"]


def test_requests_alert_when_the_oldest_in_any_worker_subscription_is_too_old() -> None:
    policy = TF.resource("google_monitoring_alert_policy", "requests_waiting")
    (filter_,) = _condition_filters(policy)
    assert filter_.startswith("${local.worker_subscriptions_filter}")
    assert "subscription/oldest_unacked_message_age" in filter_
    # One filter for every worker subscription: per service, shared and replays.
    assert "local.worker_subscriptions_regex" in TF.locals["worker_subscriptions_filter"]
    threshold = _block(policy["conditions"][0], "condition_threshold")
    assert threshold["threshold_value"] == "${var.alerts.request_age_minutes * 60}"


def test_push_5xx_4xx_and_late_answers_alert_in_push_mode() -> None:
    policy = TF.resource("google_monitoring_alert_policy", "push_failures")
    assert policy["count"] == "${local.push_mode ? 1 : 0}"
    assert policy["combiner"] == "OR"
    five_xx, four_xx, late = _condition_filters(policy)
    for filter_ in (five_xx, four_xx, late):
        assert "pubsub.googleapis.com/subscription/push_request_count" in filter_
        assert filter_.startswith("${local.worker_subscriptions_filter}")
    assert 'metric.labels.response_class = "remote_server_5xx"' in five_xx
    assert 'metric.labels.response_class = "remote_server_4xx"' in four_xx
    assert 'metric.labels.response_class = "deadline_exceeded"' in late
    late_threshold = _block(policy["conditions"][2], "condition_threshold")
    assert late_threshold["threshold_value"] == 0


def test_pushes_refused_with_4xx_alert_within_five_minutes() -> None:
    # A broken invoker grant or push audience refuses every push: Cloud Run answers 401/403
    # before the worker sees it. Without this condition it showed only as a backlog 15
    # minutes old.
    policy = TF.resource("google_monitoring_alert_policy", "push_failures")
    condition = policy["conditions"][1]
    threshold = _block(condition, "condition_threshold")
    assert threshold["comparison"] == "COMPARISON_GT"
    assert threshold["threshold_value"] == "${var.alerts.push_4xx_per_minute / 60}"
    assert threshold["duration"] == "0s"
    aggregations = _block(threshold, "aggregations")
    assert aggregations == {
        "alignment_period": "300s",
        "per_series_aligner": "ALIGN_RATE",
        "cross_series_reducer": "REDUCE_SUM",
    }
    # By default any refused push alerts.
    assert "push_4xx_per_minute = optional(number, 0)" in TF.variables["alerts"]["type"]
    assert (
        "var.alerts.push_4xx_per_minute >= 0"
        in (TF.variables["alerts"]["validation"][0]["condition"])
    )
    content = _block(policy, "documentation")["content"]
    assert "roles/run.invoker" in content
    assert "audience" in content
    # The worker's own refusals are the log lines the runbook names.
    push = (ROOT / "worker" / "transports" / "push.py").read_text()
    assert '"push request refused"' in push
    assert "push request refused" in content
    operations = (ROOT / "docs" / "operations.md").read_text()
    runbook = operations[operations.index("### email-worker: push deliveries failing") :]
    runbook = runbook.split("\n### ")[0]
    for needed in ("**4xx**", "roles/run.invoker", "push_4xx_per_minute", "push request refused"):
        assert needed in runbook, needed


def test_the_subscription_filter_is_one_regular_expression_on_pubsub_subscriptions() -> None:
    filter_ = TF.locals["worker_subscriptions_filter"].replace('\\"', '"')
    assert filter_ == (
        'resource.type = "pubsub_subscription" AND resource.labels.subscription_id = '
        'monitoring.regex.full_match("${local.worker_subscriptions_regex}")'
    )
    # No list of names, which passes Monitoring's 2,048 characters at a few dozen services.
    assert "one_of" not in filter_
    assert "google_pubsub_subscription" not in filter_


def _full_match(pattern: str, name: str) -> bool:
    return re.fullmatch(pattern, name) is not None


def test_the_subscription_regex_matches_every_worker_subscription_and_nothing_else(
    tf: TerraformAlone,
) -> None:
    pattern = tf.value("local.worker_subscriptions_regex")
    names = tf.value("local.service_subscription_names")
    assert names
    for name in [*names.values(), "email-replays-worker", "email-requests-worker"]:
        assert _full_match(pattern, name), name
    for name in (
        "email-requests-dead-letter-ops",
        "email-results-billing",
        "email-requests-billing",
        "my-email-requests-billing-worker",
        "email-requests-billing-worker-2",
        "email-requests--worker",
    ):
        assert not _full_match(pattern, name), name
    # Of the same length for 300 services with the longest ids as for one: a filter with it
    # stays far below Monitoring's 2,048 characters.
    many = {f"{i:03d}-{'x' * 36}": {"sending_domain": "example.org"} for i in range(300)}
    assert tf.value("local.worker_subscriptions_regex", services=many) == pattern
    filter_ = (
        'resource.type = "pubsub_subscription" AND resource.labels.subscription_id = '
        f'monitoring.regex.full_match("{pattern}") AND metric.type = '
        '"pubsub.googleapis.com/subscription/push_request_count" AND '
        'metric.labels.response_class = "remote_server_5xx"'
    )
    assert len(filter_) < 2048 / 4
    for id_ in many:
        assert _full_match(pattern, f"email-requests-{id_}-worker")
    # Names of other templates: "." and "+" match only themselves.
    custom = tf.value(
        "local.worker_subscriptions_regex",
        pubsub_names={"service_subscription": "q.{service}+w", "replay_subscription": "r.w"},
    )
    assert _full_match(custom, "q.billing+w")
    assert _full_match(custom, "r.w")
    assert not _full_match(custom, "qxbilling+w")
    assert not _full_match(custom, "rxw")
    assert "\\" not in custom, "no backslash to escape in a Monitoring filter string"


def test_the_worker_s_failures_are_counted_from_its_logs_and_alert() -> None:
    metric = TF.resource("google_logging_metric", "worker_failures")
    # The fields of the worker's `request processed` line (worker/processing/handling.py).
    handling = (ROOT / "worker" / "processing" / "handling.py").read_text()
    assert '"request processed"' in handling
    for field in ("outcome=", "error_code=", "ledger="):
        assert field in handling
    assert 'jsonPayload.message = \\"request processed\\"' in metric["filter"] or (
        'jsonPayload.message = "request processed"' in metric["filter"]
    )
    assert "failed" in metric["filter"]
    assert "unavailable" in metric["filter"]
    assert metric["label_extractors"] == {"error_code": "EXTRACT(jsonPayload.error_code)"}
    policy = TF.resource("google_monitoring_alert_policy", "worker_failures")
    (filter_,) = _condition_filters(policy)
    assert filter_ == (
        'metric.type = "logging.googleapis.com/user/'
        '${time_sleep.worker_failures_metric_registered.triggers["metric"]}"'
    )


def test_ses_throttling_alerts_on_the_share_of_requests_that_met_it() -> None:
    handling = (ROOT / "worker" / "processing" / "handling.py").read_text()
    for field in ("ses_calls=", "ses_throttled="):
        assert field in handling, "the filters name fields of the `request processed` line"
    requests = TF.resource("google_logging_metric", "ses_requests")["filter"].replace('\\"', '"')
    throttled = TF.resource("google_logging_metric", "ses_throttled_requests")["filter"]
    assert requests == 'jsonPayload.message = "request processed" AND jsonPayload.ses_calls > 0'
    assert throttled.replace('\\"', '"') == (
        'jsonPayload.message = "request processed" AND jsonPayload.ses_throttled > 0'
    )
    policy = TF.resource("google_monitoring_alert_policy", "ses_throttling")
    (condition,) = policy["conditions"]
    threshold = _block(condition, "condition_threshold")
    assert 'triggers["throttled"]' in threshold["filter"]
    assert 'triggers["requests"]' in threshold["denominator_filter"]
    assert threshold["threshold_value"] == "${var.alerts.ses_throttled_percent / 100}"
    assert threshold["comparison"] == "COMPARISON_GT"
    wait = TF.resource("time_sleep", "ses_throttling_metrics_registered")
    assert wait["triggers"] == {
        "requests": "${google_logging_metric.ses_requests.name}",
        "throttled": "${google_logging_metric.ses_throttled_requests.name}",
    }
    alerts_type = TF.variables["alerts"]["type"]
    assert "ses_throttled_percent" in alerts_type
    assert "optional(number, 1)" in alerts_type.split("ses_throttled_percent")[1].splitlines()[0]


def test_the_outage_hold_is_counted_from_its_warning_and_alerts_after_the_wait() -> None:
    message = TF.locals["outage_holding_message"]
    breaker = (ROOT / "worker" / "processing" / "breaker.py").read_text()
    assert f'"{message}"' in breaker, "the filter must name the warning the breaker logs"
    metric = TF.resource("google_logging_metric", "outage_holding")
    assert metric["filter"].replace('\\"', '"') == (
        'jsonPayload.message = "${local.outage_holding_message}"'
    )
    wait = TF.resource("time_sleep", "outage_holding_metric_registered")
    assert wait["create_duration"] == "${local.log_metric_registration_wait}"
    assert wait["triggers"] == {"metric": "${google_logging_metric.outage_holding.name}"}
    policy = TF.resource("google_monitoring_alert_policy", "outage_holding")
    (filter_,) = _condition_filters(policy)
    assert "time_sleep.outage_holding_metric_registered" in filter_
    (condition,) = policy["conditions"]
    threshold = _block(condition, "condition_threshold")
    assert threshold["threshold_value"] == 0
    assert threshold["comparison"] == "COMPARISON_GT"


def test_the_reputation_breakers_trips_are_counted_from_its_warning_and_alert_by_service() -> None:
    message = TF.locals["reputation_breaker_message"]
    breaker = (ROOT / "worker" / "events" / "reputation.py").read_text()
    assert f'"{message}"' in breaker, "the filter must name the warning the breaker logs"
    metric = TF.resource("google_logging_metric", "reputation_breaker")
    assert metric["filter"].replace('\\"', '"') == (
        'jsonPayload.message = "${local.reputation_breaker_message}"'
    )
    assert metric["label_extractors"] == {"service_id": "EXTRACT(jsonPayload.service_id)"}
    wait = TF.resource("time_sleep", "reputation_breaker_metric_registered")
    assert wait["create_duration"] == "${local.log_metric_registration_wait}"
    assert wait["triggers"] == {"metric": "${google_logging_metric.reputation_breaker.name}"}
    policy = TF.resource("google_monitoring_alert_policy", "reputation_breaker")
    (filter_,) = _condition_filters(policy)
    assert "time_sleep.reputation_breaker_metric_registered" in filter_
    (condition,) = policy["conditions"]
    threshold = _block(condition, "condition_threshold")
    assert (threshold["threshold_value"], threshold["comparison"]) == (0, "COMPARISON_GT")
    assert "email-worker resume" in _block(policy, "documentation")["content"]


def test_the_failures_alert_waits_until_monitoring_has_registered_its_log_based_metric() -> None:
    # Monitoring registers a new log-based metric minutes after it is created; an alert policy
    # naming it before then fails with 404, which the provider does not retry, so the first
    # apply failed. The policy reads the metric's name through a time_sleep created after it.
    wait = TF.resource("time_sleep", "worker_failures_metric_registered")
    assert wait["create_duration"] == "${local.log_metric_registration_wait}"
    seconds = int(re.fullmatch(r"(\d+)s", TF.locals["log_metric_registration_wait"]).group(1))  # type: ignore[union-attr]
    assert seconds >= 120
    # The wait starts again whenever the metric is created anew.
    assert wait["triggers"] == {"metric": "${google_logging_metric.worker_failures.name}"}
    policy = TF.resource("google_monitoring_alert_policy", "worker_failures")
    (filter_,) = _condition_filters(policy)
    assert "google_logging_metric" not in filter_, "the policy must not bypass the wait"
    assert "time_sleep.worker_failures_metric_registered" in filter_
    readme = (TERRAFORM / "README.md").read_text()
    first_apply = readme[readme.index("### The first apply") :].split("\n## ")[0]
    for needed in ("time_sleep", "404", "log_metric_registration_wait"):
        assert needed in first_apply, needed


def test_ses_bounce_and_complaint_rates_alarm_at_aws_s_review_levels() -> None:
    alarm = TF.resource("aws_cloudwatch_metric_alarm", "ses_reputation")
    assert alarm["for_each"] == "${local.ses_reputation_alarms}"
    assert alarm["namespace"] == "AWS/SES"
    assert alarm["metric_name"] == "${each.value.metric}"
    assert alarm["threshold"] == "${each.value.threshold}"
    assert alarm["comparison_operator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["alarm_actions"] == alarm["ok_actions"] == "${var.aws_alarm_actions}"
    levels = {a["metric"]: a["threshold"] for a in TF.locals["ses_reputation_alarms"].values()}
    # AWS reviews an account at a 5% bounce rate or a 0.1% complaint rate (the rates are
    # fractions).
    assert levels == {"Reputation.BounceRate": 0.05, "Reputation.ComplaintRate": 0.001}
    # The configuration set keeps the reputation metrics these read.
    configuration_set = TF.resource("aws_sesv2_configuration_set", "events")
    assert _block(configuration_set, "reputation_options")["reputation_metrics_enabled"] is True


# -- deliverability --------------------------------------------------------------------------


def test_every_identity_has_a_custom_mail_from_subdomain_that_is_no_from_domain() -> None:
    mail_from = TF.resource("aws_sesv2_email_identity_mail_from_attributes", "domain")
    assert mail_from["for_each"] == "${aws_sesv2_email_identity.domain}"
    assert mail_from["email_identity"] == "${each.value.email_identity}"
    assert mail_from["mail_from_domain"] == "${var.ses_mail_from_subdomain}.${each.key}"
    assert TF.variables["ses_mail_from_subdomain"]["default"] == "bounce"
    (condition,) = _preconditions(mail_from)
    assert "local.allowed_from_domains" in condition


def test_the_dns_output_lists_dkim_mail_from_and_a_dmarc_suggestion() -> None:
    records = TF.outputs["ses_dns_records"]["value"]
    for expected in (
        "dkim_signing_attributes[0].tokens",
        '"${token}._domainkey.${domain}"',
        '"CNAME"',
        '"${token}.dkim.amazonses.com"',
        "aws_sesv2_email_identity_mail_from_attributes.domain[domain].mail_from_domain",
        '"MX"',
        '"10 feedback-smtp.${var.aws_region}.amazonses.com"',
        '"v=spf1 include:amazonses.com ~all"',
        '"_dmarc.${domain}"',
        "local.dmarc_record",
    ):
        assert expected in records, expected
    dmarc = TF.locals["dmarc_record"]
    assert '"v=DMARC1"' in dmarc
    assert '"p=none"' in dmarc
    assert "rua=mailto:${var.dmarc_report_address}" in dmarc


def test_the_configuration_set_suppresses_addresses_that_bounced_or_complained() -> None:
    configuration_set = TF.resource("aws_sesv2_configuration_set", "events")
    suppression = _block(configuration_set, "suppression_options")
    assert suppression["suppressed_reasons"] == ["BOUNCE", "COMPLAINT"]


# -- the image -------------------------------------------------------------------------------


def test_the_image_is_accepted_by_digest_only(tf: TerraformAlone) -> None:
    digest = "sha256:" + "ab" * 32
    good = f"europe-west2-docker.pkg.dev/p/email/email-worker@{digest}"
    assert tf.value("var.image", image=good) == good
    for bad in (
        "europe-west2-docker.pkg.dev/p/email/email-worker:1.2.3",
        "europe-west2-docker.pkg.dev/p/email/email-worker:latest",
        "europe-west2-docker.pkg.dev/p/email/email-worker@sha256:abc",
    ):
        refused = tf.plan(image=bad)
        assert refused.returncode != 0, bad
        assert "image must name the image by digest" in " ".join(refused.stderr.split()), bad


def test_the_image_validation_accepts_a_digest_and_refuses_tags() -> None:
    # The same rule as above without terraform: the validation's regular expression.
    condition = TF.variables["image"]["validation"][0]["condition"]
    pattern = re.fullmatch(r'\$\{can\(regex\("(.*)", var\.image\)\)\}', condition)
    assert pattern, condition
    rule = re.compile(pattern.group(1).replace("\\\\", "\\"))
    assert rule.fullmatch("europe-west2-docker.pkg.dev/p/email/email-worker@sha256:" + "0" * 64)
    assert not rule.fullmatch("europe-west2-docker.pkg.dev/p/email/email-worker:1.2.3")
    assert not rule.fullmatch("email-worker@sha256:" + "0" * 64)
    example = _load(EXAMPLE_TFVARS)
    assert rule.fullmatch(example["image"])


def test_senders_wait_for_send_events_only_where_the_events_reader_runs() -> None:
    wait = TF.locals["managed_env"]["EMAIL_WORKER_SEND_EVENT_WAIT_S"]
    worker_default = Settings.from_env({}).ledger.send_event_wait_s
    assert wait == f'${{var.events_enabled ? "{worker_default:g}" : "0"}}'


# -- attachments by reference ----------------------------------------------------------------


def _services_with_prefixes(**prefixes: list[str]) -> dict[str, Any]:
    return {
        sid: {"sending_domain": "example.org", "attachment_prefixes": p}
        for sid, p in prefixes.items()
    }


def test_the_worker_may_read_attachments_only_under_each_prefix_by_an_iam_condition() -> None:
    grant = TF.resource("google_storage_bucket_iam_member", "attachment_viewer_worker")
    assert grant["for_each"] == "${local.attachment_grants}"
    assert grant["bucket"] == "${each.value.bucket}"
    assert grant["role"] == "roles/storage.objectViewer"
    assert grant["member"] == "${google_service_account.worker.member}"
    assert _block(grant, "condition")["expression"] == "${each.value.expression}"


def test_each_prefix_becomes_a_condition_on_the_object_names_under_it(tf: TerraformAlone) -> None:
    grants = tf.value(
        "local.attachment_grants",
        services=_services_with_prefixes(
            billing=["gs://files/billing/", "gs://billing-only/"], alerts=["gs://files/alerts/"]
        ),
    )
    assert grants == {
        "gs://files/billing/": {
            "bucket": "files",
            "path": "billing/",
            "expression": 'resource.name.startsWith("projects/_/buckets/files/objects/billing/")',
        },
        "gs://billing-only/": {
            "bucket": "billing-only",
            "path": "",
            "expression": 'resource.name.startsWith("projects/_/buckets/billing-only/objects/")',
        },
        "gs://files/alerts/": {
            "bucket": "files",
            "path": "alerts/",
            "expression": 'resource.name.startsWith("projects/_/buckets/files/objects/alerts/")',
        },
    }


@pytest.mark.parametrize(
    "prefix",
    [
        "gs://files/billing",
        "gs://files",
        "gs://files//",
        "gs://files/a/../",
        "gs://files/../",
        "gs://files/./",
        "gs://files/%2e%2e/",
        "gs://files/a%2F/",
        "gs://files/a\\b/",
        "gs://files/a*/",
        "gs://files/a#/",
        "gs://Files/a/",
        "https://files/a/",
    ],
)
def test_an_ambiguous_attachment_prefix_fails_the_plan(tf: TerraformAlone, prefix: str) -> None:
    result = tf.plan(services=_services_with_prefixes(billing=[prefix]))
    assert result.returncode != 0
    assert "attachment_prefixes must be gs://BUCKET/" in " ".join(result.stderr.split())


def test_a_prefix_inside_another_services_fails_the_plan(tf: TerraformAlone) -> None:
    result = tf.plan(
        services=_services_with_prefixes(billing=["gs://files/"], alerts=["gs://files/alerts/"])
    )
    assert result.returncode != 0
    assert "may lie inside (or equal) another service's" in " ".join(result.stderr.split())


def test_sibling_prefixes_of_two_services_in_one_bucket_pass_the_plan(tf: TerraformAlone) -> None:
    result = tf.plan(
        services=_services_with_prefixes(billing=["gs://files/a/"], alerts=["gs://files/ab/"])
    )
    assert result.returncode == 0, result.stderr


def _services_with_tenants(**tenants: dict[str, str]) -> dict[str, Any]:
    return {sid: {"sending_domain": "example.org", **fields} for sid, fields in tenants.items()}


@pytest.mark.parametrize(
    ("services", "message"),
    [
        ({"billing": {"ses_tenant": "bill ing"}}, "Each ses_tenant must be 1-64 letters"),
        (
            {"billing": {"ses_tenant": "t"}, "shop": {"ses_tenant": "t"}},
            "Each service needs a tenant of its own",
        ),
        ({"billing": {"reputation_policy": "strict"}}, "needs the service's ses_tenant"),
        (
            {"billing": {"ses_tenant": "billing", "reputation_policy": "lenient"}},
            "A reputation_policy must be none, standard or strict",
        ),
    ],
)
def test_a_bad_tenant_or_reputation_policy_fails_the_plan(
    tf: TerraformAlone, services: dict[str, dict[str, str]], message: str
) -> None:
    result = tf.plan(services=_services_with_tenants(**services))
    assert result.returncode != 0
    assert message in " ".join(result.stderr.split())


def test_services_with_tenants_of_their_own_pass_the_plan(tf: TerraformAlone) -> None:
    services = {
        "billing": {"ses_tenant": "billing", "reputation_policy": "strict"},
        "shop": {"ses_tenant": "shop"},
        "alerts": {},
    }
    result = tf.plan(services=_services_with_tenants(**services))
    assert result.returncode == 0, result.stderr


def test_the_recipient_lookup_has_its_collection_group_index() -> None:
    index = TF.resource("google_firestore_index", "ledger_statuses_by_recipient")
    assert index["database"] == "${google_firestore_database.ledger.name}"
    assert index["collection"] == "${local.ledger_statuses_collection}"
    assert index["query_scope"] == "COLLECTION_GROUP"
    assert [(f["field_path"], f["order"]) for f in index["fields"]] == [
        ("ledger", "ASCENDING"),
        ("recipient", "ASCENDING"),
        ("occurred_at", "DESCENDING"),
    ]
    # The fields FirestoreLedger.sent_to filters and orders by, in that order.
    source = (ROOT / "worker" / "ledger" / "firestore_ledger.py").read_text()
    query = source[source.index("def sent_to") :].split("\n    def ", 1)[0]
    positions = [query.index(f'"{name}"') for name in ("ledger", "recipient", "occurred_at")]
    assert positions == sorted(positions)


def test_scheduled_requests_expire_and_are_read_through_composite_indexes() -> None:
    from worker.ledger.schedules_firestore import COLLECTION

    assert TF.locals["schedules_collection"] == COLLECTION
    expire_at = TF.resource("google_firestore_field", "schedules_expire_at")
    assert (expire_at["collection"], expire_at["field"]) == (
        "${local.schedules_collection}",
        "expire_at",
    )
    assert expire_at["ttl_config"] == [{}]
    due = TF.resource("google_firestore_index", "schedules_due")
    assert [f["field_path"] for f in due["fields"]] == ["shard", "state", "due_at"]
    of_service = TF.resource("google_firestore_index", "schedules_of_service")
    assert [f["field_path"] for f in of_service["fields"]] == ["service_id", "state", "due_at"]
    unindexed = TF.resource("google_firestore_field", "schedules_unindexed")
    assert unindexed["for_each"] == "${local.schedules_unindexed_fields}"
    assert "data" in TF.locals["schedules_unindexed_fields"]
