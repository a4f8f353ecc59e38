"""A SQLite ledger that counts the write operations asked of it, failed ones included."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from worker.ledger import SqliteLedger

_T = TypeVar("_T")


class WriteCountingSqliteLedger(SqliteLedger):
    """A real SQLite ledger; ``writes`` counts every write tried, before it runs or fails."""

    def __init__(self, path: Path) -> None:
        self.writes = 0
        super().__init__(path, claim_lease_s=30.0)

    def _writing(self, action: str, work: Callable[[], _T]) -> _T:
        self.writes += 1
        return super()._writing(action, work)


def wait_for_writes(ledger: WriteCountingSqliteLedger, count: int, timeout_s: float = 5.0) -> None:
    """Wait until ``count`` writes were tried (by a background flush, say), then a little more
    for any further one to show."""
    deadline = time.monotonic() + timeout_s
    while ledger.writes < count:
        assert time.monotonic() < deadline, f"{ledger.writes} writes tried, not {count}"
        time.sleep(0.01)
    time.sleep(0.2)
