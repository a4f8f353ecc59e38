"""A ledger of each backend, on a clock the test moves by hand."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ledger.common import LEASE_S, RETENTION_S, START, TAKEOVER_WAIT_S
from tests.support.clock import ManualClock
from worker.ledger import FirestoreLedger, Ledger, MemoryLedger, SqliteLedger


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


def _built(
    request: pytest.FixtureRequest, clock: ManualClock, tmp_path: Path, takeover_wait_s: float = 0
) -> Ledger:
    if request.param == "memory":
        return MemoryLedger(
            claim_lease_s=LEASE_S,
            retention_s=RETENTION_S,
            clock=clock,
            takeover_wait_s=takeover_wait_s,
        )
    if request.param == "sqlite":
        return SqliteLedger(
            tmp_path / "ledger.db",
            claim_lease_s=LEASE_S,
            retention_s=RETENTION_S,
            clock=clock,
            takeover_wait_s=takeover_wait_s,
        )
    request.getfixturevalue("firestore_env")
    return FirestoreLedger(
        claim_lease_s=LEASE_S,
        retention_s=RETENTION_S,
        clock=clock,
        takeover_wait_s=takeover_wait_s,
    )


@pytest.fixture(
    params=["memory", "sqlite", pytest.param("firestore", marks=pytest.mark.integration)]
)
def ledger(request: pytest.FixtureRequest, clock: ManualClock, tmp_path: Path) -> Iterator[Ledger]:
    """An empty ledger of each backend: in memory, a SQLite file, or the Firestore emulator."""
    built = _built(request, clock, tmp_path)
    yield built
    built.close()


@pytest.fixture(
    params=["memory", "sqlite", pytest.param("firestore", marks=pytest.mark.integration)]
)
def waiting_ledger(
    request: pytest.FixtureRequest, clock: ManualClock, tmp_path: Path
) -> Iterator[Ledger]:
    """Like ``ledger``, with a takeover wait of ``TAKEOVER_WAIT_S``."""
    built = _built(request, clock, tmp_path, takeover_wait_s=TAKEOVER_WAIT_S)
    yield built
    built.close()
