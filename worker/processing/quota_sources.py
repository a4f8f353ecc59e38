"""Where the quota pacer's quotas come from: the SES accounts and regions of the worker's
services, read through their sessions, and this process's id among the instances."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Collection, Mapping

from worker.config.logs import get_logger
from worker.processing.quota_pacer import QuotaSources
from worker.sending.errors import EmailError
from worker.sending.quota import QuotaGroup, SendQuota
from worker.sending.session_cache import SessionCache

__all__ = ["instance_id", "session_sources"]

log = get_logger()


def session_sources(services: Collection[str], sessions: SessionCache) -> QuotaSources:
    """The accounts and regions ``services`` send through, from their sessions (a service
    whose session cannot be built is left out, and its requests fail on their own)."""

    def sources() -> Mapping[QuotaGroup, Callable[[], SendQuota]]:
        found: dict[QuotaGroup, Callable[[], SendQuota]] = {}
        for service_id in sorted(services):
            try:
                reader = sessions.get(service_id).quota_reader()
            except EmailError as error:
                log.warning(
                    "cannot tell a service's SES account",
                    service_id=service_id,
                    error_code=error.code,
                )
                continue
            if reader is not None:
                found.setdefault(*reader)
        return found

    return sources


def instance_id() -> str:
    """This process's id among the instances: host, process and a random part."""
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
