"""Who published a request: the subscription a delivery came through says it, not the request.

With per-service tenancy (EMAIL_WORKER_TENANCY, docs/security.md) every service publishes to
its own topic, which only it may publish to, and the worker reads one subscription per topic.
The subscription therefore authenticates the service: a request that names another service is
refused. The replay topic, which operators publish to, authenticates nobody: a replay is sent
only when the request ledger holds the same request from the same service.

With shared tenancy the one subscription carries every service's requests and the request's
own ``service_id`` is trusted.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from worker.config.settings import Settings

__all__ = ["REPLAY", "SHARED", "Source", "SourceKind", "subscription_sources"]


class SourceKind(enum.StrEnum):
    SERVICE = "service"  # a service's own topic: the publisher is that service
    REPLAY = "replay"  # the operators' replay topic: genuine only if the ledger says so
    SHARED = "shared"  # the shared topic: the request's service_id is taken on trust


@dataclass(frozen=True)
class Source:
    """Where a delivery came from, as far as the worker's own subscriptions can tell."""

    kind: SourceKind
    #: The publishing service, for SERVICE.
    service_id: str | None = None

    @classmethod
    def service(cls, service_id: str) -> Source:
        return cls(SourceKind.SERVICE, service_id)


REPLAY = Source(SourceKind.REPLAY)
SHARED = Source(SourceKind.SHARED)


def subscription_sources(settings: Settings) -> dict[str, Source]:
    """Every subscription the worker reads, as a full path, with what it authenticates."""
    project = settings.require_project()

    def path(name: str) -> str:
        return name if "/" in name else f"projects/{project}/subscriptions/{name}"

    if not settings.services.per_service:
        return {path(settings.topics.subscription): SHARED}
    sources = {
        path(settings.topics.service_subscription_for(service_id)): Source.service(service_id)
        for service_id in sorted(settings.services.allowed)
    }
    sources[path(settings.topics.replay_subscription)] = REPLAY
    return sources
