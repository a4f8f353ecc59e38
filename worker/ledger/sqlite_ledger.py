"""The ledger in a SQLite file, for workers that share one host.

Safe for many threads of one process (a single connection behind a lock) and for several
processes on the same file, such as a killed worker and its restart: the file is in WAL mode,
a writer waits up to ``busy_timeout_s`` for another, and each of the protocol's operations
(:mod:`worker.ledger.base`) runs inside one ``BEGIN IMMEDIATE`` transaction, so no other
process can write between its read and its write. Those transactions are committed in groups
(:mod:`worker.ledger.group_commit`). A record's version is the row as read: a conditional
write matches every column, so it is correct on its own too.

The module runs over 300 lines: one backend's every kind of record (requests, statuses,
pauses, heartbeats, hourly counters) maps to its tables here, beside the connection
they share.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, Unpack

from worker.ledger import send_counts as counts
from worker.ledger import sqlite_schema as sql
from worker.ledger.base import Ledger, LedgerTerms, naming
from worker.ledger.group_commit import GroupCommit
from worker.ledger.heartbeats import Heartbeat, HeartbeatKey
from worker.ledger.model import LedgerKey, LedgerUnavailable
from worker.ledger.pauses import Pause
from worker.ledger.records import K, R, Records, Version
from worker.ledger.send_counts import Increments
from worker.ledger.shared import Entry, result_fields, result_from_fields, utc
from worker.ledger.statuses import RANK, RecipientStatus

__all__ = ["SWEEP_INTERVAL_S", "SqliteLedger"]

# Expired rows are harmless (reads skip them), so deleting them can wait; an hour keeps the
# file small without putting a DELETE in front of most writes.
SWEEP_INTERVAL_S = 3600.0

_T = TypeVar("_T")


class SqliteLedger(GroupCommit, Ledger):
    """A :class:`Ledger` in the SQLite database at ``path`` (``":memory:"`` for a private one).

    The other keyword arguments are :class:`Ledger`'s. ``busy_timeout_s``: how long a
    write waits for another process's before the ledger counts as unavailable.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout_s: float = 5.0,
        **terms: Unpack[LedgerTerms],
    ) -> None:
        self.path = os.fspath(path)
        super().__init__(**terms)
        self._lock = threading.Lock()  # the connection, and the right to commit a group
        self._start_group_commit()
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
            self._conn.executescript(sql.SCHEMA)
            self._conn.executescript(counts.SQLITE_SCHEMA)
            sql.add_missing_columns(self._conn)
            sql.add_shard_key(self._conn, "send_counts", counts.SQLITE_SCHEMA)
        except sqlite3.Error as error:
            raise LedgerUnavailable(
                f"SQLite ledger {self.path} could not be opened: {error}"
            ) from error
        self._requests = _Rows(self._conn, sql.REQUESTS, _key_params, _entry_params, _entry)
        self._paused = _Rows(self._conn, sql.PAUSES, _scope_params, _pause_params, _pause)
        self._heartbeats = _Rows(
            self._conn, sql.HEARTBEATS, _beat_key_params, _beat_params, _heartbeat
        )
        self._next_sweep = 0.0
        self.sweep()

    def __repr__(self) -> str:
        return f"SqliteLedger(path={self.path!r})"

    def record_statuses(self, key: LedgerKey, statuses: Sequence[RecipientStatus]) -> None:
        if not statuses:
            return

        def record() -> None:
            expire_at = self._clock() + self._retention_s
            rows = [_status_params(key, status, expire_at) for status in statuses]
            self._conn.executemany(sql.UPSERT_STATUS, rows)

        self._writing(naming("record statuses of", key), record)

    def statuses(self, key: LedgerKey) -> list[RecipientStatus]:
        params = {**_key_params(key), "now": self._clock()}
        rows = self._reading(
            naming("read statuses of", key),
            lambda: self._conn.execute(sql.SELECT_STATUSES, params).fetchall(),
        )
        return [_status(row) for row in rows]

    def sent_to(
        self, recipient: str, since: datetime, *, limit: int = 200
    ) -> list[tuple[LedgerKey, RecipientStatus]]:
        params = {
            "recipient": recipient,
            "since": since.timestamp(),
            "now": self._clock(),
            "limit": limit,
        }
        rows = self._reading(
            "look up a recipient",
            lambda: self._conn.execute(sql.SELECT_SENT_TO, params).fetchall(),
        )
        return [(LedgerKey(row["service_id"], row["request_id"]), _status(row)) for row in rows]

    def pauses(self) -> list[Pause]:
        with self._lock, self._unavailable_for("read the pauses"):
            rows = self._conn.execute(sql.SELECT_PAUSES).fetchall()
        return [_pause(row["scope"], row) for row in rows]

    def heartbeats(self, group: str) -> list[Heartbeat]:
        params = {"grp": group, "now": self._clock()}
        with self._lock, self._unavailable_for("read the heartbeats"):
            rows = self._conn.execute(sql.SELECT_HEARTBEATS, params).fetchall()
        return [_heartbeat((group, row["instance"]), row) for row in rows]

    def add_send_counts(self, increments: Increments, shard: int | None = None) -> None:
        if not increments:
            return
        shard = counts.check_shard(shard)
        rows = [
            {
                "service_id": service_id,
                "hour": hour,
                "shard": shard,
                "recipients": recipients,
                "expire_at": hour * counts.HOUR_S + counts.COUNTER_RETENTION_S,
            }
            for (service_id, hour), recipients in increments.items()
        ]
        self._writing("add send counts", lambda: self._conn.executemany(counts.SQLITE_ADD, rows))

    def sent_by_hour(self, service_id: str, hours: range) -> dict[int, int]:
        if not hours:
            return {}
        params = {"service_id": service_id, "first": hours[0], "last": hours[-1]}
        rows = self._reading(
            "read the send counts of " + service_id,
            lambda: self._conn.execute(counts.SQLITE_SUM, params).fetchall(),
        )
        return {int(row[0]): int(row[1]) for row in rows}

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._conn.close()

    def sweep(self) -> int:
        """Delete every record whose retention has passed; return how many went."""
        with self._lock, self._unavailable_for("sweep"):
            return self._sweep(self._clock())

    def _sweep(self, now: float) -> int:
        deleted = self._conn.execute(sql.SWEEP, {"now": now}).rowcount
        self._conn.execute(sql.SWEEP_STATUSES, {"now": now})
        self._conn.execute(sql.SWEEP_HEARTBEATS, {"now": now})
        self._conn.execute(counts.SQLITE_SWEEP, {"now": now})
        self._next_sweep = now + SWEEP_INTERVAL_S
        return deleted

    # -- storage ---------------------------------------------------------------------------

    def _writing(self, action: str, work: Callable[[], _T]) -> _T:
        def swept() -> _T:
            now = self._clock()
            if now >= self._next_sweep:
                self._sweep(now)
            return work()

        with self._unavailable_for(action):
            return self._write(swept)

    def _reading(self, action: str, work: Callable[[], _T]) -> _T:
        with self._lock, self._unavailable_for(action):
            return work()

    @contextlib.contextmanager
    def _unavailable_for(self, action: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as error:
            # SQLite's own messages ("database is locked", "disk I/O error") name no content.
            raise LedgerUnavailable(f"SQLite ledger could not {action}: {error}") from error


@dataclass(frozen=True)
class _Rows(Records[K, R]):
    """Records in a table, through its ``statements``; a row's version is its values as read."""

    conn: sqlite3.Connection
    statements: sql.Statements
    key_params: Callable[[K], dict[str, Any]]
    params: Callable[[R], dict[str, Any]]
    decode: Callable[[K, sqlite3.Row], R]

    def insert_if_absent(self, key: K, record: R) -> bool:
        return self.conn.execute(self.statements.insert, self.params(record)).rowcount == 1

    def read(self, key: K) -> tuple[R, Version] | None:
        row = self.conn.execute(self.statements.select, self.key_params(key)).fetchone()
        return None if row is None else (self.decode(key, row), tuple(row))

    def write_if_version(self, key: K, record: R, version: Version) -> bool:
        params = {**self.params(record), **_as_read(version)}
        return self.conn.execute(self.statements.update, params).rowcount == 1

    def delete_if_version(self, key: K, version: Version) -> bool:
        params = {**self.key_params(key), **_as_read(version)}
        return self.conn.execute(self.statements.delete, params).rowcount == 1


def _key_params(key: LedgerKey) -> dict[str, Any]:
    return {"service_id": key.service_id, "request_id": key.request_id}


def _scope_params(scope: str) -> dict[str, Any]:
    return {"scope": scope}


def _as_read(version: Version) -> dict[str, Any]:
    """A row's values as read, as the parameters :v0, :v1... of a conditional write."""
    assert isinstance(version, tuple)
    return {f"v{index}": value for index, value in enumerate(version)}


def _entry_params(entry: Entry) -> dict[str, Any]:
    result = None if entry.result is None else json.dumps(result_fields(entry.result))
    return {
        **_key_params(entry.key),
        "state": entry.state,
        "content_hash": entry.content_hash,
        "owner": entry.owner,
        "lease_until": entry.lease_until,
        "takeovers": entry.takeovers,
        "result": result,
        "created_at": entry.created_at,
        "updated_at": entry.updated_at,
        "expire_at": entry.expire_at,
        "attachment_generations": _generations_column(entry.attachment_generations),
        "template_version": entry.template_version,
    }


def _generations_column(generations: tuple[int, ...] | None) -> str | None:
    return None if generations is None else json.dumps(list(generations))


def _entry(key: LedgerKey, row: sqlite3.Row) -> Entry:
    raw = row["result"]
    return Entry(
        key=key,
        state=row["state"],
        content_hash=row["content_hash"],
        owner=row["owner"],
        lease_until=row["lease_until"],
        takeovers=row["takeovers"],
        result=None if raw is None else result_from_fields(json.loads(raw)),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        expire_at=row["expire_at"],
        attachment_generations=(
            None
            if row["attachment_generations"] is None
            else tuple(int(g) for g in json.loads(row["attachment_generations"]))
        ),
        template_version=row["template_version"],
    )


def _status_params(key: LedgerKey, status: RecipientStatus, expire_at: float) -> dict[str, Any]:
    return {
        **_key_params(key),
        "message_id": status.message_id,
        "recipient": status.recipient,
        "event_type": status.event_type,
        "rank": RANK[status.event_type],
        "occurred_at": status.occurred_at.timestamp(),
        "batch": status.batch,
        "detail": status.detail,
        "expire_at": expire_at,
    }


def _status(row: sqlite3.Row) -> RecipientStatus:
    return RecipientStatus(
        message_id=row["message_id"],
        recipient=row["recipient"],
        event_type=row["event_type"],
        occurred_at=utc(row["occurred_at"]),
        batch=row["batch"],
        detail=row["detail"],
    )


def _pause_params(pause: Pause) -> dict[str, Any]:
    return {
        "scope": pause.scope,
        "since": pause.since.timestamp(),
        "paused_by": pause.by,
        "reason": pause.reason,
        "saved_push_configs": json.dumps(dict(pause.saved_push_configs), sort_keys=True),
    }


def _pause(scope: str, row: sqlite3.Row) -> Pause:
    return Pause(
        scope=scope,
        since=utc(row["since"]),
        by=row["paused_by"],
        reason=row["reason"],
        saved_push_configs=json.loads(row["saved_push_configs"]),
    )


def _beat_key_params(key: HeartbeatKey) -> dict[str, Any]:
    return {"grp": key[0], "instance": key[1]}


def _beat_params(beat: Heartbeat) -> dict[str, Any]:
    return {**_beat_key_params(beat.key), "beat_at": beat.beat_at, "expire_at": beat.expire_at}


def _heartbeat(key: HeartbeatKey, row: sqlite3.Row) -> Heartbeat:
    return Heartbeat(key[0], key[1], beat_at=row["beat_at"], expire_at=row["expire_at"])
