"""Per-service tenancy through push: which subscription a push is from, and whose token says so.

With per-service tenancy the envelope's subscription names the publishing service. A
per-subscription audience (EMAIL_WORKER_PUSH_AUDIENCE with ``{subscription}``) binds each
token to its subscription, so a token captured from one subscription's push cannot carry an
envelope naming another. EMAIL_WORKER_PUSH_SUBSCRIPTION is honoured: only pushes from that
subscription are processed. Tokens are signed by the metadata stand-in, as in test_push_auth.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.metadata_server import MetadataServer
from tests.support.push import PUSHER, PushApp, auth_env, envelope, push_app_on
from tests.support.worker_stack import Stack, make_tenant_stack, request
from worker.config.settings import Settings, SettingsError

TEMPLATE = "https://email-worker.test/push/{subscription}"


@pytest.fixture
def stack(pubsub_env: Any, aws_env: Any, tmp_path: Path) -> Stack:
    return make_tenant_stack(pubsub_env, tmp_path, aws_env.endpoint)


def subscription_of(stack: Stack, service: str) -> str:
    """The worker's subscription on ``service``'s topic: its short name."""
    return stack.settings().topics.service_subscription_for(service)


def path_of(stack: Stack, name: str) -> str:
    return f"projects/{stack.emulator.project_id}/subscriptions/{name}"


@pytest.fixture
def per_subscription(stack: Stack, clean_metadata: MetadataServer) -> Iterator[PushApp]:
    env = {**auth_env(clean_metadata.certs_url), "EMAIL_WORKER_PUSH_AUDIENCE": TEMPLATE}
    with push_app_on(stack, **env) as app:
        yield app


def token_for(server: MetadataServer, subscription: str) -> str:
    return server.mint_token(TEMPLATE.replace("{subscription}", subscription), email=PUSHER)


def shop_request(**fields: Any) -> dict[str, Any]:
    return request(service_id="shop", **{"from": "shop@example.com", **fields})


def test_a_token_for_one_subscription_with_an_envelope_naming_another_is_refused(
    stack: Stack, per_subscription: PushApp, clean_metadata: MetadataServer, moto: Any
) -> None:
    captured = token_for(clean_metadata, subscription_of(stack, "shop"))
    forged = envelope(request(), subscription=path_of(stack, subscription_of(stack, "billing")))
    response = per_subscription.post(forged, token=captured)
    assert response.status_code == 403
    reason = "wrong_subscription_audience"
    assert per_subscription.value("email_worker_push_auth_failures_total", reason=reason) == 1
    assert per_subscription.requests_processed() == 0
    assert moto.sent_messages() == []


def test_a_token_for_the_subscription_its_envelope_names_is_processed(
    stack: Stack, per_subscription: PushApp, clean_metadata: MetadataServer, moto: Any
) -> None:
    name = subscription_of(stack, "shop")
    response = per_subscription.post(
        envelope(shop_request(), subscription=path_of(stack, name)),
        token=token_for(clean_metadata, name),
    )
    assert response.status_code == 204
    [result] = stack.results(1)
    assert (result["service_id"], result["status"]) == ("shop", "sent")


def test_a_token_for_an_audience_outside_the_template_is_refused_as_unauthenticated(
    stack: Stack, per_subscription: PushApp, clean_metadata: MetadataServer
) -> None:
    token = clean_metadata.mint_token("https://email-worker.test/elsewhere", email=PUSHER)
    name = subscription_of(stack, "shop")
    response = per_subscription.post(
        envelope(request(), subscription=path_of(stack, name)), token=token
    )
    assert response.status_code == 401
    reason = "wrong_audience"
    assert per_subscription.value("email_worker_push_auth_failures_total", reason=reason) == 1


def test_one_audience_for_every_subscription_still_works_without_the_placeholder(
    stack: Stack, clean_metadata: MetadataServer, moto: Any
) -> None:
    # The weaker binding: the token vouches for the signer, the envelope names the service.
    with push_app_on(stack, **auth_env(clean_metadata.certs_url)) as push:
        name = subscription_of(stack, "shop")
        token = clean_metadata.mint_token(auth_env("")["EMAIL_WORKER_PUSH_AUDIENCE"], email=PUSHER)
        response = push.post(
            envelope(shop_request(), subscription=path_of(stack, name)), token=token
        )
    assert response.status_code == 204


def test_an_audience_with_the_placeholder_twice_is_a_settings_problem() -> None:
    with pytest.raises(SettingsError, match=re.escape("{subscription} once at most")):
        Settings.from_env({"EMAIL_WORKER_PUSH_AUDIENCE": "a/{subscription}/{subscription}"})


def test_the_push_subscription_setting_is_honoured_under_per_service_tenancy(
    stack: Stack, moto: Any
) -> None:
    billing = subscription_of(stack, "billing")
    with push_app_on(stack, EMAIL_WORKER_PUSH_SUBSCRIPTION=billing) as push:
        other = push.post(
            envelope(shop_request(), subscription=path_of(stack, subscription_of(stack, "shop")))
        )
        own = push.post(envelope(request(), subscription=path_of(stack, billing), message_id="2"))
        [result] = stack.results(1)
    assert (other.status_code, own.status_code) == (403, 204)
    assert (result["service_id"], result["status"]) == ("billing", "sent")
    assert [m.source for m in moto.sent_messages()] == ["billing@example.com"]


@pytest.mark.parametrize(
    "subscription",
    ["email-requests-worker", "projects/another-project/subscriptions/email-requests-shop-worker"],
)
def test_a_push_subscription_the_per_service_worker_does_not_read_is_a_settings_problem(
    subscription: str,
) -> None:
    env = {
        "GOOGLE_CLOUD_PROJECT": "p",
        "EMAIL_WORKER_ALLOWED_SERVICES": "billing,shop",
        "EMAIL_WORKER_PUSH_SUBSCRIPTION": subscription,
    }
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    [problem] = caught.value.problems
    assert problem.startswith("EMAIL_WORKER_PUSH_SUBSCRIPTION: with per-service tenancy")
    assert "email-requests-billing-worker, email-requests-shop-worker, email-replays-worker" in (
        problem
    )


def test_a_push_subscription_may_name_a_services_subscription_by_its_full_path() -> None:
    env = {
        "GOOGLE_CLOUD_PROJECT": "p",
        "EMAIL_WORKER_ALLOWED_SERVICES": "billing,shop",
        "EMAIL_WORKER_PUSH_SUBSCRIPTION": "projects/p/subscriptions/email-requests-shop-worker",
    }
    assert Settings.from_env(env).push_subscription_path() == env["EMAIL_WORKER_PUSH_SUBSCRIPTION"]
