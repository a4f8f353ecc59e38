"""The Pub/Sub part of the start-up checks (:mod:`worker.app.checks`): Pub/Sub answers, and
every topic and subscription the command uses exists, each subscription attached to the topic
it must read. One call each, with a short deadline and no retry."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from typing import Any

from worker.app.check_outcomes import (
    NO_CREDENTIALS_IN_TIME,
    Background,
    Check,
    Command,
    State,
    concurrently,
    describe,
)
from worker.config.settings import Settings

__all__ = ["RPC_TIMEOUT_S", "needed_subscriptions", "pubsub_checks", "pubsub_location"]

#: One Pub/Sub call's deadline; no retries.
RPC_TIMEOUT_S = 3.0


def pubsub_location() -> str:
    emulator = os.environ.get("PUBSUB_EMULATOR_HOST")
    return f"the Pub/Sub emulator at {emulator}" if emulator else "Pub/Sub"


def _path(project: str, kind: str, name: str) -> str:
    return name if "/" in name else f"projects/{project}/{kind}/{name}"


def _needed_topics(settings: Settings, command: Command, project: str) -> list[tuple[str, str]]:
    """``(label, path)`` of each topic ``command`` publishes to."""
    if command == "events":
        return [("the events topic", _path(project, "topics", settings.topics.events_topic))]
    return [
        ("the results topic", _path(project, "topics", settings.topics.results_topic)),
        ("the dead-letter topic", _path(project, "topics", settings.topics.dead_letter_topic)),
    ]


def needed_subscriptions(settings: Settings, project: str) -> list[tuple[str, str, str]]:
    """``(label, path, topic path)`` of each subscription the worker reads, with the topic it
    must be attached to: the same subscriptions as
    :func:`worker.processing.tenancy.subscription_sources`, without loading the delivery path
    (a refusal to start stays fast)."""
    if not settings.services.per_service:
        return [
            (
                "the requests subscription",
                _path(project, "subscriptions", settings.topics.subscription),
                _path(project, "topics", settings.topics.requests_topic),
            )
        ]
    needed = [
        (
            f"service {service}'s subscription",
            _path(project, "subscriptions", settings.topics.service_subscription_for(service)),
            _path(project, "topics", settings.topics.service_topic_for(service)),
        )
        for service in sorted(settings.services.allowed)
    ]
    needed.append(
        (
            "the replay subscription",
            _path(project, "subscriptions", settings.topics.replay_subscription),
            _path(project, "topics", settings.topics.replay_topic),
        )
    )
    return needed


def pubsub_checks(
    settings: Settings, command: Command, deadline: float, credentials: Background | None
) -> list[Check]:
    """Whether Pub/Sub answers, then (concurrently, by ``deadline``) each topic and
    subscription ``command`` uses. ``credentials``: the search for Google credentials, under
    way (None with the emulator, which needs none)."""
    from worker.client.pubsub_rpc import new_publisher, new_subscriber

    project = settings.require_project()
    topics = _needed_topics(settings, command, project)
    subscriptions = [] if command == "events" else needed_subscriptions(settings, project)
    reach = f"{pubsub_location()} answers"
    lookups = [_topic_what(*topic) for topic in topics]
    lookups += [_subscription_what(*subscription) for subscription in subscriptions]
    if credentials is not None:
        if not credentials.wait(deadline):
            return _unreachable(reach, NO_CREDENTIALS_IN_TIME, lookups)
        if credentials.error is not None:
            return _unreachable(reach, describe(credentials.error), lookups)
    try:
        publisher, subscriber = new_publisher(RPC_TIMEOUT_S), new_subscriber()
    except Exception as error:
        return _unreachable(reach, describe(error), lookups)
    try:
        probe = _lookup(publisher.get_topic, {"topic": topics[0][1]})
        if isinstance(probe, Exception) and _kind(probe) in ("unreachable", "credentials"):
            detail = describe(probe)
            if _kind(probe) == "unreachable":
                detail = f"cannot reach {pubsub_location()}: {detail}"
            return _unreachable(reach, detail, lookups)
        checks = [Check(reach, State.OK), _topic_check(*topics[0], answer=probe)]
        calls = [partial(_topic_check, *topic, publisher=publisher) for topic in topics[1:]]
        calls += [
            partial(_subscription_check, *subscription, subscriber=subscriber)
            for subscription in subscriptions
        ]
        answers = concurrently(calls, deadline)
        for what, answer in zip(lookups[1:], answers, strict=True):
            if isinstance(answer, Check):
                checks.append(answer)
            else:
                problem = "Pub/Sub did not answer in time" if answer is None else describe(answer)
                checks.append(Check(what, State.FAILED, f"{what}: {problem}"))
        return checks
    finally:
        publisher.stop()
        subscriber.close()


def _unreachable(reach: str, problem: str, lookups: list[str]) -> list[Check]:
    skipped = [Check(what, State.SKIPPED, "Pub/Sub was not reached") for what in lookups]
    return [Check(reach, State.FAILED, problem), *skipped]


def _lookup(call: Callable[..., Any], request: dict[str, str]) -> Any:
    """``call``'s answer to ``request`` within one short deadline, or the exception."""
    try:
        return call(request=request, retry=None, timeout=RPC_TIMEOUT_S)
    except Exception as error:
        return error


def _kind(error: Exception) -> str:
    from google.api_core import exceptions as gexc
    from google.auth.exceptions import GoogleAuthError

    from worker.client.pubsub_rpc import is_unreachable

    if isinstance(error, gexc.NotFound):
        return "missing"
    if isinstance(error, gexc.PermissionDenied):
        return "denied"
    if isinstance(error, GoogleAuthError | gexc.Unauthenticated):
        return "credentials"
    return "unreachable" if is_unreachable(error) else "refused"


def _lookup_failure(what: str, subject: str, error: Exception, permission: str) -> Check:
    kind = _kind(error)
    if kind == "missing":
        return Check(what, State.FAILED, f"{subject} does not exist")
    if kind == "denied":
        return Check(what, State.SKIPPED, f"permission denied (seeing it takes {permission})")
    return Check(what, State.FAILED, f"{subject}: {describe(error)}")


def _topic_what(label: str, path: str) -> str:
    return f"{label} {path} exists"


def _topic_check(label: str, path: str, *, publisher: Any = None, answer: Any = None) -> Check:
    if answer is None:
        answer = _lookup(publisher.get_topic, {"topic": path})
    if isinstance(answer, Exception):
        what = _topic_what(label, path)
        return _lookup_failure(what, f"{label} {path}", answer, "pubsub.topics.get")
    return Check(_topic_what(label, path), State.OK)


def _subscription_what(label: str, path: str, topic: str) -> str:
    return f"{label} {path} exists, attached to {topic}"


def _subscription_check(label: str, path: str, topic: str, *, subscriber: Any) -> Check:
    what = _subscription_what(label, path, topic)
    answer = _lookup(subscriber.get_subscription, {"subscription": path})
    if isinstance(answer, Exception):
        return _lookup_failure(what, f"{label} {path}", answer, "pubsub.subscriptions.get")
    if answer.topic != topic:
        return Check(
            what, State.FAILED, f"{label} {path} is attached to {answer.topic}, not to {topic}"
        )
    return Check(what, State.OK)
