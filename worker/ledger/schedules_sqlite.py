"""Schedule records in the SQLite ledger's file (:mod:`worker.ledger.schedules`).

A ``schedules`` table beside the ledger's, written through the ledger's own connection and
transactions, so a take of due records is one transaction. Two partial indexes over the
records still to send answer the range reads: by due time, and by service and due time.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from worker.ledger import sqlite_schema as sql
from worker.ledger.model import LedgerKey
from worker.ledger.schedules import Schedule, ScheduleRecords, ScheduleState
from worker.ledger.sqlite_ledger import SqliteLedger, _key_params, _Rows

__all__ = ["SCHEMA", "sqlite_schedules"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS schedules (
    service_id   TEXT NOT NULL,
    request_id   TEXT NOT NULL,
    due_at       REAL NOT NULL,
    data         BLOB NOT NULL,
    message_id   TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('scheduled', 'done', 'cancelled')),
    owner        TEXT,
    lease_until  REAL,
    created_at   REAL NOT NULL,
    expire_at    REAL NOT NULL,
    PRIMARY KEY (service_id, request_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS schedules_due ON schedules (due_at) WHERE state = 'scheduled';
CREATE INDEX IF NOT EXISTS schedules_of_service ON schedules (service_id, due_at)
    WHERE state = 'scheduled';
CREATE INDEX IF NOT EXISTS schedules_by_expire_at ON schedules (expire_at);
"""
_SWEEP = "DELETE FROM schedules WHERE expire_at < :now"

_COLUMNS = (
    "due_at",
    "data",
    "message_id",
    "content_hash",
    "state",
    "owner",
    "lease_until",
    "created_at",
    "expire_at",
)
_STATEMENTS = sql.statements("schedules", ("service_id", "request_id"), _COLUMNS)
_DUE = """
SELECT service_id, request_id FROM schedules
WHERE state = 'scheduled' AND due_at <= :before ORDER BY due_at LIMIT :limit
"""
_OF_SERVICE = """
SELECT * FROM schedules
WHERE state = 'scheduled' AND service_id = :service_id AND due_at <= :before
ORDER BY due_at LIMIT :limit
"""


class _Schedules(_Rows[LedgerKey, Schedule], ScheduleRecords):
    def due(self, before: float, limit: int) -> list[LedgerKey]:
        rows = self.conn.execute(_DUE, {"before": before, "limit": limit}).fetchall()
        return [LedgerKey(row["service_id"], row["request_id"]) for row in rows]

    def of_service(self, service_id: str, before: float | None, limit: int) -> list[Schedule]:
        params = {
            "service_id": service_id,
            "before": float("inf") if before is None else before,
            "limit": limit,
        }
        rows = self.conn.execute(_OF_SERVICE, params).fetchall()
        return [_schedule(LedgerKey(row["service_id"], row["request_id"]), row) for row in rows]

    def sweep(self, now: float) -> int:
        return self.conn.execute(_SWEEP, {"now": now}).rowcount


def sqlite_schedules(ledger: SqliteLedger) -> ScheduleRecords:
    """The schedule records in ``ledger``'s file, the table created if it is missing."""
    conn = ledger._conn
    ledger._reading("create the schedules table", lambda: conn.executescript(SCHEMA))
    return _Schedules(conn, _STATEMENTS, _key_params, _params, _schedule)


def _params(schedule: Schedule) -> dict[str, Any]:
    return {
        **_key_params(schedule.key),
        "due_at": schedule.due_at,
        "data": schedule.data,
        "message_id": schedule.message_id,
        "content_hash": schedule.content_hash,
        "state": schedule.state.value,
        "owner": schedule.owner,
        "lease_until": schedule.lease_until,
        "created_at": schedule.created_at,
        "expire_at": schedule.expire_at,
    }


def _schedule(key: LedgerKey, row: sqlite3.Row) -> Schedule:
    return Schedule(
        key=key,
        due_at=row["due_at"],
        data=bytes(row["data"]),
        message_id=row["message_id"],
        content_hash=row["content_hash"],
        state=ScheduleState(row["state"]),
        owner=row["owner"],
        lease_until=row["lease_until"],
        created_at=row["created_at"],
        expire_at=row["expire_at"],
    )
