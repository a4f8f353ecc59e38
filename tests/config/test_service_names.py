"""A service id whose topic or subscription would be one of the worker's own names is refused:
in the settings (so by every command that reads them), by ``setup``, ``send`` and the pipeline.

With the default templates, service ``dead-letter`` would publish to
``email-requests-dead-letter``, the worker's dead-letter topic.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.processing.test_pipeline import CONFIG, sent
from tests.support.cli_runner import cli_env, invoke
from tests.support.pubsub_emulator import PubSubEmulator, unique_name
from tests.support.worker_stack import Stack, make_tenant_stack, request
from worker.app.cli import main
from worker.config.groups import Services
from worker.config.names import colliding_name
from worker.config.settings import Settings, SettingsError
from worker.processing.pipeline import Delivery, Deps, Status, process
from worker.processing.tenancy import Source
from worker.sending.session_cache import SessionCache
from worker.sending.testing import RecordingSession

# Templates under which a short service id lands on each of the worker's default names.
SHORT = {"EMAIL_WORKER_SERVICE_TOPIC": "email-{service}"}
SHORT_SUBSCRIPTION = {"EMAIL_WORKER_SERVICE_SUBSCRIPTION": "email-{service}-worker"}
COLLISIONS = [
    ({}, "dead-letter", "topic email-requests-dead-letter", "EMAIL_WORKER_DEAD_LETTER_TOPIC"),
    (
        {},
        "dead-letter-ops",
        "topic email-requests-dead-letter-ops",
        "EMAIL_WORKER_DEAD_LETTER_SUBSCRIPTION",
    ),
    (SHORT, "requests", "topic email-requests", "EMAIL_WORKER_REQUESTS_TOPIC"),
    (SHORT, "results", "topic email-results", "EMAIL_WORKER_RESULTS_TOPIC"),
    (SHORT, "replays", "topic email-replays", "EMAIL_WORKER_REPLAY_TOPIC"),
    (SHORT, "events", "topic email-events", "EMAIL_WORKER_EVENTS_TOPIC"),
    (
        SHORT_SUBSCRIPTION,
        "requests",
        "subscription email-requests-worker",
        "EMAIL_WORKER_SUBSCRIPTION",
    ),
    (
        SHORT_SUBSCRIPTION,
        "replays",
        "subscription email-replays-worker",
        "EMAIL_WORKER_REPLAY_SUBSCRIPTION",
    ),
]


@pytest.mark.parametrize(("templates", "service", "name", "variable"), COLLISIONS)
def test_an_allowed_service_whose_names_would_be_the_workers_own_is_a_settings_problem(
    templates: dict[str, str], service: str, name: str, variable: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({**templates, "EMAIL_WORKER_ALLOWED_SERVICES": f"billing,{service}"})
    [problem] = caught.value.problems
    assert problem == (
        f"EMAIL_WORKER_ALLOWED_SERVICES: service {service!r} cannot be served: its {name} is "
        f"the worker's own {variable}"
    )


def test_a_full_resource_path_collides_like_its_name() -> None:
    env = {"EMAIL_WORKER_DEAD_LETTER_TOPIC": "projects/p/topics/email-requests-dead-letter"}
    with pytest.raises(SettingsError, match="EMAIL_WORKER_DEAD_LETTER_TOPIC"):
        Settings.from_env({**env, "EMAIL_WORKER_ALLOWED_SERVICES": "dead-letter"})


def test_a_default_service_whose_topic_is_the_dead_letter_topic_is_a_settings_problem() -> None:
    with pytest.raises(SettingsError, match="EMAIL_WORKER_SERVICE_ID: service 'dead-letter'"):
        Settings.from_env({"EMAIL_WORKER_SERVICE_ID": "dead-letter"})


def test_a_service_is_accepted_once_the_dead_letter_topic_has_another_name() -> None:
    settings = Settings.from_env(
        {
            "EMAIL_WORKER_ALLOWED_SERVICES": "dead-letter",
            "EMAIL_WORKER_DEAD_LETTER_TOPIC": "email-dead-letters",
        }
    )
    assert colliding_name(settings, "dead-letter") is None


def test_pull_refuses_to_start_with_a_colliding_service() -> None:
    env = {"GOOGLE_CLOUD_PROJECT": "p", "EMAIL_WORKER_ALLOWED_SERVICES": "billing,dead-letter"}
    result = CliRunner().invoke(main, ["pull"], env=env)
    assert result.exit_code == 2
    assert "its topic email-requests-dead-letter is the worker's own" in result.stderr
    assert "Traceback" not in result.output


def test_setup_refuses_a_colliding_service_and_creates_nothing(pubsub_env: PubSubEmulator) -> None:
    suffix = unique_name("n")
    env = {
        "PUBSUB_EMULATOR_HOST": pubsub_env.host,
        "GOOGLE_CLOUD_PROJECT": pubsub_env.project_id,
        "EMAIL_WORKER_TENANCY": "per-service",
        "EMAIL_WORKER_ALLOWED_SERVICES": "billing,dead-letter",
        "EMAIL_WORKER_SERVICE_TOPIC": f"in-{suffix}-{{service}}",
        "EMAIL_WORKER_DEAD_LETTER_TOPIC": f"in-{suffix}-dead-letter",
    }
    result = CliRunner().invoke(main, ["setup"], env=env)
    assert result.exit_code == 2
    assert f"its topic in-{suffix}-dead-letter is the worker's own" in result.stderr
    topics = pubsub_env.publisher.list_topics(
        request={"project": f"projects/{pubsub_env.project_id}"}
    )
    assert not [t.name for t in topics if suffix in t.name]


@pytest.fixture
def stack(pubsub_env: Any, fault_proxy: Any, tmp_path: Path) -> Stack:
    return make_tenant_stack(pubsub_env, tmp_path, fault_proxy.endpoint)


def test_send_refuses_to_publish_as_a_colliding_service(stack: Stack) -> None:
    # Under the template "{service}", the service named like the dead-letter topic owns it.
    dead_letter_topic = stack.env["EMAIL_WORKER_DEAD_LETTER_TOPIC"]
    env = cli_env(stack, EMAIL_WORKER_SERVICE_TOPIC="{service}")
    hello = ("--to", "me@example.org", "--subject", "Hi", "--text", "Hello")
    result = invoke(env, "send", "--service", dead_letter_topic, *hello)
    assert result.exit_code == 2
    assert "is the worker's own EMAIL_WORKER_DEAD_LETTER_TOPIC; nothing was published" in (
        result.stderr
    )
    assert stack.nothing_more(stack.queue.dead_letter_subscription, wait_s=1)


def test_the_pipeline_refuses_a_colliding_service_even_if_settings_allow_it() -> None:
    # Settings built in code skip the environment's checks; the pipeline checks again.
    settings = Settings(services=Services(allowed=frozenset({"dead-letter"})))
    session = RecordingSession(sent, service_config=CONFIG)
    data = json.dumps(request(service_id="dead-letter")).encode()
    delivery = Delivery(data, {}, "m1", 1, source=Source.service("dead-letter"))
    outcome = process(delivery, Deps(settings, SessionCache(lambda _: session, ttl_s=60)))
    assert (outcome.status, outcome.error_code) == (Status.REJECTED, "unknown_service")
    assert session.calls == 0
