"""Choosing a backend from the EMAIL_WORKER_LEDGER value."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.cloud import firestore

from tests.ledger.common import LEASE_S, RETENTION_S
from tests.support.firestore_emulator import FirestoreEmulator
from worker.ledger import (
    ClaimState,
    FirestoreLedger,
    Ledger,
    LedgerKey,
    MemoryLedger,
    SqliteLedger,
    content_hash,
    document_id,
    open_ledger,
)

KEY = LedgerKey("billing", "r-1")


def open_(url: str, collection: str = "email-worker-requests") -> Ledger | None:
    return open_ledger(
        url,
        project="test-project",
        claim_lease_s=LEASE_S,
        retention_s=RETENTION_S,
        collection=collection,
    )


def test_none_means_no_ledger() -> None:
    assert open_("none") is None


def test_sqlite_with_three_slashes_is_a_path_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ledger = open_("sqlite:///state/../ledger.db")

    assert isinstance(ledger, SqliteLedger)
    assert ledger.path == "state/../ledger.db"
    ledger.close()
    assert (tmp_path / "ledger.db").is_file()


def test_sqlite_with_four_slashes_is_an_absolute_path(tmp_path: Path) -> None:
    ledger = open_(f"sqlite:///{tmp_path}/ledger.db")

    assert isinstance(ledger, SqliteLedger)
    assert ledger.path == f"{tmp_path}/ledger.db"
    ledger.close()
    assert (tmp_path / "ledger.db").is_file()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_sqlite_without_a_path_is_in_memory(url: str) -> None:
    ledger = open_(url)

    assert isinstance(ledger, SqliteLedger)
    assert ledger.path == ":memory:"
    assert ledger.claim(KEY, owner="w1", content_hash="h").state is ClaimState.CLAIMED
    ledger.close()


@pytest.mark.parametrize(
    ("url", "database"), [("firestore", "(default)"), ("firestore://ledger-db", "ledger-db")]
)
def test_firestore_opens_the_named_database(
    firestore_env: FirestoreEmulator, url: str, database: str
) -> None:
    firestore_env.clear(database)
    ledger = open_(url, collection="ledger-test")
    assert isinstance(ledger, FirestoreLedger)
    assert (ledger.database, ledger.collection) == (database, "ledger-test")
    ledger.claim(KEY, owner="w1", content_hash=content_hash(url.encode()))
    ledger.close()

    client = firestore.Client(project="test-project", database=database)
    try:
        snapshot = client.collection("ledger-test").document(document_id(KEY)).get()
    finally:
        client.close()
    data = snapshot.to_dict()
    assert data is not None
    assert data["content_hash"] == content_hash(url.encode())


@pytest.mark.parametrize(
    "url",
    [
        "",
        "None",
        " none",
        "sqlite:",
        "sqlite:/ledger.db",
        "sqlite:///",
        "memory:",
        "memory:///x",
        "postgresql://localhost/ledger",
        "firestore:",
        "firestore:/ledger-db",
        "firestore://",
        "firestore://Ledger_DB",
        "firestore://ledger-db/extra",
    ],
)
def test_open_ledger_rejects_unknown_forms(url: str) -> None:
    with pytest.raises(ValueError, match="ledger URL") as raised:
        open_(url)
    message = str(raised.value)
    assert "none, sqlite:///" in message or "Firestore database id" in message


def test_memory_is_a_ledger_private_to_this_process() -> None:
    ledger = open_("memory://")

    assert isinstance(ledger, MemoryLedger)
    assert ledger.claim(KEY, owner="w1", content_hash="h").state is ClaimState.CLAIMED
    assert ledger.claim(KEY, owner="w2", content_hash="h").state is ClaimState.BUSY
    ledger.close()
