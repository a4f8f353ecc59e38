"""``email-worker ledger show`` on a real SQLite ledger file, and on the Firestore emulator.

Records are made through the ledgers' own API (claim, then complete), as the worker makes them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support.cli_runner import invoke
from tests.support.firestore_emulator import FirestoreEmulator
from worker.ledger import (
    ClaimState,
    FirestoreLedger,
    Ledger,
    LedgerKey,
    SqliteLedger,
    StoredResult,
)

LEASE_S = 90.0
RETENTION_S = 8 * 24 * 3600.0
KEY = LedgerKey("billing", "order-17")
HASH = "ab" * 32
OWNER = "1234/1/5f0c2d9e8a7b"
MESSAGE_IDS = (
    "0100018f3c1e2a4b-6f1d3c2e-9a8b-4c7d-8e6f-5a4b3c2d1e0f-000000",
    "0100018f3c1e2a4c-7a2e4d3f-0b9c-5d8e-9f70-6b5c4d3e2f10-000000",
)


@pytest.fixture
def ledger_file(tmp_path: Path) -> Path:
    return tmp_path / "ledger.db"


@pytest.fixture
def sqlite_ledger(ledger_file: Path) -> Iterator[SqliteLedger]:
    with SqliteLedger(ledger_file, claim_lease_s=LEASE_S, retention_s=RETENTION_S) as built:
        yield built


@pytest.fixture
def env(ledger_file: Path) -> dict[str, str]:
    # Four slashes: an absolute path. A wide terminal, so no value is folded over two lines.
    return {"EMAIL_WORKER_LEDGER": f"sqlite:///{ledger_file}", "COLUMNS": "250"}


def sent(ledger: Ledger, key: LedgerKey = KEY) -> None:
    assert ledger.claim(key, owner=OWNER, content_hash=HASH).state is ClaimState.CLAIMED
    result = StoredResult("sent", message_ids=MESSAGE_IDS, recipient_count=3)
    assert ledger.complete(key, owner=OWNER, result=result)


def parse_iso(text: str) -> datetime:
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text)


# -- on SQLite ------------------------------------------------------------------------------


def test_a_sent_request_is_shown_with_its_state_status_and_message_ids(
    sqlite_ledger: SqliteLedger, env: dict[str, str]
) -> None:
    sent(sqlite_ledger)
    result = invoke(env, "ledger", "show", "billing", "order-17")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert any(line.split() == ["Service", "billing"] for line in lines)
    assert any(line.split() == ["Request", "ID", "order-17"] for line in lines)
    assert any(line.split() == ["State", "done"] for line in lines)
    assert any(line.split() == ["Status", "sent"] for line in lines)
    assert any(line.split() == ["Recipients", "3"] for line in lines)
    for message_id in MESSAGE_IDS:
        assert message_id in result.stdout
    assert result.stderr == ""


def test_a_template_request_is_shown_with_its_template_name_version_and_language(
    sqlite_ledger: SqliteLedger, env: dict[str, str]
) -> None:
    assert sqlite_ledger.claim(KEY, owner=OWNER, content_hash=HASH).state is ClaimState.CLAIMED
    result = StoredResult("sent", message_ids=MESSAGE_IDS, template=("invoice", 2, "de"))
    assert sqlite_ledger.complete(KEY, owner=OWNER, result=result)
    shown = invoke(env, "ledger", "show", "billing", "order-17")
    assert any(
        line.split() == ["Template", "invoice", "version", "2,", "language", "de"]
        for line in shown.stdout.splitlines()
    )
    as_json = json.loads(invoke(env, "ledger", "show", "billing", "order-17", "--json").stdout)
    assert as_json["result"]["template"] == {"name": "invoice", "version": 2, "language": "de"}


def test_a_claimed_request_is_shown_as_in_flight_with_its_owner_and_lease(
    sqlite_ledger: SqliteLedger, env: dict[str, str]
) -> None:
    sqlite_ledger.claim(KEY, owner=OWNER, content_hash=HASH)
    result = invoke(env, "ledger", "show", "billing", "order-17")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert any(line.split() == ["State", "claimed"] for line in lines)
    assert "no result yet" in result.stdout
    assert OWNER in result.stdout
    assert "a delivery is sending it" in result.stdout


def test_json_prints_one_object_with_every_field_of_the_record(
    sqlite_ledger: SqliteLedger, env: dict[str, str]
) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    sent(sqlite_ledger)
    result = invoke(env, "ledger", "show", "billing", "order-17", "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["service_id"] == "billing"
    assert shown["request_id"] == "order-17"
    assert shown["state"] == "done"
    assert shown["result"] == {
        "status": "sent",
        "message_ids": list(MESSAGE_IDS),
        "error_code": None,
        "error_message": None,
        "recipient_count": 3,
        "template": None,
    }
    assert shown["takeovers"] == 0
    assert shown["owner"] == OWNER
    assert shown["lease_until"] is None  # a finished request holds no lease
    assert shown["content_hash"] == HASH
    created = parse_iso(shown["created_at"])
    assert before <= created <= parse_iso(shown["updated_at"])
    expire = parse_iso(shown["expire_at"]) - parse_iso(shown["updated_at"])
    assert expire.total_seconds() == pytest.approx(RETENTION_S, abs=1)


def test_json_of_a_claimed_request_has_no_result_and_a_lease_in_the_future(
    sqlite_ledger: SqliteLedger, env: dict[str, str]
) -> None:
    sqlite_ledger.claim(KEY, owner=OWNER, content_hash=HASH)
    result = invoke(env, "ledger", "show", "billing", "order-17", "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["state"] == "claimed"
    assert shown["result"] is None
    assert parse_iso(shown["lease_until"]) > datetime.now(UTC)


def test_a_failed_request_shows_its_error_code_and_message_verbatim(
    sqlite_ledger: SqliteLedger, env: dict[str, str]
) -> None:
    sqlite_ledger.claim(KEY, owner=OWNER, content_hash=HASH)
    # Brackets, as in some SES messages: they must not be taken for terminal markup.
    message = "SendEmail failed: MessageRejected: Email address is not verified. [bold]x[/bold]"
    failed = StoredResult("failed", error_code="identity_not_verified", error_message=message)
    assert sqlite_ledger.complete(KEY, owner=OWNER, result=failed)
    result = invoke(env, "ledger", "show", "billing", "order-17")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert any(line.split() == ["Status", "failed"] for line in lines)
    assert any(line.split() == ["Error", "code", "identity_not_verified"] for line in lines)
    assert message in result.stdout


def test_a_claim_taken_over_after_its_lease_expired_shows_the_takeover_count(
    ledger_file: Path, env: dict[str, str]
) -> None:
    # A delivery claimed the request 200 s ago and died; a later one took its claim over.
    with SqliteLedger(
        ledger_file, claim_lease_s=LEASE_S, retention_s=RETENTION_S, clock=lambda: time.time() - 200
    ) as earlier:
        earlier.claim(KEY, owner="crashed", content_hash=HASH)
    with SqliteLedger(ledger_file, claim_lease_s=LEASE_S, retention_s=RETENTION_S) as later:
        assert later.claim(KEY, owner=OWNER, content_hash=HASH).state is ClaimState.TAKEOVER
    result = invoke(env, "ledger", "show", "billing", "order-17", "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["takeovers"] == 1
    assert shown["owner"] == OWNER


def test_an_unknown_request_exits_5_and_says_so_on_stderr(
    sqlite_ledger: SqliteLedger, env: dict[str, str]
) -> None:
    sent(sqlite_ledger)
    result = invoke(env, "ledger", "show", "billing", "order-18")
    assert result.exit_code == 5
    assert result.stdout == ""
    assert "no record of request 'order-18' of service 'billing'" in result.stderr


def test_a_request_id_is_looked_up_only_within_its_service(
    sqlite_ledger: SqliteLedger, env: dict[str, str]
) -> None:
    sent(sqlite_ledger)
    assert invoke(env, "ledger", "show", "marketing", "order-17").exit_code == 5


def test_ledger_none_is_an_error_with_exit_code_2(env: dict[str, str]) -> None:
    result = invoke({**env, "EMAIL_WORKER_LEDGER": "none"}, "ledger", "show", "billing", "x")
    assert result.exit_code == 2
    assert "EMAIL_WORKER_LEDGER is none" in result.stderr
    assert "Traceback" not in result.output


def test_an_in_memory_ledger_is_an_error_with_exit_code_2(env: dict[str, str]) -> None:
    result = invoke({**env, "EMAIL_WORKER_LEDGER": "sqlite://"}, "ledger", "show", "billing", "x")
    assert result.exit_code == 2
    assert "in-memory" in result.stderr


def test_a_missing_sqlite_file_exits_1_and_is_not_created(
    ledger_file: Path, env: dict[str, str]
) -> None:
    result = invoke(env, "ledger", "show", "billing", "order-17")
    assert result.exit_code == 1
    assert f"the SQLite ledger {ledger_file} does not exist" in result.stderr
    assert not ledger_file.exists()


def test_an_unreadable_ledger_exits_1_without_a_traceback(
    ledger_file: Path, env: dict[str, str]
) -> None:
    ledger_file.write_bytes(b"not a SQLite database, but long enough to be read as one" * 20)
    result = invoke(env, "ledger", "show", "billing", "order-17")
    assert result.exit_code == 1
    assert result.stderr.startswith("email-worker: SQLite ledger")
    assert "could not be opened" in result.stderr
    assert "Traceback" not in result.output


def test_invalid_settings_exit_2(env: dict[str, str]) -> None:
    result = invoke(
        {**env, "EMAIL_WORKER_LEDGER": "postgres://x"}, "ledger", "show", "billing", "x"
    )
    assert result.exit_code == 2
    assert "EMAIL_WORKER_LEDGER must be" in result.stderr


def test_help_lists_the_exit_codes() -> None:
    result = invoke({}, "ledger", "show", "--help")
    assert result.exit_code == 0
    assert "Exit codes:" in result.stdout
    assert "  5  no record of that request" in result.stdout


def test_help_does_not_import_the_ledger_backends() -> None:
    # Importing the Firestore client takes most of a second; --help must not pay for it.
    script = (
        "import sys\n"
        "from worker.app.cli import main\n"
        "try:\n"
        "    main(['ledger', 'show', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "assert 'worker.ledger' not in sys.modules, 'worker.ledger was imported'\n"
        "assert 'google.cloud.firestore' not in sys.modules, 'firestore was imported'\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stderr


# -- on Firestore ---------------------------------------------------------------------------


def test_a_firestore_record_is_shown_from_the_emulator(firestore_env: FirestoreEmulator) -> None:
    with FirestoreLedger(claim_lease_s=LEASE_S, retention_s=RETENTION_S) as ledger:
        sent(ledger)
    env = {"EMAIL_WORKER_LEDGER": "firestore", "COLUMNS": "250"}
    shown = json.loads(invoke(env, "ledger", "show", "billing", "order-17", "--json").stdout)
    assert shown["state"] == "done"
    assert shown["result"]["message_ids"] == list(MESSAGE_IDS)
    assert shown["owner"] == OWNER
    table = invoke(env, "ledger", "show", "billing", "order-17")
    assert table.exit_code == 0, table.output
    assert MESSAGE_IDS[0] in table.stdout


def test_an_unknown_request_in_firestore_exits_5(firestore_env: FirestoreEmulator) -> None:
    env = {"EMAIL_WORKER_LEDGER": "firestore"}
    result = invoke(env, "ledger", "show", "billing", "never-sent")
    assert result.exit_code == 5
    assert "no record of request 'never-sent'" in result.stderr
