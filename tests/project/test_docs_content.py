"""What the README and docs/ say agrees with the code and terraform, and the on-call page is
the first thing an operator finds."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from tests.support.pubsub_emulator import PubSubEmulator, unique_name
from worker.app.cli import main
from worker.client import EmailClient
from worker.config.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
OPERATIONS = (ROOT / "docs" / "operations.md").read_text()
ON_CALL = (ROOT / "docs" / "on-call.md").read_text()
CONFIGURATION = (ROOT / "docs" / "configuration.md").read_text()
TERRAFORM = ROOT / "terraform"


def section(text: str, heading: str) -> str:
    """The text under ``heading`` up to the next heading of the same level or above."""
    level = heading.split(" ", 1)[0]
    body = text.split(f"\n{heading}\n", 1)[1]
    return re.split(rf"\n#{{1,{len(level)}}} ", body, maxsplit=1)[0]


def test_operations_md_points_to_the_on_call_page_before_its_first_section() -> None:
    before_first_section = OPERATIONS.split("\n## ", 1)[0]
    assert "[on-call.md](on-call.md)" in before_first_section


def test_the_readme_points_to_the_on_call_page_first_among_operations() -> None:
    operations = section(README, "## Operations")
    first_item = operations.strip().split("\n- ", 1)[0]
    assert "[docs/on-call.md](docs/on-call.md)" in first_item


def test_the_on_call_page_covers_what_an_incident_needs() -> None:
    headings = re.findall(r"^#{2,3} (.+)$", ON_CALL, flags=re.MULTILINE)
    assert headings == [
        "Set up the shell",
        "From a request id to its dead letter",
        "Stop and resume sending",
        "Add, change and remove a service",
        "Add",
        "Change",
        "Remove",
        "The logs of one request",
    ]
    assert 'jsonPayload.request_id="order-17"' in ON_CALL
    assert 'resource.type="cloud_run_revision"' in ON_CALL


def test_every_terraform_output_the_on_call_page_reads_exists() -> None:
    outputs = set(re.findall(r'^output "([a-z_]+)"', (TERRAFORM / "outputs.tf").read_text(), re.M))
    read = set(
        re.findall(r"terraform(?: -chdir=terraform)? output (?:-raw |-json )?([a-z_]+)", ON_CALL)
    )
    assert {"worker_environment", "ledger_database", "ses_dns_records"} <= read
    assert read <= outputs


def terraform_ledger_value() -> str:
    """EMAIL_WORKER_LEDGER as terraform sets it, with the database id's default."""
    main_tf = (TERRAFORM / "main.tf").read_text()
    value = re.search(r'EMAIL_WORKER_LEDGER += "(firestore://\$\{[a-z_.]+\})"', main_tf)
    assert value is not None
    assert value.group(1) == "firestore://${google_firestore_database.ledger.name}"
    assert re.search(r"name += var\.ledger_database_id", (TERRAFORM / "ledger.tf").read_text())
    variables = (TERRAFORM / "variables.tf").read_text()
    database = re.search(
        r'variable "ledger_database_id" \{.*?default += "([a-z0-9-]+)"', variables, re.S
    )
    assert database is not None
    return f"firestore://{database.group(1)}"


def test_the_configuration_table_and_the_on_call_page_name_the_ledger_terraform_sets() -> None:
    value = terraform_ledger_value()
    assert value == "firestore://email-worker-ledger"
    ledger_row = next(
        line for line in CONFIGURATION.splitlines() if line.startswith("| `EMAIL_WORKER_LEDGER` |")
    )
    assert f"terraform sets `{value}`" in ledger_row
    assert f"EMAIL_WORKER_LEDGER={value}" in ON_CALL


def test_the_session_ttl_the_on_call_page_names_is_the_setting_default() -> None:
    default = Settings.from_env({}).services.session_ttl_s
    assert f"`EMAIL_WORKER_SESSION_TTL_S` ({default:g} s)" in ON_CALL


def test_the_readme_says_how_to_install_the_command_line() -> None:
    install = section(README, "### Installing the command line")
    assert "uv tool install git+https://" in install
    assert "pipx install git+https://" in install
    assert re.search(r"^uv tool install \.\s", install, re.MULTILINE)


def test_the_readme_send_example_names_its_service() -> None:
    sends = [line for line in README.splitlines() if line.startswith("email-worker send ")]
    assert sends
    assert all("--service " in line for line in sends)


def documented_client_arguments() -> tuple[list[Any], dict[str, Any]]:
    """The arguments of the EmailClient(...) call in operations.md's Python example."""
    example = section(OPERATIONS, "## Python client").split("```python\n", 1)[1].split("```")[0]
    for node in ast.walk(ast.parse(example)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "EmailClient":
            args = [ast.literal_eval(a) for a in node.args]
            kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
            return args, kwargs
    raise AssertionError("no EmailClient(...) call in the example")


def test_the_python_client_example_publishes_to_the_service_own_topic() -> None:
    args, kwargs = documented_client_arguments()
    client = EmailClient(*args, **kwargs)  # the Pub/Sub clients are made on first use only
    assert client.topic_for("billing") == "projects/my-project/topics/email-requests-billing"


def test_the_setup_output_shown_in_operations_md_is_what_setup_prints(
    pubsub_emulator: PubSubEmulator,
) -> None:
    shown = section(OPERATIONS, "## setup").split("```text\n", 1)[1].split("```")[0]
    project = unique_name("dev")
    env = {
        "PUBSUB_EMULATOR_HOST": pubsub_emulator.host,
        "GOOGLE_CLOUD_PROJECT": project,
        "EMAIL_WORKER_ALLOWED_SERVICES": "billing",
    }
    result = CliRunner().invoke(main, ["setup"], env=env)
    assert result.exit_code == 0, result.output
    assert result.stdout == shown.replace("projects/dev/", f"projects/{project}/")
