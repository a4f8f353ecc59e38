"""The request ledger: what makes sending exactly-once per request.

The layer owns one record per (service_id, request_id): who holds the claim to send it and
until when, the hash of the content it was claimed for, and, once finished, the result the
requester saw, and afterwards what SES reported about each recipient (the events reader
writes it: sent, delivered, bounced, ...). A delivery claims before it sends and stores the
result after; a redelivery then finds the result and republishes it instead of sending
again, a concurrent delivery is told to come back later, and a reused request_id with
different content is recognised. The same store keeps the operators' pauses of sending
(:class:`Pause`), which every worker instance reads. The protocol is written once, in
:class:`Ledger`, on a few storage primitives; three backends hold the records, SQLite for one
host, Firestore for many, and memory for tests and single-process demos, chosen by
:func:`open_ledger`; records expire after a retention period. The layer stands alone: it
knows nothing of messages, SES or Pub/Sub, and any failure of its store surfaces as
:class:`LedgerUnavailable`.
"""

from __future__ import annotations

from worker.ledger.base import DEFAULT_RETENTION_S, Ledger, LedgerTerms
from worker.ledger.firestore_ledger import DEFAULT_COLLECTION, FirestoreLedger, document_id
from worker.ledger.heartbeats import Heartbeat
from worker.ledger.memory_ledger import MemoryLedger
from worker.ledger.model import (
    Claim,
    ClaimState,
    LedgerKey,
    LedgerRecord,
    LedgerUnavailable,
    ReplayVerdict,
    StoredResult,
    content_hash,
    replay_verdict,
)
from worker.ledger.pauses import ALL_SERVICES, Pause
from worker.ledger.sqlite_ledger import SqliteLedger
from worker.ledger.statuses import RecipientStatus
from worker.ledger.url import ACCEPTED_FORMS, open_ledger

__all__ = [
    "ACCEPTED_FORMS",
    "ALL_SERVICES",
    "DEFAULT_COLLECTION",
    "DEFAULT_RETENTION_S",
    "Claim",
    "ClaimState",
    "FirestoreLedger",
    "Heartbeat",
    "Ledger",
    "LedgerKey",
    "LedgerRecord",
    "LedgerTerms",
    "LedgerUnavailable",
    "MemoryLedger",
    "Pause",
    "RecipientStatus",
    "ReplayVerdict",
    "SqliteLedger",
    "StoredResult",
    "content_hash",
    "document_id",
    "open_ledger",
    "replay_verdict",
]
