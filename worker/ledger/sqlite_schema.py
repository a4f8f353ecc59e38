"""The SQLite ledger's tables and statements (:mod:`worker.ledger.sqlite_ledger`).

A conditional write matches a row as read: the ``:v0``, ``:v1``... parameters are the values
the matching ``SELECT`` returned, in its column order.
"""

from __future__ import annotations

__all__ = [
    "DELETE_PAUSE",
    "INSERT",
    "INSERT_PAUSE",
    "SCHEMA",
    "SELECT",
    "SELECT_PAUSE",
    "SELECT_PAUSES",
    "SELECT_STATUSES",
    "SWEEP",
    "SWEEP_STATUSES",
    "UPDATE",
    "UPDATE_PAUSE",
    "UPSERT_STATUS",
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

INSERT = """
INSERT INTO requests (service_id, request_id, state, content_hash, owner, lease_until,
                      takeovers, result, created_at, updated_at, expire_at)
VALUES (:service_id, :request_id, :state, :content_hash, :owner, :lease_until,
        :takeovers, :result, :created_at, :updated_at, :expire_at)
ON CONFLICT (service_id, request_id) DO NOTHING
"""

SELECT = """
SELECT state, content_hash, owner, lease_until, takeovers, result, created_at, updated_at,
       expire_at
FROM requests WHERE service_id = :service_id AND request_id = :request_id
"""

# Only if the row is still as read (:v0 to :v8: the values SELECT returned, in its order).
UPDATE = """
UPDATE requests
SET state = :state, content_hash = :content_hash, owner = :owner, lease_until = :lease_until,
    takeovers = :takeovers, result = :result, created_at = :created_at,
    updated_at = :updated_at, expire_at = :expire_at
WHERE service_id = :service_id AND request_id = :request_id
  AND (state, content_hash, owner, lease_until, takeovers, result, created_at, updated_at,
       expire_at) IS (:v0, :v1, :v2, :v3, :v4, :v5, :v6, :v7, :v8)
"""

INSERT_PAUSE = """
INSERT INTO pauses (scope, since, paused_by, reason, saved_push_configs)
VALUES (:scope, :since, :paused_by, :reason, :saved_push_configs)
ON CONFLICT (scope) DO NOTHING
"""
SELECT_PAUSE = (
    "SELECT since, paused_by, reason, saved_push_configs FROM pauses WHERE scope = :scope"
)
SELECT_PAUSES = "SELECT * FROM pauses ORDER BY scope"
_PAUSE_AS_READ = "(since, paused_by, reason, saved_push_configs) IS (:v0, :v1, :v2, :v3)"
UPDATE_PAUSE = f"""
UPDATE pauses SET since = :since, paused_by = :paused_by, reason = :reason,
                  saved_push_configs = :saved_push_configs
WHERE scope = :scope AND {_PAUSE_AS_READ}
"""  # noqa: S608 (no input in the text)
DELETE_PAUSE = f"DELETE FROM pauses WHERE scope = :scope AND {_PAUSE_AS_READ}"  # noqa: S608

SWEEP = "DELETE FROM requests WHERE expire_at < :now"
SWEEP_STATUSES = "DELETE FROM statuses WHERE expire_at < :now"
