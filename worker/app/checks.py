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

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial

from worker.app.check_outcomes import (
    COMMANDS,
    NO_CREDENTIALS_IN_TIME,
    Background,
    Check,
    Command,
    State,
    concurrently,
    describe,
)
from worker.app.pubsub_checks import pubsub_checks, pubsub_location
from worker.config.settings import Settings

__all__ = [
    "CHECK_BUDGET_S",
    "COMMANDS",
    "Check",
    "Command",
    "State",
    "run_checks",
    "settings_problems",
]

#: The longest the checks wait for answers, together. Python's start and loading the
#: libraries take 1-3 s more: a command that refuses to start, or ``email-worker check``,
#: finishes within 10 s.
CHECK_BUDGET_S = 5.0


def settings_problems(settings: Settings, command: Command) -> list[str]:
    """What ``command`` needs that ``settings`` (already valid) lack, as problems."""
    if command == "events":
        from worker.app.relaying import events_settings_problems

        return events_settings_problems(settings)
    from worker.app.startup import short_redelivery_problem

    problems = [short_redelivery_problem(settings)]
    if command == "serve" and settings.push.ack_deadline_s is not None:
        from worker.config.budget import push_budget_problem

        problems.append(
            push_budget_problem(
                ack_deadline_s=settings.push.ack_deadline_s,
                send_deadline_s=settings.sending.deadline_s,
                publish_timeout_s=settings.process.publish_timeout_s,
                send_rate_limited=settings.sending.rate_per_s is not None,
            )
        )
    return [problem for problem in problems if problem is not None]


def run_checks(
    settings: Settings, command: Command, *, budget_s: float = CHECK_BUDGET_S
) -> list[Check]:
    """Every check ``command`` needs, in a stable order. The settings are valid and name a
    project.

    The libraries the checks use are loaded first (CPU-bound, and needed by the command
    anyway); then the checks wait for answers concurrently, and one still waiting after
    ``budget_s`` fails.
    """
    services = [] if command == "events" else sorted(settings.services.allowed)
    with _quiet_google_auth():
        # Looking for Google credentials may wait seconds for a metadata server: meanwhile
        # the libraries load.
        credentials = None if os.environ.get("PUBSUB_EMULATOR_HOST") else Background(_find)
        _load_libraries(settings, services)
        deadline = time.monotonic() + budget_s
        calls: list[Callable[[], list[Check]]] = [
            partial(pubsub_checks, settings, command, deadline, credentials),
            partial(_ledger_check, settings),
        ]
        calls += [partial(_config_check, settings, service) for service in services]
        answers = concurrently(calls, deadline)
    late = f"no answer within {budget_s:g} s"
    if credentials is not None and not credentials.done:
        pubsub_late = NO_CREDENTIALS_IN_TIME
    else:
        pubsub_late = f"cannot reach {pubsub_location()}: {late}"
    timed_out = [
        Check(f"{pubsub_location()} answers", State.FAILED, pubsub_late),
        Check(
            _ledger_what(settings),
            State.FAILED,
            f"cannot use the ledger {settings.ledger.url}: {late}",
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
            checks.append(Check(instead.what, State.FAILED, f"{instead.what}: {describe(answer)}"))
    return checks


def _find() -> None:
    """Find the Google credentials the Pub/Sub clients will use (raises when there are none)."""
    import google.auth

    google.auth.default()


def _load_libraries(settings: Settings, services: list[str]) -> None:
    import worker.client.pubsub_rpc

    if settings.ledger.url != "none":
        import worker.ledger
    if services:
        import worker.sending.service_config  # noqa: F401


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


# -- the ledger and the services' configuration ----------------------------------------------


def _ledger_what(settings: Settings) -> str:
    return f"the ledger {settings.ledger.url} opens and answers a read"


def _config_what(service_id: str) -> str:
    return f"service {service_id}'s configuration loads"


def _ledger_check(settings: Settings) -> list[Check]:
    from worker.ledger import LedgerKey, LedgerUnavailable, open_ledger

    what = _ledger_what(settings)
    if settings.ledger.url == "none":
        return [Check(what, State.SKIPPED, "EMAIL_WORKER_LEDGER=none: no ledger")]
    try:
        ledger = open_ledger(
            settings.ledger.url,
            project=settings.topics.project_id,
            claim_lease_s=settings.ledger.claim_s,
            retention_s=settings.ledger.retention_s,
            takeover_wait_s=settings.ledger.send_event_wait_s,
        )
        assert ledger is not None  # only "none" opens none
        with ledger:
            ledger.get(LedgerKey("email-worker-check", "check"))
    except (LedgerUnavailable, ValueError, OSError) as error:
        return [Check(what, State.FAILED, f"cannot use the ledger: {error}")]
    except Exception as error:
        return [Check(what, State.FAILED, f"cannot use the ledger: {describe(error)}")]
    return [Check(what, State.OK)]


def _config_check(settings: Settings, service_id: str) -> list[Check]:
    from worker.sending.errors import EmailError
    from worker.sending.service_config import load_service_config

    what = _config_what(service_id)
    try:
        config = load_service_config(
            service_id,
            environment=settings.services.config_environment,
            template=settings.services.config_url,
        )
    except EmailError as error:
        return [Check(what, State.FAILED, error.message)]
    except Exception as error:
        return [Check(what, State.FAILED, f"{what}: {describe(error)}")]
    return [Check(f"service {service_id}'s configuration {config.location} loads", State.OK)]
