"""Whether the worker can run, found out before it runs: ``email-worker check`` and the start
of ``pull``, ``serve`` and ``events``.

Two stages. :func:`settings_problems` needs no network: what the command needs on top of
valid settings (the events reader's queue and role; serve's push ack deadline covering one
delivery). Such a problem is an invalid setting (exit code 2). :func:`run_checks` then asks
the outside world, its calls concurrent and all within :data:`CHECK_BUDGET_S`:

* Pub/Sub answers one call (a short deadline, no retry), and every topic and subscription
  the command uses exists, each subscription attached to the topic it should read (with
  per-service tenancy a subscription on another topic would credit its requests to the wrong
  service);
* the ledger opens and answers a read;
* every allowed service's configuration document loads and is valid (pull and serve).

A failure there is a failure at run time (exit code 1). Looking at a topic or subscription
needs ``pubsub.topics.get`` or ``pubsub.subscriptions.get``, which the deployment's worker
account lacks (it only publishes and pulls): "permission denied" therefore skips that check
instead of failing it, as Pub/Sub did answer.
"""

from __future__ import annotations

import enum
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, TypeVar

from worker.config.settings import Settings

__all__ = [
    "CHECK_BUDGET_S",
    "COMMANDS",
    "NO_CREDENTIALS",
    "Check",
    "Command",
    "State",
    "needed_subscriptions",
    "run_checks",
    "settings_problems",
]

Command = Literal["pull", "serve", "events"]
COMMANDS: tuple[Command, ...] = ("pull", "serve", "events")

#: The longest the checks wait for answers, together. Python's start and loading the
#: libraries take 1-3 s more: a command that refuses to start, or ``email-worker check``,
#: finishes within 10 s.
CHECK_BUDGET_S = 5.0
#: One Pub/Sub call's deadline; no retries.
RPC_TIMEOUT_S = 3.0
_HOW_TO_LOG_IN = (
    "run `gcloud auth application-default login`, set GOOGLE_APPLICATION_CREDENTIALS to a "
    "service account key file, or run on Google Cloud as a service account "
    "(PUBSUB_EMULATOR_HOST selects the Pub/Sub emulator, which needs none)"
)
NO_CREDENTIALS = "no Google credentials: " + _HOW_TO_LOG_IN
_NO_CREDENTIALS_IN_TIME = "no Google credentials found in time: " + _HOW_TO_LOG_IN

_T = TypeVar("_T")


class State(enum.StrEnum):
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Check:
    """One check's outcome: ``what`` was verified; ``detail`` is the problem (failed, one
    line) or why the check could not be made (skipped)."""

    what: str
    state: State
    detail: str = ""


def settings_problems(settings: Settings, command: Command) -> list[str]:
    """What ``command`` needs that ``settings`` (already valid) lack, as problems."""
    if command == "events":
        from worker.app.events_reader import events_settings_problems

        return events_settings_problems(settings)
    if command == "serve" and settings.push_ack_deadline_s is not None:
        from worker.config.budget import push_budget_problem

        problem = push_budget_problem(
            ack_deadline_s=settings.push_ack_deadline_s,
            send_deadline_s=settings.send_deadline_s,
            publish_timeout_s=settings.publish_timeout_s,
            send_rate_limited=settings.send_rate_per_s is not None,
        )
        return [] if problem is None else [problem]
    return []


def run_checks(
    settings: Settings, command: Command, *, budget_s: float = CHECK_BUDGET_S
) -> list[Check]:
    """Every check ``command`` needs, in a stable order. The settings are valid and name a
    project.

    The libraries the checks use are loaded first (CPU-bound, and needed by the command
    anyway); then the checks wait for answers concurrently, and one still waiting after
    ``budget_s`` fails.
    """
    services = [] if command == "events" else sorted(settings.allowed_services)
    with _quiet_google_auth():
        # Looking for Google credentials may wait seconds for a metadata server: meanwhile
        # the libraries load.
        credentials = None if os.environ.get("PUBSUB_EMULATOR_HOST") else _Background(_find)
        _load_libraries(settings, services)
        deadline = time.monotonic() + budget_s
        calls: list[Callable[[], list[Check]]] = [
            partial(_pubsub_checks, settings, command, deadline, credentials),
            partial(_ledger_check, settings),
        ]
        calls += [partial(_config_check, settings, service) for service in services]
        answers = _concurrently(calls, deadline)
    late = f"no answer within {budget_s:g} s"
    if credentials is not None and not credentials.done:
        pubsub_late = _NO_CREDENTIALS_IN_TIME
    else:
        pubsub_late = f"cannot reach {_pubsub_location()}: {late}"
    timed_out = [
        Check(f"{_pubsub_location()} answers", State.FAILED, pubsub_late),
        Check(
            _ledger_what(settings), State.FAILED, f"cannot use the ledger {settings.ledger}: {late}"
        ),
    ] + [
        Check(_config_what(service), State.FAILED, f"service {service}'s configuration: {late}")
        for service in services
    ]
    checks: list[Check] = []
    for answer, instead in zip(answers, timed_out, strict=True):
        if isinstance(answer, list):
            checks += answer
        elif answer is None:
            checks.append(instead)
        else:
            checks.append(Check(instead.what, State.FAILED, f"{instead.what}: {_describe(answer)}"))
    return checks


class _Background:
    """A call running in a daemon thread from the start: whether it is done, what it raised."""

    def __init__(self, call: Callable[[], object]) -> None:
        self.error: Exception | None = None
        self._call = call
        self._done = threading.Event()
        threading.Thread(target=self._run, name="check", daemon=True).start()

    def _run(self) -> None:
        try:
            self._call()
        except Exception as error:
            self.error = error
        finally:
            self._done.set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, deadline: float) -> bool:
        """Whether the call is done by ``deadline``."""
        return self._done.wait(max(0.0, deadline - time.monotonic()))


def _find() -> None:
    """Find the Google credentials the Pub/Sub clients will use (raises when there are none)."""
    import google.auth

    google.auth.default()


def _load_libraries(settings: Settings, services: list[str]) -> None:
    import worker.client.pubsub_rpc

    if settings.ledger != "none":
        import worker.ledger
    if services:
        import worker.sending.service_config  # noqa: F401


def _concurrently(
    calls: Sequence[Callable[[], _T]], deadline: float
) -> list[_T | Exception | None]:
    """Each call's result or exception, or None for one still running at ``deadline``.

    Daemon threads: a call stuck on the network must not keep the process from exiting.
    """
    answers: list[_T | Exception | None] = [None] * len(calls)

    def run(index: int) -> None:
        try:
            answers[index] = calls[index]()
        except Exception as error:
            answers[index] = error

    threads = [
        threading.Thread(target=run, args=(index,), name="check", daemon=True)
        for index in range(len(calls))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [None if thread.is_alive() else answers[n] for n, thread in enumerate(threads)]


@contextmanager
def _quiet_google_auth() -> Iterator[None]:
    """Keep google-auth's warnings (one per metadata server probe) off the terminal: a
    missing credential is reported once, as a check."""
    logger = logging.getLogger("google.auth")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _describe(error: BaseException) -> str:
    from google.auth.exceptions import DefaultCredentialsError, GoogleAuthError

    from worker.client.pubsub_rpc import describe_error

    if isinstance(error, DefaultCredentialsError):
        return NO_CREDENTIALS
    if isinstance(error, GoogleAuthError):
        return f"Google credentials were refused ({type(error).__name__})"
    return describe_error(error)


# -- Pub/Sub ---------------------------------------------------------------------------------


def _pubsub_location() -> str:
    emulator = os.environ.get("PUBSUB_EMULATOR_HOST")
    return f"the Pub/Sub emulator at {emulator}" if emulator else "Pub/Sub"


def _path(project: str, kind: str, name: str) -> str:
    return name if "/" in name else f"projects/{project}/{kind}/{name}"


def _needed_topics(settings: Settings, command: Command, project: str) -> list[tuple[str, str]]:
    """``(label, path)`` of each topic ``command`` publishes to."""
    if command == "events":
        return [("the events topic", _path(project, "topics", settings.events_topic))]
    return [
        ("the results topic", _path(project, "topics", settings.results_topic)),
        ("the dead-letter topic", _path(project, "topics", settings.dead_letter_topic)),
    ]


def needed_subscriptions(settings: Settings, project: str) -> list[tuple[str, str, str]]:
    """``(label, path, topic path)`` of each subscription the worker reads, with the topic it
    must be attached to: the same subscriptions as
    :func:`worker.processing.tenancy.subscription_sources`, without loading the delivery path
    (a refusal to start stays fast)."""
    if not settings.per_service:
        return [
            (
                "the requests subscription",
                _path(project, "subscriptions", settings.subscription),
                _path(project, "topics", settings.requests_topic),
            )
        ]
    needed = [
        (
            f"service {service}'s subscription",
            _path(project, "subscriptions", settings.service_subscription_for(service)),
            _path(project, "topics", settings.service_topic_for(service)),
        )
        for service in sorted(settings.allowed_services)
    ]
    needed.append(
        (
            "the replay subscription",
            _path(project, "subscriptions", settings.replay_subscription),
            _path(project, "topics", settings.replay_topic),
        )
    )
    return needed


def _pubsub_checks(
    settings: Settings, command: Command, deadline: float, credentials: _Background | None
) -> list[Check]:
    from worker.client.pubsub_rpc import new_publisher, new_subscriber

    project = settings.require_project()
    topics = _needed_topics(settings, command, project)
    subscriptions = [] if command == "events" else needed_subscriptions(settings, project)
    reach = f"{_pubsub_location()} answers"
    lookups = [_topic_what(*topic) for topic in topics]
    lookups += [_subscription_what(*subscription) for subscription in subscriptions]
    if credentials is not None:
        if not credentials.wait(deadline):
            return _unreachable(reach, _NO_CREDENTIALS_IN_TIME, lookups)
        if credentials.error is not None:
            return _unreachable(reach, _describe(credentials.error), lookups)
    try:
        publisher, subscriber = new_publisher(RPC_TIMEOUT_S), new_subscriber()
    except Exception as error:
        return _unreachable(reach, _describe(error), lookups)
    try:
        probe = _lookup(publisher.get_topic, {"topic": topics[0][1]})
        if isinstance(probe, Exception) and _kind(probe) in ("unreachable", "credentials"):
            detail = _describe(probe)
            if _kind(probe) == "unreachable":
                detail = f"cannot reach {_pubsub_location()}: {detail}"
            return _unreachable(reach, detail, lookups)
        checks = [Check(reach, State.OK), _topic_check(*topics[0], answer=probe)]
        calls = [partial(_topic_check, *topic, publisher=publisher) for topic in topics[1:]]
        calls += [
            partial(_subscription_check, *subscription, subscriber=subscriber)
            for subscription in subscriptions
        ]
        answers = _concurrently(calls, deadline)
        for what, answer in zip(lookups[1:], answers, strict=True):
            if isinstance(answer, Check):
                checks.append(answer)
            else:
                problem = "Pub/Sub did not answer in time" if answer is None else _describe(answer)
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
    return Check(what, State.FAILED, f"{subject}: {_describe(error)}")


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


# -- the ledger and the services' configuration ----------------------------------------------


def _ledger_what(settings: Settings) -> str:
    return f"the ledger {settings.ledger} opens and answers a read"


def _config_what(service_id: str) -> str:
    return f"service {service_id}'s configuration loads"


def _ledger_check(settings: Settings) -> list[Check]:
    from worker.ledger import LedgerKey, LedgerUnavailable, open_ledger

    what = _ledger_what(settings)
    if settings.ledger == "none":
        return [Check(what, State.SKIPPED, "EMAIL_WORKER_LEDGER=none: no ledger")]
    try:
        ledger = open_ledger(
            settings.ledger,
            project=settings.project_id,
            claim_lease_s=settings.ledger_claim_s,
            retention_s=settings.ledger_retention_s,
            takeover_wait_s=settings.send_event_wait_s,
        )
        assert ledger is not None  # only "none" opens none
        with ledger:
            ledger.get(LedgerKey("email-worker-check", "check"))
    except (LedgerUnavailable, ValueError, OSError) as error:
        return [Check(what, State.FAILED, f"cannot use the ledger: {error}")]
    except Exception as error:
        return [Check(what, State.FAILED, f"cannot use the ledger: {_describe(error)}")]
    return [Check(what, State.OK)]


def _config_check(settings: Settings, service_id: str) -> list[Check]:
    from worker.sending.errors import EmailError
    from worker.sending.service_config import load_service_config

    what = _config_what(service_id)
    try:
        config = load_service_config(
            service_id, environment=settings.environment, template=settings.service_config_url
        )
    except EmailError as error:
        return [Check(what, State.FAILED, error.message)]
    except Exception as error:
        return [Check(what, State.FAILED, f"{what}: {_describe(error)}")]
    return [Check(f"service {service_id}'s configuration {config.location} loads", State.OK)]
