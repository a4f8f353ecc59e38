"""The clients a long-running command uses, opened once from the settings and closed once.

``pull``, ``serve`` and ``events`` (and the next command that runs until stopped) get their
Pub/Sub publisher and subscriber, the request ledger and the services' SES sessions from
:func:`open_clients`, and hand them to :func:`~worker.app.lifecycle.run_until_signalled`,
which closes them when the command stops.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from worker.client.pubsub_rpc import new_publisher, new_subscriber
from worker.config.settings import Settings
from worker.ledger import Ledger, open_ledger
from worker.sending.ses_session import BaseSession, Session, leave_throttled_sends_to_the_caller
from worker.sending.session_cache import SessionCache

__all__ = ["Clients", "open_clients"]


@dataclass
class Clients:
    """Open clients. ``subscriber`` and ``sessions`` are None for a command that neither
    reads subscriptions nor sends (``events``); ``ledger`` is None with
    EMAIL_WORKER_LEDGER=none."""

    project: str
    publisher: Any
    ledger: Ledger | None
    subscriber: Any | None = None
    sessions: SessionCache | None = None

    def topic_path(self, topic: str) -> str:
        """The full path of ``topic`` in the settings' project."""
        path: str = self.publisher.topic_path(self.project, topic)
        return path

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str]) -> Future[Any]:
        """Publish one message to ``topic`` (a full path); the future is its message id."""
        future: Future[Any] = self.publisher.publish(topic, data, **attributes)
        return future

    def close(self, *, ledger: bool = True) -> None:
        """Send the pending publishes, then close the subscriber and (unless ``ledger`` is
        False: threads left running may still use it) the ledger."""
        self.publisher.stop()
        if self.subscriber is not None:
            self.subscriber.close()
        if ledger and self.ledger is not None:
            self.ledger.close()


def open_clients(settings: Settings, *, subscriber: bool = True, sessions: bool = True) -> Clients:
    """Open the clients ``settings`` name: a publisher (with the operators' commands'
    batching, retry and timeout), the ledger, and unless asked not to a subscriber and a
    cache of the allowed services' SES sessions (configuration read from
    EMAIL_WORKER_SERVICE_CONFIG_URL). Raises when the ledger cannot be opened."""
    project = settings.require_project()
    ledger = open_ledger(
        settings.ledger.url,
        project=project,
        claim_lease_s=settings.ledger.claim_s,
        retention_s=settings.ledger.retention_s,
        takeover_wait_s=settings.ledger.send_event_wait_s,
    )
    return Clients(
        project=project,
        publisher=new_publisher(settings.process.publish_timeout_s),
        ledger=ledger,
        subscriber=new_subscriber() if subscriber else None,
        sessions=_session_cache(settings) if sessions else None,
    )


def _session_cache(settings: Settings) -> SessionCache:
    def new_session(service_id: str) -> BaseSession:
        session = Session.for_service(
            service_id,
            environment=settings.services.config_environment,
            config_url=settings.services.config_url,
        )
        leave_throttled_sends_to_the_caller(session)  # the pipeline's paced retry takes them
        return session

    return SessionCache(new_session, ttl_s=settings.services.session_ttl_s)
