"""Which backend keeps a ledger's schedule records (:mod:`worker.ledger.schedules`)."""

from __future__ import annotations

import threading
import weakref

from worker.ledger.base import Ledger
from worker.ledger.schedules import ScheduleRecords, Schedules

__all__ = ["schedules_of"]

_BOOKS: weakref.WeakKeyDictionary[Ledger, Schedules] = weakref.WeakKeyDictionary()
_BOOKS_LOCK = threading.Lock()


def schedules_of(ledger: Ledger) -> Schedules:
    """``ledger``'s schedules: the same object for every caller, so that the memory
    backend's records are shared like the ledger's own."""
    with _BOOKS_LOCK:
        book = _BOOKS.get(ledger)
        if book is None:
            book = _BOOKS[ledger] = Schedules(ledger, _records_for(ledger))
        return book


def _records_for(ledger: Ledger) -> ScheduleRecords:
    # Imported here: each backend's module imports its own client library.
    from worker.ledger.firestore_ledger import FirestoreLedger
    from worker.ledger.memory_ledger import MemoryLedger
    from worker.ledger.sqlite_ledger import SqliteLedger

    if isinstance(ledger, SqliteLedger):
        from worker.ledger.schedules_sqlite import sqlite_schedules

        return sqlite_schedules(ledger)
    if isinstance(ledger, FirestoreLedger):
        from worker.ledger.schedules_firestore import firestore_schedules

        return firestore_schedules(ledger)
    if isinstance(ledger, MemoryLedger):
        from worker.ledger.schedules_memory import MemorySchedules

        return MemorySchedules()
    raise TypeError(f"no schedule records for {type(ledger).__name__}")
