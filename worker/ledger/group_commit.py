"""SQLite writes committed in groups: what keeps the ledger off a worker's hot path.

The writes that threads queue while one transaction is being committed share the next one,
and so one ``fsync`` (SQLite's default ``synchronous = FULL``) instead of one each. A write
returns only once its group is committed. Without it the threads waited in turn for each
other's ``fsync``: under load a claim took 45 ms, and the ledger capped a worker at about 300
emails a second (docs/scaling.md).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["GroupCommit"]

_T = TypeVar("_T")


class _Write:
    """One thread's write, waiting for a group commit; ``done`` is set under the ledger's lock."""

    __slots__ = ("action", "done", "error", "result")

    def __init__(self, action: Callable[[], Any]) -> None:
        self.action = action
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None


class GroupCommit:
    """Mixin for a class holding one connection ``_conn`` behind ``_lock``, which is also the
    right to commit a group; call :meth:`_start_group_commit` before the first write."""

    _conn: sqlite3.Connection
    _lock: threading.Lock

    def _start_group_commit(self) -> None:
        self._queue_lock = threading.Lock()
        self._queue: list[_Write] = []  # writes waiting for the next group commit

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
