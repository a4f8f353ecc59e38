"""What only the SQLite ledger does: share a file between processes, and sweep it."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.ledger.common import LEASE_S
from tests.support.clock import ManualClock
from worker.ledger import (
    ClaimState,
    LedgerKey,
    LedgerUnavailable,
    RecipientStatus,
    SqliteLedger,
    StoredResult,
    content_hash,
)

HASH = content_hash(b"the same request")


def rows(path: Path) -> int:
    with sqlite3.connect(path) as connection:
        count: int = connection.execute("SELECT count(*) FROM requests").fetchone()[0]
    connection.close()
    return count


def _claim_every_key(path: str, owner: str, keys: list[str], barrier: Any, results: Any) -> None:
    """One worker process: claim each key in step with the other process."""
    ledger = SqliteLedger(path, claim_lease_s=600)
    try:
        states = []
        for request_id in keys:
            barrier.wait(timeout=60)  # both processes go for the same key at the same moment
            claim = ledger.claim(LedgerKey("billing", request_id), owner=owner, content_hash=HASH)
            states.append(str(claim.state))
        results.put((owner, states))
    finally:
        ledger.close()


def test_two_processes_sharing_a_file_never_both_claim(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    fresh = [f"new-{i}" for i in range(100)]
    abandoned = [f"abandoned-{i}" for i in range(100)]
    # Claims whose owner died an hour ago: the processes race to take them over.
    with SqliteLedger(path, claim_lease_s=60, clock=lambda: time.time() - 3600) as crashed:
        for request_id in abandoned:
            crashed.claim(LedgerKey("billing", request_id), owner="crashed", content_hash=HASH)
    # spawn: a fork would copy this process's threads and gRPC state into the children.
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    results = context.Queue()
    workers = [
        context.Process(
            target=_claim_every_key, args=(path, owner, fresh + abandoned, barrier, results)
        )
        for owner in ("worker-a", "worker-b")
    ]
    for worker in workers:
        worker.start()
    try:
        by_owner = dict(results.get(timeout=120) for _ in workers)
    finally:
        for worker in workers:
            worker.join(timeout=30)
    assert [worker.exitcode for worker in workers] == [0, 0]

    outcomes = list(zip(by_owner["worker-a"], by_owner["worker-b"], strict=True))
    assert all(sorted(pair) == ["busy", "claimed"] for pair in outcomes[: len(fresh)])
    assert all(sorted(pair) == ["busy", "takeover"] for pair in outcomes[len(fresh) :])


def test_a_restarted_worker_finds_the_records_of_the_one_before(
    tmp_path: Path, clock: ManualClock
) -> None:
    key = LedgerKey("billing", "r-1")
    sent = StoredResult("sent", message_ids=("ses-1",), recipient_count=1)
    first = SqliteLedger(tmp_path / "ledger.db", claim_lease_s=LEASE_S, clock=clock)
    first.claim(key, owner="w1", content_hash=HASH)
    first.complete(key, owner="w1", result=sent)
    first.close()

    with SqliteLedger(tmp_path / "ledger.db", claim_lease_s=LEASE_S, clock=clock) as second:
        claim = second.claim(key, owner="w2", content_hash=HASH)
    assert (claim.state, claim.result) == (ClaimState.DONE, sent)


def test_sweep_deletes_expired_records(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "ledger.db"
    ledger = SqliteLedger(path, claim_lease_s=LEASE_S, retention_s=100, clock=clock)
    ledger.claim(LedgerKey("billing", "old"), owner="w1", content_hash=HASH)
    clock.now += 60
    ledger.claim(LedgerKey("billing", "new"), owner="w1", content_hash=HASH)
    clock.now += 60

    assert ledger.sweep() == 1
    assert rows(path) == 1
    assert ledger.get(LedgerKey("billing", "new")) is not None
    ledger.close()


def test_opening_a_file_sweeps_it(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "ledger.db"
    with SqliteLedger(path, claim_lease_s=LEASE_S, retention_s=100, clock=clock) as ledger:
        ledger.claim(LedgerKey("billing", "old"), owner="w1", content_hash=HASH)
    clock.now += 101

    SqliteLedger(path, claim_lease_s=LEASE_S, retention_s=100, clock=clock).close()

    assert rows(path) == 0


def test_claims_sweep_at_most_once_an_hour(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "ledger.db"
    ledger = SqliteLedger(path, claim_lease_s=LEASE_S, retention_s=60, clock=clock)
    ledger.claim(LedgerKey("billing", "r-1"), owner="w1", content_hash=HASH)
    clock.now += 120
    ledger.claim(LedgerKey("billing", "r-2"), owner="w1", content_hash=HASH)
    assert rows(path) == 2  # r-1 has expired, but the last sweep (at open) is recent

    clock.now += 3600
    ledger.claim(LedgerKey("billing", "r-3"), owner="w1", content_hash=HASH)

    assert rows(path) == 1
    ledger.close()


def test_a_locked_file_makes_the_ledger_unavailable(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "ledger.db"
    key = LedgerKey("billing", "r-1")
    ledger = SqliteLedger(path, claim_lease_s=LEASE_S, clock=clock, busy_timeout_s=0.1)
    ledger.claim(key, owner="w1", content_hash=HASH)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        with pytest.raises(LedgerUnavailable, match=r"billing/r-2: database is locked"):
            ledger.claim(LedgerKey("billing", "r-2"), owner="w1", content_hash=HASH)
        with pytest.raises(LedgerUnavailable):
            ledger.complete(key, owner="w1", result=StoredResult("sent"))
        with pytest.raises(LedgerUnavailable):
            ledger.release(key, owner="w1")
        assert time.monotonic() - started < 5
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()

    assert ledger.claim(LedgerKey("billing", "r-2"), owner="w1", content_hash=HASH).state is (
        ClaimState.CLAIMED
    )
    ledger.close()


def test_an_unopenable_file_makes_the_ledger_unavailable(tmp_path: Path) -> None:
    with pytest.raises(LedgerUnavailable, match="could not be opened"):
        SqliteLedger(tmp_path / "missing-directory" / "ledger.db", claim_lease_s=LEASE_S)


def test_the_file_is_in_wal_mode(tmp_path: Path) -> None:
    SqliteLedger(tmp_path / "ledger.db", claim_lease_s=LEASE_S).close()

    with sqlite3.connect(tmp_path / "ledger.db") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    connection.close()


class _Queued:
    """Writes from several threads, made to queue behind a transaction another connection
    holds open, so that what the ledger commits together can be seen."""

    def __init__(self, path: Path) -> None:
        self.ledger = SqliteLedger(path, claim_lease_s=LEASE_S, busy_timeout_s=30)
        self.statements: list[str] = []
        self.ledger._conn.set_trace_callback(self.statements.append)
        self.blocker = sqlite3.connect(path, isolation_level=None)
        self.blocker.execute("BEGIN IMMEDIATE")
        self.threads: list[threading.Thread] = []
        self.errors: list[BaseException] = []

    def start(self, write: Callable[[], object]) -> None:
        def run() -> None:
            try:
                write()
            except BaseException as error:
                self.errors.append(error)

        thread = threading.Thread(target=run)
        thread.start()
        self.threads.append(thread)

    def wait_until(self, condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 30
        while not condition():
            assert time.monotonic() < deadline, "the writes never queued"
            time.sleep(0.01)

    def release(self) -> None:
        self.blocker.execute("COMMIT")
        self.blocker.close()
        for thread in self.threads:
            thread.join(timeout=30)

    def commits(self) -> int:
        return self.statements.count("COMMIT")


def test_writes_queued_during_a_commit_share_the_next_one(tmp_path: Path) -> None:
    queued = _Queued(tmp_path / "ledger.db")
    claims: dict[str, ClaimState] = {}

    def claim(request_id: str) -> None:
        key = LedgerKey("billing", request_id)
        claims[request_id] = queued.ledger.claim(key, owner="w1", content_hash=HASH).state

    # The first write's transaction waits for the blocker; nine more queue meanwhile.
    queued.start(lambda: claim("r-0"))
    queued.wait_until(lambda: "BEGIN IMMEDIATE" in queued.statements)
    for n in range(1, 10):
        queued.start(lambda n=n: claim(f"r-{n}"))  # type: ignore[misc]
    queued.wait_until(lambda: len(queued.ledger._queue) == 9)
    queued.release()

    assert queued.errors == []
    assert claims == {f"r-{n}": ClaimState.CLAIMED for n in range(10)}
    assert queued.commits() == 2
    assert not any(statement.startswith("SAVEPOINT") for statement in queued.statements)
    assert rows(tmp_path / "ledger.db") == 10
    queued.ledger.close()


def test_a_write_that_fails_in_a_group_leaves_the_others_committed(tmp_path: Path) -> None:
    queued = _Queued(tmp_path / "ledger.db")
    ledger = queued.ledger
    good = LedgerKey("billing", "r-good")
    bad = RecipientStatus(
        message_id="m-1",
        recipient="a@example.com",
        event_type="NotAnEvent",  # no rank: the write fails part-way
        occurred_at=datetime.now(UTC),
    )

    queued.start(lambda: ledger.claim(LedgerKey("billing", "r-0"), owner="w1", content_hash=HASH))
    queued.wait_until(lambda: "BEGIN IMMEDIATE" in queued.statements)
    queued.start(lambda: ledger.claim(good, owner="w1", content_hash=HASH))
    queued.wait_until(lambda: len(ledger._queue) == 1)
    queued.start(lambda: ledger.record_statuses(good, [bad]))
    queued.wait_until(lambda: len(ledger._queue) == 2)
    queued.start(lambda: ledger.complete(good, owner="w1", result=StoredResult("sent")))
    queued.wait_until(lambda: len(ledger._queue) == 3)
    queued.release()

    assert [type(error) for error in queued.errors] == [KeyError]
    assert queued.commits() == 2
    record = ledger.get(good)
    assert record is not None
    assert record.state == "done"
    assert ledger.statuses(good) == []
    ledger.close()


def test_a_file_from_before_pinned_attachments_gains_the_column_and_keeps_its_records(
    tmp_path: Path, clock: ManualClock
) -> None:
    path = tmp_path / "ledger.db"
    key = LedgerKey("billing", "r-1")
    with SqliteLedger(path, claim_lease_s=LEASE_S, clock=clock) as ledger:
        ledger.claim(key, owner="w1", content_hash=HASH)
    with sqlite3.connect(path) as connection:  # as a ledger of the previous release left it
        connection.execute("ALTER TABLE requests DROP COLUMN attachment_generations")
    connection.close()

    with SqliteLedger(path, claim_lease_s=LEASE_S, clock=clock) as ledger:
        assert ledger.pin_attachments(key, owner="w1", generations=(3,)) == (3,)
        record = ledger.get(key)
    assert record is not None
    assert record.attachment_generations == (3,)


def test_a_file_from_before_pinned_template_versions_gains_the_column(
    tmp_path: Path, clock: ManualClock
) -> None:
    path = tmp_path / "ledger.db"
    key = LedgerKey("billing", "r-1")
    with SqliteLedger(path, claim_lease_s=LEASE_S, clock=clock) as ledger:
        ledger.claim(key, owner="w1", content_hash=HASH)
    with sqlite3.connect(path) as connection:  # as a ledger of the previous release left it
        connection.execute("ALTER TABLE requests DROP COLUMN template_version")
    connection.close()

    with SqliteLedger(path, claim_lease_s=LEASE_S, clock=clock) as ledger:
        assert ledger.pin_template_version(key, owner="w1", version=2) == 2
        record = ledger.get(key)
    assert record is not None
    assert record.template_version == 2
