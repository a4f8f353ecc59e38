"""Services whose SES tenant SES has paused: their requests wait, the other services send.

A service that sends through its own SES tenant (``ses_tenant``, docs/formats.md) can be
paused by SES alone, by the tenant's reputation policy or by an operator through the tenant's
reputation entity; SES then answers its sends ``SendingPausedException``
(:class:`~worker.sending.errors.TenantPausedError`). The request is not at fault and must not
fail: it is held like a delivery during an outage (``Status.HELD``: the pull transport keeps
it leased, with no delivery attempt used). So that held requests do not call SES again and
again, :class:`TenantPauses` remembers the paused services in this process, and lets one
request of each through every ``probe_interval_s`` to ask SES again. The first send that SES
accepts ends the hold. Nothing is written to the ledger: a pause is SES's, and each instance
finds it out, and its end, from its own calls.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from worker.config.logs import get_logger

__all__ = ["TENANT_PAUSE_PROBE_S", "TenantPauses"]

log = get_logger()

#: How often a paused tenant's service is tried again, per worker instance.
TENANT_PAUSE_PROBE_S = 60.0


class TenantPauses:
    """The services this process has found paused by SES, with when to try each again."""

    def __init__(
        self,
        *,
        probe_interval_s: float = TENANT_PAUSE_PROBE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._probe_interval_s = probe_interval_s
        self._clock = clock
        self._next_probe: dict[str, float] = {}
        self._lock = threading.Lock()

    def holds(self, service_id: str) -> bool:
        """Whether ``service_id``'s request must wait without calling SES; False for the one
        request that probes the tenant once the interval has passed."""
        if service_id not in self._next_probe:  # the common case: no lock taken
            return False
        now = self._clock()
        with self._lock:
            due = self._next_probe.get(service_id)
            if due is None:
                return False
            if now < due:
                return True
            self._next_probe[service_id] = now + self._probe_interval_s
            return False

    def paused(self, service_id: str, tenant: str | None) -> None:
        """SES refused a send of ``service_id``'s because its tenant is paused."""
        with self._lock:
            first = service_id not in self._next_probe
            self._next_probe[service_id] = self._clock() + self._probe_interval_s
        if first:
            log.warning(
                "SES has paused the service's tenant: its requests wait",
                service_id=service_id,
                tenant=tenant,
                probe_interval_s=self._probe_interval_s,
            )

    def sent(self, service_id: str) -> None:
        """SES accepted a send of ``service_id``'s: its tenant sends again."""
        if service_id not in self._next_probe:
            return
        with self._lock:
            ended = self._next_probe.pop(service_id, None) is not None
        if ended:
            log.info("the service's tenant sends again", service_id=service_id)

    def seconds_until_probe(self, service_id: str) -> float:
        """How long until ``service_id``'s next probe (0 when it is not held)."""
        due = self._next_probe.get(service_id)
        return 0.0 if due is None else max(0.0, due - self._clock())

    def paused_services(self) -> list[str]:
        """The services held now, sorted."""
        with self._lock:
            return sorted(self._next_probe)
