"""The pipeline's :class:`Deps`: what its steps need from the outside world, injected for tests.

The settings, the SES sessions, the ledger, the breaker, the pacing and limits shared by every
thread, and the send's retry policy, built once. The steps import it from
:mod:`worker.processing.delivery`, beside what they pass along.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import tenacity

from worker.config.logs import get_logger
from worker.config.settings import Settings
from worker.ledger import Ledger
from worker.processing.breaker import OutageBreaker
from worker.processing.daily_cap import DailyCounts
from worker.processing.held_claims import ClaimsHeld
from worker.processing.memory_budget import MemoryBudget
from worker.processing.quota_pacer import QuotaPacer
from worker.processing.send_rate import SendRateLimiter
from worker.processing.tenant_pauses import TenantPauses
from worker.sending.attachment_store import AttachmentStore
from worker.sending.retry_policy import RetryPolicy
from worker.sending.session_cache import SessionCache

if TYPE_CHECKING:  # the template modules load Jinja2: only a template request needs them
    from worker.sending.template_library import TemplateLibrary

__all__ = ["Deps"]

log = get_logger()


def _log_retry(state: tenacity.RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    log.info(
        "send failed, retrying",
        error_code=getattr(error, "code", None),
        attempt=state.attempt_number,
        backoff_s=round(state.upcoming_sleep, 3),
    )


@dataclass
class Deps:
    """What the pipeline needs from the outside world, injected for tests."""

    settings: Settings
    sessions: SessionCache
    #: How retry backoffs and send-rate waits pass; None: waiting on ``stopping``, so that
    #: a shutdown cuts them short.
    sleep: Callable[[float], object] | None = None
    #: EMAIL_WORKER_SEND_RATE_PER_S, shared by every thread; None: no limit of our own.
    send_rate: SendRateLimiter | None = None
    #: Keeps ``send_rate`` at this instance's share of SES's quota, told of SES's throttling,
    #: and holds sends at the 24-hour cap (EMAIL_WORKER_QUOTA_PACING); None: off.
    quota: QuotaPacer | None = None
    #: Set on shutdown: waits end at once, and a delivery not yet inside its SES call is
    #: handed back (its claim released) instead of sent.
    stopping: threading.Event = field(default_factory=threading.Event)
    #: EMAIL_WORKER_LEDGER; None: no deduplication of redeliveries or repeated publishes.
    ledger: Ledger | None = None
    #: Told of every downstream call; holds work back while they fail for everyone. None:
    #: no breaker.
    breaker: OutageBreaker | None = None
    #: The claims deliveries hold, for a worker that must exit before they finish.
    claims: ClaimsHeld = field(default_factory=ClaimsHeld)
    #: Reads gs:// attachments (its storage client is made on first use).
    attachment_store: AttachmentStore = field(default_factory=AttachmentStore)
    #: EMAIL_WORKER_ATTACHMENT_MEMORY_BYTES, shared by every thread; None: from the settings.
    attachment_budget: MemoryBudget = field(default=None)  # type: ignore[assignment]
    #: The services' templates; None: built from the settings when a request first names one.
    templates: TemplateLibrary | None = None
    #: Services whose SES tenant SES has paused: their requests are held, not sent.
    tenant_pauses: TenantPauses = field(default_factory=TenantPauses)
    #: Each service's recipients sent in the last day, for its max_per_day; None: no caps.
    daily_counts: DailyCounts | None = None

    def __post_init__(self) -> None:
        if self.attachment_budget is None:
            # Made here, once, not on first use: two threads must never make one each.
            self.attachment_budget = MemoryBudget(self.settings.sending.attachment_memory_bytes)

    def report(self, service_id: str | None, *, failed: bool) -> None:
        """Tell the breaker how a downstream call went: a transient failure, or an answer
        (a permanent refusal is one: the downstream is up)."""
        if self.breaker is not None:
            self.breaker.record(service_id, failed=failed)

    @property
    def holding(self) -> bool:
        """Whether the outage breaker, or SES's 24-hour cap, is holding work back."""
        if self.quota is not None and self.quota.daily_cap_reached():
            return True
        return self.breaker is not None and self.breaker.holding

    def pause(self, seconds: float) -> None:
        if self.sleep is None:
            self.stopping.wait(seconds)
        else:
            self.sleep(seconds)

    @functools.cached_property
    def send_retrying(self) -> tenacity.Retrying:
        """The send's retry policy (EMAIL_WORKER_SEND_*), built once: tenacity keeps each
        call's state per thread, so every thread can use the same one (building it cost about
        4% of a send's CPU). It gives up at once on a stop, or while the breaker holds (the
        delivery then waits out the outage)."""
        settings = self.settings
        policy = RetryPolicy(
            max_attempts=settings.sending.max_attempts,
            deadline_s=settings.sending.deadline_s,
            initial_backoff_s=settings.sending.initial_backoff_s,
            max_backoff_s=settings.sending.max_backoff_s,
        )
        return policy.retrying(sleep=self.pause, give_up=self._gives_up, before_sleep=_log_retry)

    @functools.cached_property
    def template_library(self) -> TemplateLibrary:
        """``templates``, or one reading EMAIL_WORKER_TEMPLATES_URL, built on first use."""
        if self.templates is not None:
            return self.templates
        from worker.sending.template_library import TemplateLibrary

        services = self.settings.services
        return TemplateLibrary(
            environment=services.config_environment,
            url=services.templates_url,
            latest_ttl_s=services.template_latest_ttl_s,
        )

    def _gives_up(self) -> bool:
        return self.stopping.is_set() or self.holding
