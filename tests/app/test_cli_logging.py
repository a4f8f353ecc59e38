"""The operators' commands log to stderr: their stdout carries what scripts parse (``--json``).

The command run is ``ledger show --json`` on a real SQLite ledger file; the warning on its way
is logged by a wrapper around the ledger's opening, so that the test does not depend on which
of the command's paths happens to log today.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import structlog
from click.testing import CliRunner, Result
from structlog.testing import capture_logs

from worker.app.cli import main
from worker.config.logs import get_logger
from worker.ledger import ClaimState, LedgerKey, SqliteLedger, StoredResult

KEY = LedgerKey("billing", "order-17")
# A module's logger, as the worker's modules keep theirs.
module_log = get_logger()


@pytest.fixture
def ledger_file(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.db"
    with SqliteLedger(path, claim_lease_s=90.0, retention_s=86400.0) as ledger:
        claim = ledger.claim(KEY, owner="1234/1/5f0c2d9e8a7b", content_hash="ab" * 32)
        assert claim.state is ClaimState.CLAIMED
        stored = StoredResult("sent", message_ids=("m-1",), recipient_count=1)
        assert ledger.complete(KEY, owner="1234/1/5f0c2d9e8a7b", result=stored)
    return path


@pytest.fixture
def logging_on_open(monkeypatch: pytest.MonkeyPatch) -> None:
    """Opening the ledger logs an info line and a warning, then opens it as it would."""
    import worker.ledger

    opened = worker.ledger.open_ledger

    def open_and_log(*args: Any, **kwargs: Any) -> Any:
        get_logger().info("opening the ledger")
        module_log.warning("the ledger is slow today", detail="a warning on the way")
        return opened(*args, **kwargs)

    monkeypatch.setattr(worker.ledger, "open_ledger", open_and_log)


def show_json(ledger_file: Path, log_level: str | None = None) -> Result:
    env = {"EMAIL_WORKER_LEDGER": f"sqlite:///{ledger_file}", "EMAIL_WORKER_LOG_LEVEL": log_level}
    result = CliRunner().invoke(
        main, ["ledger", "show", KEY.service_id, KEY.request_id, "--json"], env=env
    )
    assert result.exit_code == 0, result.output
    return result


def log_lines(stderr: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stderr.splitlines()]


@pytest.mark.usefixtures("logging_on_open")
def test_a_json_output_stays_parseable_when_the_command_logs_a_warning(ledger_file: Path) -> None:
    result = show_json(ledger_file)
    assert json.loads(result.stdout)["result"]["status"] == "sent"
    [line] = log_lines(result.stderr)
    assert (line["severity"], line["message"]) == ("WARNING", "the ledger is slow today")


@pytest.mark.usefixtures("logging_on_open")
def test_an_operator_command_logs_warnings_and_worse_by_default(ledger_file: Path) -> None:
    messages = [line["message"] for line in log_lines(show_json(ledger_file).stderr)]
    assert messages == ["the ledger is slow today"]


@pytest.mark.usefixtures("logging_on_open")
def test_an_operator_command_logs_at_the_configured_log_level(ledger_file: Path) -> None:
    result = show_json(ledger_file, log_level="info")
    messages = [line["message"] for line in log_lines(result.stderr)]
    assert messages == ["opening the ledger", "the ledger is slow today"]
    json.loads(result.stdout)


@pytest.mark.usefixtures("logging_on_open")
def test_a_command_run_in_process_leaves_the_loggers_free_for_a_later_capture(
    ledger_file: Path,
) -> None:
    show_json(ledger_file)
    structlog.reset_defaults()  # as after each test
    with capture_logs() as logs:
        module_log.warning("seen by the capture")
    assert [line["event"] for line in logs] == ["seen by the capture"]
