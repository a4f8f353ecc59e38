"""The ledger in a SQLite file, for workers that share one host.

Safe for many threads of one process (a single connection behind a lock) and for several
processes on the same file, such as a killed worker and its restart: the file is in WAL mode,
a writer waits up to ``busy_timeout_s`` for another, and every read-then-write runs inside
``BEGIN IMMEDIATE`` so no other process can write between the read and the write.

Writes are committed in groups: the writes that threads queue while one transaction is being
committed share the next one, and so one ``fsync`` (SQLite's
default ``synchronous = FULL``) instead of one each. A write returns only once its group is
committed. Without it the threads waited in turn for each other's ``fsync``: under load a
claim took 45 ms, and the ledger capped a worker at about 300 emails a second
(docs/scaling.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from worker.ledger.model import (
    DEFAULT_RETENTION_S,
    Claim,
    ClaimState,
    Ledger,
    LedgerKey,
    LedgerRecord,
    LedgerUnavailable,
    StoredResult,
)
from worker.ledger.pauses import Pause, merged
from worker.ledger.shared import (
    Found,
    Verdict,
    judge,
    result_fields,
    result_from_fields,
    sent_nothing,
    utc,
)
from worker.ledger.statuses import RANK, RecipientStatus

__all__ = ["SWEEP_INTERVAL_S", "SqliteLedger"]

# Expired rows are harmless (reads skip them), so deleting them can wait; an hour keeps the
# file small without putting a DELETE in front of most claims.
SWEEP_INTERVAL_S = 3600.0

_T = TypeVar("_T")

# A claim re-evaluates when a record changes or vanishes under it; more rounds than this mean
# heavy contention on one request, and the delivery is told to come back later.
_CLAIM_ROUNDS = 3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    service_id   TEXT NOT NULL,
    request_id   TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('claimed', 'done')),
    content_hash TEXT NOT NULL,
    owner        TEXT,
    lease_until  REAL,
    takeovers    INTEGER NOT NULL DEFAULT 0,
    result       TEXT,
    created_at   REAL NOT NULL,
    updated_at   REAL NOT NULL,
    expire_at    REAL NOT NULL,
    PRIMARY KEY (service_id, request_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS requests_by_expire_at ON requests (expire_at);
CREATE TABLE IF NOT EXISTS statuses (
    service_id  TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    recipient   TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    rank        INTEGER NOT NULL,
    occurred_at REAL NOT NULL,
    batch       INTEGER,
    detail      TEXT,
    expire_at   REAL NOT NULL,
    PRIMARY KEY (service_id, request_id, message_id, recipient)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS statuses_by_expire_at ON statuses (expire_at);
CREATE TABLE IF NOT EXISTS pauses (
    scope              TEXT NOT NULL PRIMARY KEY,
    since              REAL NOT NULL,
    paused_by          TEXT NOT NULL,
    reason             TEXT,
    saved_push_configs TEXT NOT NULL
) WITHOUT ROWID;
"""

_SELECT_PAUSE = "SELECT * FROM pauses WHERE scope = :scope"
_UPSERT_PAUSE = """
INSERT INTO pauses (scope, since, paused_by, reason, saved_push_configs)
VALUES (:scope, :since, :paused_by, :reason, :saved_push_configs)
ON CONFLICT (scope) DO UPDATE SET saved_push_configs = excluded.saved_push_configs
"""

# One statement decides and writes, so concurrent writers of the same recipient cannot
# interleave a read and a write: the row moves only forward (worker.ledger.statuses.advances).
_UPSERT_STATUS = """
INSERT INTO statuses (service_id, request_id, message_id, recipient, event_type, rank,
                      occurred_at, batch, detail, expire_at)
VALUES (:service_id, :request_id, :message_id, :recipient, :event_type, :rank,
        :occurred_at, :batch, :detail, :expire_at)
ON CONFLICT (service_id, request_id, message_id, recipient) DO UPDATE SET
    event_type = excluded.event_type, rank = excluded.rank, occurred_at = excluded.occurred_at,
    batch = excluded.batch, detail = excluded.detail, expire_at = excluded.expire_at
WHERE excluded.rank > statuses.rank
   OR (excluded.rank = statuses.rank AND excluded.occurred_at > statuses.occurred_at)
"""

_SELECT_STATUSES = """
SELECT * FROM statuses
WHERE service_id = :service_id AND request_id = :request_id AND expire_at >= :now
ORDER BY occurred_at, message_id, recipient
"""

_INSERT = """
INSERT INTO requests (service_id, request_id, state, content_hash, owner, lease_until,
                      takeovers, result, created_at, updated_at, expire_at)
VALUES (:service_id, :request_id, 'claimed', :content_hash, :owner, :lease_until,
        0, NULL, :now, :now, :expire_at)
"""

_SELECT = "SELECT * FROM requests WHERE service_id = :service_id AND request_id = :request_id"

# Both conditional updates also match the values read inside the same transaction: redundant
# under BEGIN IMMEDIATE, but they keep each write correct on its own.
_RECLAIM = """
UPDATE requests
SET state = 'claimed', content_hash = :content_hash, owner = :owner, lease_until = :lease_until,
    takeovers = 0, result = NULL, created_at = :now, updated_at = :now, expire_at = :expire_at
WHERE service_id = :service_id AND request_id = :request_id
  AND updated_at = :seen_updated_at AND expire_at < :now
"""

_RETRY = """
UPDATE requests
SET state = 'claimed', owner = :owner, lease_until = :lease_until, result = NULL,
    updated_at = :now, expire_at = :expire_at
WHERE service_id = :service_id AND request_id = :request_id
  AND state = 'done' AND updated_at = :seen_updated_at
"""

_TAKEOVER = """
UPDATE requests
SET owner = :owner, lease_until = :lease_until, takeovers = takeovers + 1, updated_at = :now
WHERE service_id = :service_id AND request_id = :request_id
  AND state = 'claimed' AND owner IS :seen_owner AND lease_until IS :seen_lease_until
"""

_COMPLETE = """
UPDATE requests
SET state = 'done', result = :result, lease_until = NULL, updated_at = :now,
    expire_at = :expire_at
WHERE service_id = :service_id AND request_id = :request_id
  AND state = 'claimed' AND owner = :owner
"""

# Released, not deleted: the record (and its content hash) stays, so that an operator's replay
# of the request from the dead-letter topic can still be recognised as genuine.
_RELEASE = """
UPDATE requests
SET owner = NULL, lease_until = NULL, updated_at = :now
WHERE service_id = :service_id AND request_id = :request_id
  AND state = 'claimed' AND owner = :owner
"""

_FREE = """
UPDATE requests
SET owner = :owner, lease_until = :lease_until, updated_at = :now
WHERE service_id = :service_id AND request_id = :request_id
  AND state = 'claimed' AND owner IS NULL
"""

_SWEEP = "DELETE FROM requests WHERE expire_at < :now"
_SWEEP_STATUSES = "DELETE FROM statuses WHERE expire_at < :now"


class _Write:
    """One thread's write, waiting for a group commit; ``done`` is set under the ledger's lock."""

    __slots__ = ("action", "done", "error", "result")

    def __init__(self, action: Callable[[], Any]) -> None:
        self.action = action
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None


class SqliteLedger(Ledger):
    """A :class:`Ledger` in the SQLite database at ``path`` (``":memory:"`` for a private one).

    ``claim_lease_s``: how long a claim keeps other deliveries out. ``retention_s``: how long a
    record lives after its last write. ``takeover_wait_s``: how much longer an expired claim
    keeps them out, for SES's Send event of its holder's send to arrive. ``clock``: epoch
    seconds, replaced in tests.
    ``busy_timeout_s``: how long a write waits for another process's before the ledger counts
    as unavailable.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        claim_lease_s: float,
        retention_s: float = DEFAULT_RETENTION_S,
        takeover_wait_s: float = 0.0,
        clock: Callable[[], float] = time.time,
        busy_timeout_s: float = 5.0,
    ) -> None:
        self.path = os.fspath(path)
        self._claim_lease_s = claim_lease_s
        self._retention_s = retention_s
        self._takeover_wait_s = takeover_wait_s
        self._clock = clock
        self._lock = threading.Lock()  # the connection, and the right to commit a group
        self._queue_lock = threading.Lock()
        self._queue: list[_Write] = []  # writes waiting for the next group commit
        try:
            # isolation_level=None: no implicit transactions; this class begins its own.
            # timeout: SQLite's busy timeout, the wait for another connection's write lock.
            self._conn = sqlite3.connect(
                self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            self._conn.row_factory = sqlite3.Row
            # Switching to WAL needs the database to itself; only the first opener does it.
            if self._conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.executescript(_SCHEMA)
        except sqlite3.Error as error:
            raise LedgerUnavailable(
                f"SQLite ledger {self.path} could not be opened: {error}"
            ) from error
        self._next_sweep = 0.0
        self.sweep()

    def __repr__(self) -> str:
        return f"SqliteLedger(path={self.path!r})"

    # -- Ledger ----------------------------------------------------------------------------

    def claim(
        self, key: LedgerKey, *, owner: str, content_hash: str, retry_unsent: bool = False
    ) -> Claim:
        with self._unavailable("claim", key):
            return self._write(lambda: self._claim(key, owner, content_hash, retry_unsent))

    def complete(self, key: LedgerKey, *, owner: str, result: StoredResult) -> bool:
        fields = json.dumps(result_fields(result))

        def complete() -> bool:
            now = self._clock()
            cursor = self._conn.execute(
                _COMPLETE,
                {
                    **_key_params(key),
                    "owner": owner,
                    "result": fields,
                    "now": now,
                    "expire_at": now + self._retention_s,
                },
            )
            return cursor.rowcount == 1

        with self._unavailable("complete", key):
            return self._write(complete)

    def release(self, key: LedgerKey, *, owner: str) -> None:
        def release() -> None:
            self._conn.execute(_RELEASE, {**_key_params(key), "owner": owner, "now": self._clock()})

        with self._unavailable("release", key):
            self._write(release)

    def record_statuses(self, key: LedgerKey, statuses: Sequence[RecipientStatus]) -> None:
        if not statuses:
            return

        def record() -> None:
            now = self._clock()
            rows = [
                {
                    **_key_params(key),
                    "message_id": status.message_id,
                    "recipient": status.recipient,
                    "event_type": status.event_type,
                    "rank": RANK[status.event_type],
                    "occurred_at": status.occurred_at.timestamp(),
                    "batch": status.batch,
                    "detail": status.detail,
                    "expire_at": now + self._retention_s,
                }
                for status in statuses
            ]
            self._conn.executemany(_UPSERT_STATUS, rows)

        with self._unavailable("record statuses of", key):
            self._write(record)

    def statuses(self, key: LedgerKey) -> list[RecipientStatus]:
        with self._lock, self._unavailable("read statuses of", key):
            rows = self._conn.execute(
                _SELECT_STATUSES, {**_key_params(key), "now": self._clock()}
            ).fetchall()
        return [
            RecipientStatus(
                message_id=row["message_id"],
                recipient=row["recipient"],
                event_type=row["event_type"],
                occurred_at=utc(row["occurred_at"]),
                batch=row["batch"],
                detail=row["detail"],
            )
            for row in rows
        ]

    def get(self, key: LedgerKey) -> LedgerRecord | None:
        with self._lock, self._unavailable("read", key):
            row = self._conn.execute(_SELECT, _key_params(key)).fetchone()
        if row is None or row["expire_at"] < self._clock():
            return None
        return _record(key, row)

    def add_pause(self, pause: Pause) -> Pause:
        def add() -> Pause:
            row = self._conn.execute(_SELECT_PAUSE, {"scope": pause.scope}).fetchone()
            stored = None if row is None else _pause(row)
            write = pause if stored is None else merged(stored, pause)
            if write is not None:
                self._conn.execute(_UPSERT_PAUSE, _pause_params(write))
            return write or stored or pause

        with self._unavailable_for("pause " + pause.scope):
            return self._write(add)

    def remove_pause(self, scope: str) -> Pause | None:
        def remove() -> Pause | None:
            row = self._conn.execute(_SELECT_PAUSE, {"scope": scope}).fetchone()
            self._conn.execute("DELETE FROM pauses WHERE scope = :scope", {"scope": scope})
            return None if row is None else _pause(row)

        with self._unavailable_for("resume " + scope):
            return self._write(remove)

    def pauses(self) -> list[Pause]:
        with self._lock, self._unavailable_for("read the pauses"):
            rows = self._conn.execute("SELECT * FROM pauses ORDER BY scope").fetchall()
        return [_pause(row) for row in rows]

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- expiry ----------------------------------------------------------------------------

    def sweep(self) -> int:
        """Delete every record whose retention has passed; return how many went."""
        with self._lock:
            try:
                return self._sweep(self._clock())
            except sqlite3.Error as error:
                raise LedgerUnavailable(f"SQLite ledger could not sweep: {error}") from error

    def _sweep_if_due(self, now: float) -> None:
        if now >= self._next_sweep:
            self._sweep(now)

    def _sweep(self, now: float) -> int:
        deleted = self._conn.execute(_SWEEP, {"now": now}).rowcount
        self._conn.execute(_SWEEP_STATUSES, {"now": now})
        self._next_sweep = now + SWEEP_INTERVAL_S
        return deleted

    # -- group commit ----------------------------------------------------------------------

    def _write(self, action: Callable[[], _T]) -> _T:
        """Run ``action`` in a write transaction, committed with the writes queued with it."""
        write = _Write(action)
        with self._queue_lock:
            self._queue.append(write)
        with self._lock:
            # Whoever held the lock may have committed this write in its group already.
            if not write.done:
                with self._queue_lock:
                    group, self._queue = self._queue, []
                self._commit_group(group)
        if write.error is not None:
            raise write.error
        result: _T = write.result
        return result

    def _commit_group(self, group: list[_Write]) -> None:
        """One transaction for ``group``. Called with the lock held.

        The writes run one after the other; if one fails part-way, the group is undone and run
        again with each write in a savepoint, so that the failed one leaves the others whole.
        Savepoints only then: every statement releases and retakes the GIL, which the other
        threads are waiting for.
        """
        try:
            # IMMEDIATE takes the write lock up front, so what a write reads stays true until
            # it writes, whatever other processes do.
            self._conn.execute("BEGIN IMMEDIATE")
            if not self._apply(group, isolated=False):
                self._conn.execute("ROLLBACK")
                self._conn.execute("BEGIN IMMEDIATE")
                self._apply(group, isolated=True)
            self._conn.execute("COMMIT")
        except BaseException as error:
            # Nothing of the group was committed: every write in it failed.
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
            for write in group:
                write.result, write.error = None, error
            if not isinstance(error, sqlite3.Error):
                raise
        finally:
            for write in group:
                write.done = True

    def _apply(self, group: list[_Write], *, isolated: bool) -> bool:
        """Run ``group``'s writes; False when one failed and ``isolated`` is off (stopped
        there: the caller undoes it all)."""
        for write in group:
            write.result, write.error = None, None
            if isolated:
                self._conn.execute("SAVEPOINT write")
            try:
                write.result = write.action()
            except Exception as error:
                write.error = error
                if not isolated:
                    return False
                self._conn.execute("ROLLBACK TO write")
            if isolated:
                self._conn.execute("RELEASE write")
        return True

    # -- internals -------------------------------------------------------------------------

    def _claim(self, key: LedgerKey, owner: str, content_hash: str, retry_unsent: bool) -> Claim:
        self._sweep_if_due(self._clock())
        for _ in range(_CLAIM_ROUNDS):
            claim = self._claim_round(key, owner, content_hash, retry_unsent)
            if claim is not None:
                return claim
        return Claim(ClaimState.BUSY)

    def _claim_round(
        self, key: LedgerKey, owner: str, content_hash: str, retry_unsent: bool
    ) -> Claim | None:
        """One try at claiming, inside a write transaction; None when the record changed under
        us and it must be redone."""
        now = self._clock()
        fresh = {
            **_key_params(key),
            "owner": owner,
            "content_hash": content_hash,
            "lease_until": now + self._claim_lease_s,
            "expire_at": now + self._retention_s,
            "now": now,
        }
        try:
            # A constraint failure undoes this statement only, not the transaction.
            self._conn.execute(_INSERT, fresh)
            return Claim(ClaimState.CLAIMED)
        except sqlite3.IntegrityError:
            pass  # the primary key exists: look at the record below
        row = self._conn.execute(_SELECT, fresh).fetchone()
        if row is None:
            return None  # cannot happen inside the transaction; redo rather than guess
        verdict = judge(
            _found(row),
            owner=owner,
            content_hash=content_hash,
            now=now,
            retry_unsent=retry_unsent,
            takeover_wait_s=self._takeover_wait_s,
        )
        if verdict in (Verdict.RECLAIM, Verdict.RETRY):
            statement = _RECLAIM if verdict is Verdict.RECLAIM else _RETRY
            cursor = self._conn.execute(statement, {**fresh, "seen_updated_at": row["updated_at"]})
            return Claim(ClaimState.CLAIMED) if cursor.rowcount == 1 else None
        if verdict is Verdict.FREE:
            cursor = self._conn.execute(_FREE, fresh)
            return Claim(ClaimState.CLAIMED) if cursor.rowcount == 1 else None
        if verdict is Verdict.TAKEOVER:
            cursor = self._conn.execute(
                _TAKEOVER,
                {**fresh, "seen_owner": row["owner"], "seen_lease_until": row["lease_until"]},
            )
            return Claim(ClaimState.TAKEOVER if cursor.rowcount == 1 else ClaimState.BUSY)
        return _claim_without_write(verdict, row)

    def _unavailable(self, action: str, key: LedgerKey) -> contextlib.AbstractContextManager[None]:
        return self._unavailable_for(f"{action} {key.service_id}/{key.request_id}")

    @contextlib.contextmanager
    def _unavailable_for(self, action: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as error:
            # SQLite's own messages ("database is locked", "disk I/O error") name no content.
            raise LedgerUnavailable(f"SQLite ledger could not {action}: {error}") from error


def _key_params(key: LedgerKey) -> dict[str, Any]:
    return {"service_id": key.service_id, "request_id": key.request_id}


def _found(row: sqlite3.Row) -> Found:
    return Found(
        state=row["state"],
        content_hash=row["content_hash"],
        owner=row["owner"],
        lease_until=row["lease_until"],
        expire_at=row["expire_at"],
        unsent=row["state"] == "done" and sent_nothing(_result(row)),
    )


def _claim_without_write(verdict: Verdict, row: sqlite3.Row) -> Claim:
    if verdict is Verdict.CONFLICT:
        return Claim(ClaimState.CONFLICT)
    if verdict is Verdict.DONE:
        return Claim(ClaimState.DONE, _result(row))
    if verdict is Verdict.MINE:
        return Claim(ClaimState.CLAIMED)
    return Claim(ClaimState.BUSY)


def _result(row: sqlite3.Row) -> StoredResult | None:
    raw = row["result"]
    return None if raw is None else result_from_fields(json.loads(raw))


def _record(key: LedgerKey, row: sqlite3.Row) -> LedgerRecord:
    lease_until = row["lease_until"]
    return LedgerRecord(
        key=key,
        state=row["state"],
        content_hash=row["content_hash"],
        owner=row["owner"],
        lease_until=None if lease_until is None else utc(lease_until),
        takeovers=row["takeovers"],
        result=_result(row),
        created_at=utc(row["created_at"]),
        updated_at=utc(row["updated_at"]),
        expire_at=utc(row["expire_at"]),
    )


def _pause_params(pause: Pause) -> dict[str, Any]:
    return {
        "scope": pause.scope,
        "since": pause.since.timestamp(),
        "paused_by": pause.by,
        "reason": pause.reason,
        "saved_push_configs": json.dumps(dict(pause.saved_push_configs), sort_keys=True),
    }


def _pause(row: sqlite3.Row) -> Pause:
    return Pause(
        scope=row["scope"],
        since=utc(row["since"]),
        by=row["paused_by"],
        reason=row["reason"],
        saved_push_configs=json.loads(row["saved_push_configs"]),
    )
