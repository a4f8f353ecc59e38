"""The SQLite ledger's tables and statements (:mod:`worker.ledger.sqlite_ledger`).

The requests and pauses tables are read and written through the same four statements each
(:class:`Statements`); the statuses table through one upsert that decides and writes.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

__all__ = [
    "HEARTBEATS",
    "PAUSES",
    "REQUESTS",
    "SCHEMA",
    "SELECT_HEARTBEATS",
    "SELECT_PAUSES",
    "SELECT_SENT_TO",
    "SELECT_STATUSES",
    "SWEEP",
    "SWEEP_HEARTBEATS",
    "SWEEP_STATUSES",
    "UPSERT_STATUS",
    "Statements",
    "add_missing_columns",
    "add_shard_key",
    "statements",
]

SCHEMA = """
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
    attachment_generations TEXT,
    template_version INTEGER,
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
CREATE INDEX IF NOT EXISTS statuses_by_recipient ON statuses (recipient, occurred_at);
CREATE TABLE IF NOT EXISTS pauses (
    scope              TEXT NOT NULL PRIMARY KEY,
    since              REAL NOT NULL,
    paused_by          TEXT NOT NULL,
    reason             TEXT,
    saved_push_configs TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS heartbeats (
    grp       TEXT NOT NULL,
    instance  TEXT NOT NULL,
    beat_at   REAL NOT NULL,
    expire_at REAL NOT NULL,
    PRIMARY KEY (grp, instance)
) WITHOUT ROWID;
"""

# One statement decides and writes, so concurrent writers of the same recipient cannot
# interleave a read and a write: the row moves only forward (worker.ledger.statuses.advances).
UPSERT_STATUS = """
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

SELECT_STATUSES = """
SELECT * FROM statuses
WHERE service_id = :service_id AND request_id = :request_id AND expire_at >= :now
ORDER BY occurred_at, message_id, recipient
"""

REQUEST_COLUMNS = (
    "state",
    "content_hash",
    "owner",
    "lease_until",
    "takeovers",
    "result",
    "created_at",
    "updated_at",
    "expire_at",
    "attachment_generations",
    "template_version",
)
PAUSE_COLUMNS = ("since", "paused_by", "reason", "saved_push_configs")
SELECT_PAUSES = "SELECT * FROM pauses ORDER BY scope"
HEARTBEAT_COLUMNS = ("beat_at", "expire_at")
SELECT_HEARTBEATS = (
    "SELECT * FROM heartbeats WHERE grp = :grp AND expire_at >= :now ORDER BY instance"
)


@dataclass(frozen=True)
class Statements:
    """The statements of a table's :class:`~worker.ledger.records.Records`. Each takes the key
    columns as named parameters, and the others too where it writes them; a conditional one
    takes the values its ``select`` returned as ``:v0``, ``:v1``..., and matches only a row
    that still holds them all."""

    insert: str
    select: str
    update: str
    delete: str


def statements(table: str, key: tuple[str, ...], columns: tuple[str, ...]) -> Statements:
    """The statements for ``table``, whose primary key is ``key``."""
    # Only names from this module go into the text; every value is a parameter.
    where = " AND ".join(f"{name} = :{name}" for name in key)
    seen = ", ".join(f":v{index}" for index in range(len(columns)))
    as_read = f"({', '.join(columns)}) IS ({seen})"
    every = key + columns
    names, values = ", ".join(every), ", ".join(f":{name}" for name in every)
    new = f"({names}) VALUES ({values}) ON CONFLICT ({', '.join(key)}) DO NOTHING"
    sets = ", ".join(f"{name} = :{name}" for name in columns)
    return Statements(
        insert=f"INSERT INTO {table} {new}",
        select=f"SELECT {', '.join(columns)} FROM {table} WHERE {where}",  # noqa: S608
        update=f"UPDATE {table} SET {sets} WHERE {where} AND {as_read}",  # noqa: S608
        delete=f"DELETE FROM {table} WHERE {where} AND {as_read}",  # noqa: S608
    )


REQUESTS = statements("requests", ("service_id", "request_id"), REQUEST_COLUMNS)
PAUSES = statements("pauses", ("scope",), PAUSE_COLUMNS)
HEARTBEATS = statements("heartbeats", ("grp", "instance"), HEARTBEAT_COLUMNS)

# Columns added after the first release, with their definitions: a database created before
# them gains them when the ledger opens it (SQLite adds a column without rewriting the table).
ADDED_COLUMNS = (
    ("requests", "attachment_generations", "TEXT"),
    ("requests", "template_version", "INTEGER"),
)


def add_missing_columns(conn: sqlite3.Connection) -> None:
    """Add each of :data:`ADDED_COLUMNS` its table lacks."""
    for table, column, definition in ADDED_COLUMNS:
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if column in present:
            continue
        try:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
        except sqlite3.OperationalError as error:
            # Another process opening the same database added it first.
            if "duplicate column" not in str(error):
                raise


def add_shard_key(conn: sqlite3.Connection, table: str, create: str) -> None:
    """Rebuild ``table``, a counters table made before counters were sharded, as ``create``
    (its statement, whose key ends in a ``shard`` column defaulting to 0): its rows become
    shard 0. SQLite cannot change a primary key in place; one transaction copies the rows
    into the new table, so another process opening the file waits and then finds it done."""
    if "shard" in _columns(conn, table):
        return
    conn.execute("BEGIN IMMEDIATE")  # raises before anything began when the file is busy
    try:
        old = _columns(conn, table)
        if "shard" not in old:
            conn.execute(f"ALTER TABLE {table} RENAME TO {table}_unsharded")
            conn.execute(create)
            names = ", ".join(old)
            conn.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {table}_unsharded")  # noqa: S608
            conn.execute(f"DROP TABLE {table}_unsharded")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]


SWEEP = "DELETE FROM requests WHERE expire_at < :now"
SWEEP_STATUSES = "DELETE FROM statuses WHERE expire_at < :now"

# The console's recipient page: statuses_by_recipient answers it without a scan.
SELECT_SENT_TO = """
SELECT * FROM statuses
WHERE recipient = :recipient AND occurred_at >= :since AND expire_at >= :now
ORDER BY occurred_at DESC LIMIT :limit
"""
SWEEP_HEARTBEATS = "DELETE FROM heartbeats WHERE expire_at < :now"
