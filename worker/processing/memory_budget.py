"""A process-wide budget of bytes, for the attachments the worker holds in memory.

Every thread that reads ``gs://`` attachments takes their size from one
:class:`MemoryBudget` (EMAIL_WORKER_ATTACHMENT_MEMORY_BYTES) before reading and gives it back
once the message is sent; a send that does not fit waits for others to give theirs back. So
however many sends run at once, their attachments never hold more than the budget (one larger
than the whole budget runs alone). A wait keeps the delivery's claim and its Pub/Sub lease,
which the subscriber extends while the message is in hand.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["MemoryBudget"]


class MemoryBudget:
    """A semaphore counting bytes, ``capacity_bytes`` in all; safe for many threads."""

    def __init__(self, capacity_bytes: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity_bytes = capacity_bytes
        self._in_use = 0
        self._clock = clock
        self._changed = threading.Condition()

    @property
    def in_use_bytes(self) -> int:
        with self._changed:
            return self._in_use

    def acquire(self, size_bytes: int, *, timeout_s: float) -> bool:
        """Take ``size_bytes`` (all of the budget at most), waiting up to ``timeout_s`` for
        them; False if they did not become free in time."""
        size = min(size_bytes, self.capacity_bytes)
        if size <= 0:
            return True
        deadline = self._clock() + timeout_s
        with self._changed:
            while self._in_use + size > self.capacity_bytes:
                left = deadline - self._clock()
                if left <= 0:
                    return False
                self._changed.wait(left)
            self._in_use += size
            return True

    def release(self, size_bytes: int) -> None:
        """Give back what :meth:`acquire` took for ``size_bytes``."""
        size = min(size_bytes, self.capacity_bytes)
        if size <= 0:
            return
        with self._changed:
            self._in_use -= size
            self._changed.notify_all()
