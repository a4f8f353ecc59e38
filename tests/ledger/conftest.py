"""A ledger of each backend, on a clock the test moves by hand."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ledger.common import LEASE_S, RETENTION_S, START
from tests.support.clock import ManualClock
from worker.ledger import FirestoreLedger, Ledger, SqliteLedger


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture(params=["sqlite", "firestore"])
def ledger(request: pytest.FixtureRequest, clock: ManualClock, tmp_path: Path) -> Iterator[Ledger]:
    """An empty ledger of each backend: a SQLite file, or the Firestore emulator."""
    built: Ledger
    if request.param == "sqlite":
        built = SqliteLedger(
            tmp_path / "ledger.db", claim_lease_s=LEASE_S, retention_s=RETENTION_S, clock=clock
        )
    else:
        request.getfixturevalue("firestore_env")
        built = FirestoreLedger(claim_lease_s=LEASE_S, retention_s=RETENTION_S, clock=clock)
    yield built
    built.close()
