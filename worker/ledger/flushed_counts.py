"""Counts kept in memory and added to the ledger every few seconds, from a background thread:
what :class:`~worker.processing.daily_cap.DailyCounts` and
:class:`~worker.ledger.service_counter.ServiceCounter` share.

The thread starts with the first count. A flush that cannot reach the ledger keeps its counts
for the next one. :meth:`FlushedCounts.close` stops the thread and flushes what is left, and
nothing is written after it. A flush that finds the ledger closed under it (the process is
stopping) stops the flushes for good and says so once.
"""

from __future__ import annotations

import abc
import threading

from worker.config.logs import get_logger
from worker.ledger.base import Ledger
from worker.ledger.model import LedgerUnavailable

__all__ = ["FlushedCounts"]

log = get_logger()


class FlushedCounts(abc.ABC):
    """The flushing of counts ``kind`` (words for the logs: "send counts") to ``ledger``."""

    def __init__(
        self, ledger: Ledger, *, flush_interval_s: float, kind: str, thread_name: str
    ) -> None:
        self._ledger = ledger
        self._flush_interval_s = flush_interval_s
        self._kind = kind
        self._thread_name = thread_name
        self._flushing = threading.Lock()
        self._closed = threading.Event()  # no more background flushes
        self._finished = False  # no more writes at all (under _flushing)
        self._thread: threading.Thread | None = None

    def flush(self) -> None:
        """Add what was counted since the last flush to the ledger (kept for the next flush
        when the ledger cannot be reached). Nothing once closed."""
        with self._flushing:
            if not self._finished:
                self._flush_pending()

    def close(self) -> None:
        """Stop the background flushes and flush what is left; nothing is written after."""
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._flushing:
            if not self._finished:
                self._flush_pending()
            self._finished = True

    def _start_flushing(self) -> None:
        """Start the background flushes, once; call it under the counts' own lock."""
        if self._thread is None and not self._closed.is_set():
            self._thread = threading.Thread(
                target=self._flush_regularly, name=self._thread_name, daemon=True
            )
            self._thread.start()

    def _flush_pending(self) -> None:
        try:
            self._write_pending()
        except LedgerUnavailable as error:
            if self._ledger.closed:
                self._finished = True
                self._closed.set()
                log.info(f"the ledger is closed: {self._kind} no longer written")
                return
            log.warning(f"could not add the {self._kind} to the ledger", error=str(error)[:300])

    @abc.abstractmethod
    def _write_pending(self) -> None:
        """Write what is pending. On LedgerUnavailable, first put it back to be written by
        the next flush."""

    def _flush_regularly(self) -> None:
        while not self._closed.wait(self._flush_interval_s):
            self.flush()
