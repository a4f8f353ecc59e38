"""Choosing a ledger backend from one configuration string (``EMAIL_WORKER_LEDGER``).

The accepted forms:

* ``none``: no ledger; the worker sends without exactly-once protection.
* ``sqlite:///PATH``: a SQLite file, following SQLAlchemy's convention: three slashes then a
  relative path (``sqlite:///ledger.db``, relative to the working directory), four slashes
  for an absolute one (``sqlite:////var/lib/email-worker/ledger.db``). ``sqlite://`` and
  ``sqlite:///:memory:`` give a private in-memory database (tests and demos only: it is
  neither shared nor kept).
* ``memory://``: the records in this process's memory (:class:`MemoryLedger`), for tests
  and single-process demos that open their ledger themselves. ``EMAIL_WORKER_LEDGER`` does
  not take it (the settings refuse it); a worker's private in-memory ledger is ``sqlite://``.
* ``firestore``: Firestore, the project's (default) database.
* ``firestore://DATABASE_ID``: Firestore, the named database of the project.
"""

from __future__ import annotations

import re

from worker.ledger.base import Ledger
from worker.ledger.firestore_ledger import DEFAULT_COLLECTION, FirestoreLedger
from worker.ledger.memory_ledger import MemoryLedger
from worker.ledger.sqlite_ledger import SqliteLedger

__all__ = ["ACCEPTED_FORMS", "open_ledger"]

ACCEPTED_FORMS = (
    "none",
    "sqlite:///relative/path.db",
    "sqlite:////absolute/path.db",
    "sqlite:///:memory:",
    "memory://",
    "firestore",
    "firestore://DATABASE_ID",
)

_SQLITE_PREFIX = "sqlite:///"
_FIRESTORE_PREFIX = "firestore://"
# Firestore's rule for database ids; "(default)" names the default database explicitly.
_DATABASE_ID = re.compile(r"[a-z][a-z0-9-]{2,61}[a-z0-9]|\(default\)")


def open_ledger(
    url: str,
    *,
    project: str | None,
    claim_lease_s: float,
    retention_s: float,
    takeover_wait_s: float = 0.0,
    collection: str = DEFAULT_COLLECTION,
) -> Ledger | None:
    """Open the ledger ``url`` names (see the module docstring), or None for ``none``.

    ``takeover_wait_s``: how long after a claim's lease ran out it may be taken over.
    ``project`` is the Google Cloud project for Firestore (None: the environment's);
    SQLite and memory ignore it, and ``collection``. Raises ValueError for any other form.
    """
    if url == "none":
        return None
    if url == "memory://":
        return MemoryLedger(
            claim_lease_s=claim_lease_s,
            retention_s=retention_s,
            takeover_wait_s=takeover_wait_s,
        )
    if url in ("sqlite://", "sqlite:///:memory:"):
        return SqliteLedger(
            ":memory:",
            claim_lease_s=claim_lease_s,
            retention_s=retention_s,
            takeover_wait_s=takeover_wait_s,
        )
    if url.startswith(_SQLITE_PREFIX) and len(url) > len(_SQLITE_PREFIX):
        path = url[len(_SQLITE_PREFIX) :]
        return SqliteLedger(
            path,
            claim_lease_s=claim_lease_s,
            retention_s=retention_s,
            takeover_wait_s=takeover_wait_s,
        )
    database: str | None = None
    if url.startswith(_FIRESTORE_PREFIX):
        database = url[len(_FIRESTORE_PREFIX) :]
        if not _DATABASE_ID.fullmatch(database):
            raise ValueError(
                f"ledger URL {url!r} names no valid Firestore database id (4 to 63 lowercase "
                "letters, digits and hyphens, starting with a letter)"
            )
    elif url != "firestore":
        raise ValueError(f"ledger URL {url!r} is not one of: {', '.join(ACCEPTED_FORMS)}")
    return FirestoreLedger(
        project=project,
        database=database,
        collection=collection,
        claim_lease_s=claim_lease_s,
        retention_s=retention_s,
        takeover_wait_s=takeover_wait_s,
    )
