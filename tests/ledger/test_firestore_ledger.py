"""What only the Firestore ledger does: its document layout, and failing fast in an outage."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

import pytest
from google.api_core.exceptions import GoogleAPIError
from google.cloud import firestore

from tests.ledger.common import LEASE_S, RETENTION_S, START
from tests.support.clock import ManualClock
from tests.support.firestore_emulator import FirestoreEmulator
from tests.support.ports import LOOPBACK, free_port
from worker.ledger import (
    DEFAULT_COLLECTION,
    FirestoreLedger,
    LedgerKey,
    LedgerUnavailable,
    StoredResult,
    content_hash,
    document_id,
)

KEY = LedgerKey("billing", "orders/2027/42")
HASH = content_hash(b"the request")


def test_a_claim_is_a_document_keyed_by_service_and_request_hash(
    firestore_env: FirestoreEmulator, clock: ManualClock
) -> None:
    with FirestoreLedger(claim_lease_s=LEASE_S, retention_s=RETENTION_S, clock=clock) as ledger:
        ledger.claim(KEY, owner="w1", content_hash=HASH)

    client = firestore.Client(project=firestore_env.project_id)
    try:
        [snapshot] = list(client.collection(DEFAULT_COLLECTION).stream())
    finally:
        client.close()
    assert snapshot.id == document_id(KEY)
    assert snapshot.id.startswith("billing:")
    assert "/" not in snapshot.id
    data = snapshot.to_dict()
    assert data is not None
    assert (data["service_id"], data["request_id"], data["content_hash"]) == (
        "billing",
        "orders/2027/42",
        HASH,
    )
    # A timestamp, not a number: the TTL policy on expire_at only acts on timestamps.
    assert isinstance(data["expire_at"], datetime)
    assert data["expire_at"].timestamp() == START + RETENTION_S


def test_document_ids_stay_short_for_long_request_ids() -> None:
    key = LedgerKey("billing", "ü/" * 700)

    assert len(document_id(key).encode()) < 1500
    assert document_id(key) != document_id(LedgerKey("billing", "ü/" * 699))


def test_firestore_outage_raises_ledger_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing listens on this port: every call is refused, as when the service is unreachable.
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"{LOOPBACK}:{free_port()}")
    ledger = FirestoreLedger(claim_lease_s=LEASE_S, timeout_s=1.0)
    secret = StoredResult("failed", error_message="customer text that must not leak")
    calls: dict[str, Callable[[], object]] = {
        "claim": lambda: ledger.claim(KEY, owner="w1", content_hash=HASH),
        "complete": lambda: ledger.complete(KEY, owner="w1", result=secret),
        "release": lambda: ledger.release(KEY, owner="w1"),
        "read": lambda: ledger.get(KEY),
    }
    try:
        for action, call in calls.items():
            started = time.monotonic()
            with pytest.raises(LedgerUnavailable) as raised:
                call()
            assert time.monotonic() - started < 5, action
            assert str(raised.value).startswith(f"Firestore ledger could not {action} billing/")
            assert "must not leak" not in str(raised.value)
            assert isinstance(raised.value.__cause__, GoogleAPIError)
    finally:
        ledger.close()
