"""``email-worker setup``: create the topics and subscriptions, idempotently."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from worker.config.budget import MAX_ACK_DEADLINE_S
from worker.config.names import results_subscription_for
from worker.config.settings import MIN_ACK_DEADLINE_S, Settings
from worker.ops.commands import common
from worker.ops.commands.common import EXIT_USAGE, fail, load_settings

if TYPE_CHECKING:
    from worker.ops.topology import Resource, SubscriptionPolicy

__all__ = ["setup"]


def _backoff_option(
    name: str, default_s: int, help_text: str
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A retry-policy backoff option: seconds, 0 to 600 (Pub/Sub's range)."""
    return click.option(
        name, type=click.IntRange(0, 600), default=default_s, show_default=True, help=help_text
    )


@click.command(epilog=common.exit_codes_epilog(common.EXIT_OK, common.EXIT_FAILURE, EXIT_USAGE))
@click.option(
    "--max-delivery-attempts",
    type=click.IntRange(5, 100),
    help="Deliveries before Pub/Sub dead-letters a request "
    "[default: EMAIL_WORKER_MAX_DELIVERY_ATTEMPTS, else 12: with the default backoffs, "
    "about an hour; see worker/config/budget.py].",
)
@click.option(
    "--ack-deadline",
    # What the worker accepts as EMAIL_WORKER_ACK_DEADLINE_S: a subscription with a shorter
    # deadline would be one the worker refuses to run with.
    type=click.IntRange(MIN_ACK_DEADLINE_S, MAX_ACK_DEADLINE_S),
    default=60,
    show_default=True,
    help="Seconds the worker has to settle a delivery.",
)
@_backoff_option("--min-backoff", 10, "Seconds before redelivering a nacked request, at first.")
@_backoff_option("--max-backoff", 600, "Longest wait before a redelivery.")
def setup(
    max_delivery_attempts: int | None,
    ack_deadline: int,
    min_backoff: int,
    max_backoff: int,
) -> None:
    """Create the worker's topics and subscriptions where they are missing.

    \b
    Topics:
      per-service tenancy: EMAIL_WORKER_SERVICE_TOPIC for each of
      EMAIL_WORKER_ALLOWED_SERVICES, and EMAIL_WORKER_REPLAY_TOPIC;
      shared tenancy: EMAIL_WORKER_REQUESTS_TOPIC;
      EMAIL_WORKER_RESULTS_TOPIC, EMAIL_WORKER_DEAD_LETTER_TOPIC
    Subscriptions:
      EMAIL_WORKER_DEAD_LETTER_SUBSCRIPTION (read by `email-worker dlq`)
      email-results-SERVICE for each of EMAIL_WORKER_ALLOWED_SERVICES, on
      the results topic, filtered on attributes.service_id: the service's
      own results (read with EmailClient.pull_results)
      the worker's on each topic requests arrive on (per-service:
      EMAIL_WORKER_SERVICE_SUBSCRIPTION and EMAIL_WORKER_REPLAY_SUBSCRIPTION;
      shared: EMAIL_WORKER_SUBSCRIPTION), with a dead-letter policy, a retry
      policy and an ack deadline

    Meant for the emulator and development; production creates the same names with terraform.
    Existing resources are left as they are; differences from what setup would create are
    reported as warnings (a results subscription's filter cannot be changed: delete it and
    run setup again).
    """
    settings, project = load_settings()
    if min_backoff > max_backoff:
        fail("--min-backoff must not be larger than --max-backoff", EXIT_USAGE)

    from worker.ops.topology import SubscriptionPolicy

    policy = SubscriptionPolicy(
        max_delivery_attempts=max_delivery_attempts
        or settings.redelivery.max_delivery_attempts
        or 12,
        ack_deadline_s=ack_deadline,
        min_backoff_s=min_backoff,
        max_backoff_s=max_backoff,
    )
    warnings = _ensure_topology(settings, project, policy)
    if warnings:
        click.echo(
            "email-worker: setup does not change existing resources; adjust them by hand "
            "(or delete and re-run setup) if the differences matter",
            err=True,
        )


def _ensure_topology(settings: Settings, project: str, policy: SubscriptionPolicy) -> int:
    """Create what is missing, printing a line for each resource and a warning for each
    difference from what setup would create; return how many warnings."""
    from worker.client.pubsub_rpc import new_publisher, new_subscriber
    from worker.ops.topology import ensure_topology

    warnings = 0

    def show(resource: Resource) -> None:
        nonlocal warnings
        state = "created" if resource.created else "exists "
        click.echo(f"{state}  {resource.kind:<12}  {resource.path}")
        for difference in resource.differences:
            warnings += 1
            click.echo(f"email-worker: warning: {resource.path}: {difference}", err=True)

    with common.pubsub_errors(f"setting up project {project}"):
        publisher = new_publisher(common.rpc_timeout_s(settings))
        subscriber = new_subscriber()
        try:
            ensure_topology(
                publisher,
                subscriber,
                project_id=project,
                inputs=_inputs(settings),
                results=_results(settings),
                results_topic=settings.topics.results_topic,
                dead_letter_topic=settings.topics.dead_letter_topic,
                dead_letter_subscription=settings.topics.dead_letter_subscription,
                policy=policy,
                timeout_s=common.rpc_timeout_s(settings),
                on_resource=show,
            )
        finally:
            publisher.stop()
            subscriber.close()
    return warnings


def _inputs(settings: Settings) -> list[tuple[str, str]]:
    """The topics the worker reads, each with its subscription: one per allowed service and
    the replay topic (per-service tenancy), or the one shared topic."""
    if not settings.services.per_service:
        return [(settings.topics.requests_topic, settings.topics.subscription)]
    inputs = [
        (
            settings.topics.service_topic_for(service),
            settings.topics.service_subscription_for(service),
        )
        for service in sorted(settings.services.allowed)
    ]
    inputs.append((settings.topics.replay_topic, settings.topics.replay_subscription))
    return inputs


def _results(settings: Settings) -> list[tuple[str, str]]:
    """Each allowed service with its own subscription on the results topic, in either
    tenancy (the results topic is shared in both)."""
    return [
        (service, results_subscription_for(service))
        for service in sorted(settings.services.allowed)
    ]
