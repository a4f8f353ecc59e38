"""The worker's settings: read once from the environment at the entry point, then passed down.

:class:`Settings` is a frozen set of groups, one per concern (:mod:`worker.config.groups`):
``settings.topics``, ``.services``, ``.sending``, ``.quota``, ``.ledger``, ``.redelivery``,
``.outage``, ``.pull``, ``.push``, ``.http``, ``.events``, ``.process``. Every variable has the
``EMAIL_WORKER_`` prefix except the platform's own (``GOOGLE_CLOUD_PROJECT``, ``PORT``).
Invalid values are collected and reported together: each group's ``problems()``, then the
checks that need two groups (:func:`cross_group_problems`). docs/configuration.md is
generated from the same declarations (:mod:`worker.config.reference`).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from worker.config.fields import Spec, read_group, specs
from worker.config.groups import (
    MIN_ACK_DEADLINE_S,
    SUBSCRIPTION_RE,
    Console,
    Events,
    Http,
    Ledger,
    LedgerTakeover,
    LogLevel,
    Outage,
    Process,
    Pull,
    Push,
    Quota,
    Redelivery,
    Schedule,
    Sending,
    Services,
    Tenancy,
    Topics,
)
from worker.config.names import colliding_name

__all__ = [
    "MIN_ACK_DEADLINE_S",
    "SERVICE_ID_RE",
    "LedgerTakeover",
    "LogLevel",
    "Settings",
    "SettingsError",
    "Tenancy",
    "all_specs",
    "cross_group_problems",
    "shown_value",
    "unknown_setting_names",
]

#: A service id, in settings and in requests (`worker.formats.request` uses it too).
SERVICE_ID_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_NO_PROJECT = "GOOGLE_CLOUD_PROJECT must name the Google Cloud project"
#: The prefix of the worker's own variables: one that is no setting is most likely a typo.
_PREFIX = "EMAIL_WORKER_"


class SettingsError(Exception):
    """One or more settings are missing or invalid; the message lists them all."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid settings:\n  " + "\n  ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Settings:
    """Everything the worker reads from its environment, typed and validated, by concern."""

    topics: Topics = field(default_factory=Topics)
    services: Services = field(default_factory=Services)
    sending: Sending = field(default_factory=Sending)
    quota: Quota = field(default_factory=Quota)
    ledger: Ledger = field(default_factory=Ledger)
    redelivery: Redelivery = field(default_factory=Redelivery)
    schedule: Schedule = field(default_factory=Schedule)
    outage: Outage = field(default_factory=Outage)
    pull: Pull = field(default_factory=Pull)
    push: Push = field(default_factory=Push)
    http: Http = field(default_factory=Http)
    events: Events = field(default_factory=Events)
    process: Process = field(default_factory=Process)
    console: Console = field(default_factory=Console)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str], *, required_for: Literal["pull", "serve"] | None = None
    ) -> Settings:
        """Build settings from ``environ``; raise :class:`SettingsError` listing all problems.

        With ``required_for``, what that command needs on top of valid values (see
        :meth:`missing_for`) is among the problems too: one message names everything to fix.
        """
        problems: list[str] = []
        groups = {name: read_group(group, environ, problems) for name, group in cls.groups()}
        settings = cls(**groups)
        problems.extend(settings.problems())
        if required_for is not None:
            problems.extend(settings.missing_for(required_for))
        if problems:
            raise SettingsError(problems)
        return settings

    @classmethod
    def groups(cls) -> list[tuple[str, type[Any]]]:
        """``(attribute, group class)`` for every group, in the reference's order."""
        # Each group field's default factory is the group's class.
        return [(f.name, cast(type[Any], f.default_factory)) for f in dataclasses.fields(cls)]

    @classmethod
    def documentation(cls) -> list[tuple[str, str, str]]:
        """``(variable, default, meaning)`` for every setting, for docs and ``--help``."""
        return [(s.variable, shown_value(s.default), s.doc) for s in all_specs()]

    def values(self) -> Iterator[tuple[Spec, Any]]:
        """Every setting's declaration with its value here, group by group."""
        for name, _ in self.groups():
            group = getattr(self, name)
            for spec in specs(group):
                yield spec, getattr(group, spec.attribute)

    def problems(self) -> list[str]:
        """Every invalid value or combination, each group's own checks first."""
        problems = [p for name, _ in self.groups() for p in getattr(self, name).problems()]
        return problems + cross_group_problems(self)

    def request_topic_for(self, service_id: str) -> str:
        """Where a request of ``service_id`` is published, whatever the tenancy."""
        if self.services.per_service:
            return self.topics.service_topic_for(service_id)
        return self.topics.requests_topic

    def push_subscription_path(self) -> str | None:
        """The full path pushes must come from, or None when any subscription may push."""
        subscription = self.push.subscription
        if subscription is None or "/" in subscription:
            return subscription
        return f"projects/{self.require_project()}/subscriptions/{subscription}"

    def missing_for(self, command: Literal["pull", "serve"]) -> list[str]:
        """What ``email-worker pull`` or ``serve`` needs that these settings lack, as problems:
        a project, at least one allowed service and, for ``serve``, push authentication."""
        problems = []
        if not self.topics.project_id:
            problems.append(_NO_PROJECT)
        if not self.services.allowed:
            problems.append("EMAIL_WORKER_ALLOWED_SERVICES must list at least one service")
        if command == "serve":
            problems.extend(self.push.auth_problems())
        return problems

    def require_push_auth(self) -> None:
        """For ``serve``: token verification is configured, or explicitly switched off."""
        problems = self.push.auth_problems()
        if problems:
            raise SettingsError(problems)

    def require_project(self) -> str:
        """The project id, for commands that talk to Pub/Sub."""
        if not self.topics.project_id:
            raise SettingsError([_NO_PROJECT])
        return self.topics.project_id


def cross_group_problems(settings: Settings) -> list[str]:
    """The checks that need more than one group."""
    problems = []
    if settings.ledger.claim_s < settings.sending.deadline_s + 60:
        # The last send attempt may start at the deadline and take up to a minute.
        problems.append(
            "EMAIL_WORKER_LEDGER_CLAIM_S must be at least EMAIL_WORKER_SEND_DEADLINE_S + 60"
        )
    problems.extend(_service_id_problems(settings))
    subscription = settings.push.subscription
    if (
        subscription is not None
        and SUBSCRIPTION_RE.fullmatch(subscription)
        and settings.services.per_service
    ):
        problems.extend(_per_service_push_subscription_problems(settings, subscription))
    return problems


def _service_id_problems(settings: Settings) -> list[str]:
    """Allowed and default services that are no service id, or whose topic or subscription
    would be one of the worker's own (:mod:`worker.config.names`)."""
    problems = []
    services = settings.services
    named = [("EMAIL_WORKER_ALLOWED_SERVICES", s) for s in sorted(services.allowed)]
    if services.default_id is not None:
        named.append(("EMAIL_WORKER_SERVICE_ID", services.default_id))
    for variable, service in named:
        if not SERVICE_ID_RE.fullmatch(service):
            problems.append(f"{variable}: {service!r} is not a service id")
        elif (collision := colliding_name(settings, service)) is not None:
            problems.append(f"{variable}: {collision}")
    return problems


def _per_service_push_subscription_problems(settings: Settings, subscription: str) -> list[str]:
    """Per-service tenancy honours EMAIL_WORKER_PUSH_SUBSCRIPTION (only pushes from it are
    processed), so it must be one of the subscriptions the worker reads for a service."""
    topics = settings.topics
    ours = [topics.service_subscription_for(s) for s in sorted(settings.services.allowed)]
    ours.append(topics.replay_subscription)
    project, _, name = subscription.rpartition("/subscriptions/")
    if name in ours and project in ("", f"projects/{topics.project_id}"):
        return []
    return [
        "EMAIL_WORKER_PUSH_SUBSCRIPTION: with per-service tenancy only pushes from this "
        "subscription are processed, so it must be the worker's subscription for one of "
        "EMAIL_WORKER_ALLOWED_SERVICES (EMAIL_WORKER_SERVICE_SUBSCRIPTION) or the replay "
        f"subscription, in GOOGLE_CLOUD_PROJECT: one of {', '.join(ours)}; or leave it "
        "unset to accept pushes from all of them"
    ]


def all_specs() -> list[Spec]:
    """Every setting's declaration, group by group."""
    return [spec for _, group in Settings.groups() for spec in specs(group)]


def shown_value(value: Any) -> str:
    """A setting's value as written in the environment: switches on/off, lists
    comma-separated, unset as the empty string."""
    if isinstance(value, frozenset):
        return ",".join(sorted(value))
    if isinstance(value, bool):
        return "on" if value else "off"
    return "" if value is None else str(value)


def unknown_setting_names(environ: Mapping[str, str]) -> list[str]:
    """A problem for each ``EMAIL_WORKER_*`` variable in ``environ`` that is no setting.

    Such a name is almost always a typo that leaves the intended setting at its default, so
    each problem names the closest setting when one is close enough.
    """
    known = [spec.variable for spec in all_specs()]
    # Compared without the prefix, which every name shares: EMAIL_WORKER_PORT means PORT.
    by_stem = {name.removeprefix(_PREFIX): name for name in known}
    problems = []
    for name in sorted(environ):
        if not name.startswith(_PREFIX) or name in known:
            continue
        close = difflib.get_close_matches(name.removeprefix(_PREFIX), by_stem, n=1)
        hint = f"; did you mean {by_stem[close[0]]}?" if close else ""
        problems.append(f"{name} is not a setting{hint}")
    return problems
