"""A cache of sending sessions, one per service, re-read from configuration periodically."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from worker.sending.ses_session import BaseSession

__all__ = ["SessionCache"]


class SessionCache:
    """Thread-safe ``service_id -> session`` cache whose entries expire after ``ttl_s``.

    Expiry makes configuration changes (a new role, a new allowed domain) take effect without
    a restart. A failed creation is not cached, so a fixed configuration is picked up by the
    next request. Sessions refresh their own AWS credentials in between.
    """

    def __init__(
        self,
        factory: Callable[[str], BaseSession],
        *,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._factory = factory
        self._ttl_s = ttl_s
        self._clock = clock
        self._entries: dict[str, tuple[float, BaseSession]] = {}
        self._lock = threading.Lock()
        self._creating: dict[str, threading.Lock] = {}

    def get(self, service_id: str) -> BaseSession:
        """The session for ``service_id``, created (or re-created) when missing or stale."""
        entry = self._fresh(service_id)
        if entry is not None:
            return entry
        with self._lock:
            creation_lock = self._creating.setdefault(service_id, threading.Lock())
        # One creation per service at a time; other services are not held up by it.
        with creation_lock:
            entry = self._fresh(service_id)
            if entry is not None:
                return entry
            session = self._factory(service_id)
            with self._lock:
                self._entries[service_id] = (self._clock() + self._ttl_s, session)
            return session

    def _fresh(self, service_id: str) -> BaseSession | None:
        with self._lock:
            entry = self._entries.get(service_id)
        if entry is not None and entry[0] > self._clock():
            return entry[1]
        return None
