"""The worker's own Pub/Sub names, and the rule that keeps a service's names off them.

With per-service tenancy a service's topic and the worker's subscription on it are made from
templates (EMAIL_WORKER_SERVICE_TOPIC, EMAIL_WORKER_SERVICE_SUBSCRIPTION, by default
``email-requests-{service}`` and ``email-requests-{service}-worker``). A service id must not
turn either into one of the worker's own names: service ``dead-letter`` would own the
dead-letter topic ``email-requests-dead-letter``, publish into it as itself, and have the
worker read its own dead letters as that service's requests.

Each service also reads its own results on a subscription of its own on the results topic,
``email-results-{service}`` (:data:`RESULTS_SUBSCRIPTION_TEMPLATE`, terraform's
``pubsub_names.results_subscription`` default), filtered by :func:`results_filter` on the
``service_id`` attribute every result carries. The name is a constant rather than a setting:
the worker never reads these subscriptions, only ``setup`` creates them and services read them.

The rule: a service id is refused when its topic name, its subscription name or its results
subscription name, each taken without any ``projects/P/topics/`` or
``projects/P/subscriptions/`` prefix, equals any name in :data:`OWN_NAME_SETTINGS` (topics
and subscriptions compared as one set, so a name never means two things). It is applied to
the configured names, whatever the tenancy; settings (EMAIL_WORKER_ALLOWED_SERVICES,
EMAIL_WORKER_SERVICE_ID), ``setup``, ``send`` and the pipeline all use
:func:`colliding_name`. terraform's checks.tf mirrors it.
"""

from __future__ import annotations

from typing import Protocol

__all__ = [
    "OWN_NAME_SETTINGS",
    "RESULTS_SUBSCRIPTION_TEMPLATE",
    "colliding_name",
    "results_filter",
    "results_subscription_for",
    "short_name",
]

#: Each service's subscription on the results topic; ``{service}`` stands for the service id.
RESULTS_SUBSCRIPTION_TEMPLATE = "email-results-{service}"

#: The settings (attribute of ``settings.topics``, variable) holding the worker's own topics
#: and subscriptions.
OWN_NAME_SETTINGS = (
    ("requests_topic", "EMAIL_WORKER_REQUESTS_TOPIC"),
    ("subscription", "EMAIL_WORKER_SUBSCRIPTION"),
    ("results_topic", "EMAIL_WORKER_RESULTS_TOPIC"),
    ("dead_letter_topic", "EMAIL_WORKER_DEAD_LETTER_TOPIC"),
    ("dead_letter_subscription", "EMAIL_WORKER_DEAD_LETTER_SUBSCRIPTION"),
    ("replay_topic", "EMAIL_WORKER_REPLAY_TOPIC"),
    ("replay_subscription", "EMAIL_WORKER_REPLAY_SUBSCRIPTION"),
    ("events_topic", "EMAIL_WORKER_EVENTS_TOPIC"),
)


class _Topics(Protocol):
    """What the rule reads from the settings' topics."""

    def service_topic_for(self, service_id: str) -> str: ...
    def service_subscription_for(self, service_id: str) -> str: ...


class _Names(Protocol):
    """Settings, as far as the rule is concerned: their topics."""

    @property
    def topics(self) -> _Topics: ...


def short_name(name: str) -> str:
    """``name`` without its ``projects/P/topics/`` or ``projects/P/subscriptions/`` prefix."""
    return name.rsplit("/", 1)[-1]


def results_subscription_for(service_id: str, template: str = RESULTS_SUBSCRIPTION_TEMPLATE) -> str:
    """The name of ``service_id``'s own subscription on the results topic."""
    return template.replace("{service}", service_id)


def results_filter(service_id: str) -> str:
    """The filter that admits ``service_id``'s results only, as terraform writes it.

    Service ids (``[a-z0-9][a-z0-9_-]*``) need no escaping inside the string literal.
    """
    return f'attributes.service_id = "{service_id}"'


def colliding_name(settings: _Names, service_id: str) -> str | None:
    """Why ``service_id``'s topic, subscription or results subscription would be one of the
    worker's own names, as a sentence for an error message; None when none would."""
    topics = settings.topics
    own = {
        short_name(getattr(topics, attribute)): variable
        for attribute, variable in reversed(OWN_NAME_SETTINGS)
    }
    for kind, name in (
        ("topic", topics.service_topic_for(service_id)),
        ("subscription", topics.service_subscription_for(service_id)),
        ("results subscription", results_subscription_for(service_id)),
    ):
        variable = own.get(short_name(name))
        if variable is not None:
            return (
                f"service {service_id!r} cannot be served: its {kind} {short_name(name)} is "
                f"the worker's own {variable}"
            )
    return None
