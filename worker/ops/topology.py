"""The Pub/Sub topics and subscriptions the worker needs, created idempotently.

For the emulator and development; production creates the same names with terraform. Existing
resources are never changed: they are reported, with any differences from what would have been
created, so that a hand-made subscription without a dead-letter policy does not go unnoticed.

Created (names from the settings):

* topics: the ones requests arrive on (with per-service tenancy one per service,
  ``email-requests-SERVICE``, and the replay topic ``email-replays``; with shared tenancy
  ``email-requests``), results (``email-results``), dead letters
  (``email-requests-dead-letter``);
* the operators' dead-letter subscription (``email-requests-dead-letter-ops``), created before
  the worker's so that nothing is dead-lettered into a topic nobody keeps;
* each service's results subscription (``email-results-SERVICE``,
  :func:`worker.config.names.results_subscription_for`) on the results topic, filtered on
  ``attributes.service_id`` (:func:`worker.config.names.results_filter`) so that it admits
  that service's results only, as terraform makes it. Created before the worker's
  subscriptions: a subscription receives only what is published after it exists. Pub/Sub
  cannot change a subscription's filter, so an existing one with another filter is reported;
  it has to be deleted and made again;
* the worker's subscription on each topic requests arrive on (``email-requests-SERVICE-worker``
  and ``email-replays-worker``, or ``email-requests-worker``) with a dead-letter policy, a
  retry policy and an ack deadline.

``send --wait`` and ``EmailClient.publish_and_wait`` use temporary subscriptions of their own.

No subscription expires when unused. Pub/Sub's service account also needs publish rights
on the dead-letter topic and subscribe rights on the worker's subscription for the dead-letter
policy to work; that is IAM, which terraform grants and the emulator does not check.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.api_core import exceptions as gexc

from worker.client.pubsub_rpc import bounded
from worker.config.names import results_filter

__all__ = ["Resource", "SubscriptionPolicy", "ensure_topology", "read_max_delivery_attempts"]

DEAD_LETTER_RETENTION_S = 7 * 24 * 3600  # Pub/Sub's maximum: a week to look at dead letters
REQUEST_RETENTION_S = 7 * 24 * 3600  # requests wait a week for a worker that is down
# Pub/Sub's documented max delivery attempts when a dead-letter policy leaves it unset.
_PUBSUB_DEFAULT_MAX_DELIVERY_ATTEMPTS = 5


@dataclass(frozen=True)
class SubscriptionPolicy:
    """How the worker's subscription delivers: Pub/Sub allows attempts 5-100, ack deadlines
    10-600 s and backoffs 0-600 s."""

    max_delivery_attempts: int = 12
    ack_deadline_s: int = 60
    min_backoff_s: int = 10
    max_backoff_s: int = 600


@dataclass
class Resource:
    kind: str  # "topic" or "subscription"
    path: str
    created: bool
    differences: list[str] = field(default_factory=list)


def ensure_topology(
    publisher: Any,
    subscriber: Any,
    *,
    project_id: str,
    inputs: Sequence[tuple[str, str]],
    results_topic: str,
    dead_letter_topic: str,
    dead_letter_subscription: str,
    policy: SubscriptionPolicy,
    results: Sequence[tuple[str, str]] = (),
    timeout_s: float = 10.0,
    on_resource: Callable[[Resource], None] | None = None,
) -> list[Resource]:
    """Create whatever is missing; return every resource, created or found, in order.

    ``inputs``: the topics the worker reads, each with the worker's subscription on it, as
    ``(topic, subscription)`` names (one per service and the replay topic, or the shared one).
    ``results``: each service's results subscription, as ``(service_id, subscription)``.
    """
    done: list[Resource] = []

    def report(resource: Resource) -> None:
        done.append(resource)
        if on_resource is not None:
            on_resource(resource)

    names = [topic for topic, _ in inputs] + [results_topic, dead_letter_topic]
    for name in dict.fromkeys(names):
        report(_ensure_topic(publisher, _topic_path(project_id, name), timeout_s))
    bodies = [_operators_subscription(project_id, dead_letter_topic, dead_letter_subscription)]
    bodies += [
        _results_subscription(project_id, results_topic, service_id, subscription)
        for service_id, subscription in results
    ]
    bodies += [
        _worker_subscription(project_id, topic, subscription, dead_letter_topic, policy)
        for topic, subscription in inputs
    ]
    for body in bodies:
        report(_ensure_subscription(subscriber, body, timeout_s))
    return done


def _topic_path(project_id: str, name: str) -> str:
    return f"projects/{project_id}/topics/{name}"


def _subscription_path(project_id: str, name: str) -> str:
    return f"projects/{project_id}/subscriptions/{name}"


def _operators_subscription(project_id: str, topic: str, name: str) -> dict[str, Any]:
    """The operators' view of the dead letters."""
    return {
        "name": _subscription_path(project_id, name),
        "topic": _topic_path(project_id, topic),
        "ack_deadline_seconds": 60,
        "message_retention_duration": {"seconds": DEAD_LETTER_RETENTION_S},
        "expiration_policy": {},  # set, but without a ttl: never expires
    }


def _results_subscription(
    project_id: str, topic: str, service_id: str, name: str
) -> dict[str, Any]:
    """A service's own results: the results topic filtered on its id."""
    return {
        "name": _subscription_path(project_id, name),
        "topic": _topic_path(project_id, topic),
        "filter": results_filter(service_id),
        "ack_deadline_seconds": 60,
        "message_retention_duration": {"seconds": REQUEST_RETENTION_S},
        "expiration_policy": {},
    }


def _worker_subscription(
    project_id: str, topic: str, name: str, dead_letter_topic: str, policy: SubscriptionPolicy
) -> dict[str, Any]:
    """The worker's subscription on a topic it reads, with its dead-letter and retry policy."""
    return {
        "name": _subscription_path(project_id, name),
        "topic": _topic_path(project_id, topic),
        "ack_deadline_seconds": policy.ack_deadline_s,
        "message_retention_duration": {"seconds": REQUEST_RETENTION_S},
        "dead_letter_policy": {
            "dead_letter_topic": _topic_path(project_id, dead_letter_topic),
            "max_delivery_attempts": policy.max_delivery_attempts,
        },
        "retry_policy": {
            "minimum_backoff": {"seconds": policy.min_backoff_s},
            "maximum_backoff": {"seconds": policy.max_backoff_s},
        },
        "expiration_policy": {},
    }


def read_max_delivery_attempts(subscriber: Any, subscription_path: str) -> int | None:
    """The subscription's dead-letter policy's max delivery attempts, or None without one.

    The worker's runtime reads it at start when EMAIL_WORKER_MAX_DELIVERY_ATTEMPTS is unset.
    """
    subscription = subscriber.get_subscription(request={"subscription": subscription_path})
    policy = subscription.dead_letter_policy
    if not policy or not policy.dead_letter_topic:
        return None
    return int(policy.max_delivery_attempts or _PUBSUB_DEFAULT_MAX_DELIVERY_ATTEMPTS)


def _ensure_topic(publisher: Any, path: str, timeout_s: float) -> Resource:
    try:
        publisher.create_topic(request={"name": path}, **bounded(timeout_s))
    except gexc.AlreadyExists:
        return Resource("topic", path, created=False)
    return Resource("topic", path, created=True)


def _ensure_subscription(subscriber: Any, spec: dict[str, Any], timeout_s: float) -> Resource:
    path = spec["name"]
    try:
        subscriber.create_subscription(request=spec, **bounded(timeout_s))
    except gexc.AlreadyExists:
        existing = subscriber.get_subscription(request={"subscription": path}, **bounded(timeout_s))
        return Resource(
            "subscription", path, created=False, differences=_differences(spec, existing)
        )
    return Resource("subscription", path, created=True)


def _seconds(value: Any) -> float:
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return float(getattr(value, "seconds", 0) or 0)


def _differences(spec: dict[str, Any], existing: Any) -> list[str]:
    found: list[str] = []

    def compare(what: str, have: Any, want: Any) -> None:
        if have != want:
            found.append(f"{what} is {have!r}, expected {want!r}")

    compare("topic", existing.topic, spec["topic"])
    compare("ack deadline", existing.ack_deadline_seconds, spec["ack_deadline_seconds"])
    if existing.filter != spec.get("filter", ""):
        found.append(
            f"its filter is {existing.filter!r}, expected {spec.get('filter', '')!r} (Pub/Sub "
            "cannot change a filter: delete the subscription and run setup again)"
        )
    wanted_policy = spec.get("dead_letter_policy")
    policy = existing.dead_letter_policy
    if wanted_policy is not None:
        if not policy or not policy.dead_letter_topic:
            found.append("it has no dead-letter policy")
        else:
            compare(
                "dead-letter topic", policy.dead_letter_topic, wanted_policy["dead_letter_topic"]
            )
            compare(
                "max delivery attempts",
                policy.max_delivery_attempts or _PUBSUB_DEFAULT_MAX_DELIVERY_ATTEMPTS,
                wanted_policy["max_delivery_attempts"],
            )
    wanted_retry = spec.get("retry_policy")
    if wanted_retry is not None:
        retry = existing.retry_policy
        if not retry:
            found.append("it has no retry policy (redelivery is immediate)")
        else:
            # Unset backoffs mean Pub/Sub's defaults, 10 s and 600 s.
            compare(
                "minimum backoff (s)",
                _seconds(retry.minimum_backoff) or 10.0,
                float(wanted_retry["minimum_backoff"]["seconds"]),
            )
            compare(
                "maximum backoff (s)",
                _seconds(retry.maximum_backoff) or 600.0,
                float(wanted_retry["maximum_backoff"]["seconds"]),
            )
    return found
