"""Push authentication: only requests Pub/Sub signed for our audience and service account get in.

Tokens are signed by the metadata stand-in's key (served at its certs URL, the
EMAIL_WORKER_PUSH_CERTS_URL of these tests) or forged by hand. A forged request must be
refused before anything is processed: nothing sent, nothing published.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.support.clock import ManualClock
from tests.support.metadata_server import ISSUER, MetadataServer
from tests.support.push import AUDIENCE, PUSHER, PushApp, auth_env, envelope, push_app_on
from tests.support.worker_stack import Stack, make_stack, request
from worker.transports.push_auth import AuthFailure, CertsCache, CertsUnavailable, PushAuthenticator


@pytest.fixture
def stack(pubsub_env: Any, aws_env: Any, tmp_path: Path) -> Stack:
    return make_stack(pubsub_env, tmp_path, aws_env.endpoint)


@pytest.fixture
def push(stack: Stack, clean_metadata: MetadataServer) -> Iterator[PushApp]:
    with push_app_on(stack, **auth_env(clean_metadata.certs_url)) as app:
        yield app


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], claims: dict[str, Any], sign: Callable[[bytes], bytes]) -> str:
    signed = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    return f"{signed}.{b64url(sign(signed.encode()))}"


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    document = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "email": PUSHER,
        "email_verified": True,
        "sub": "1234",
        "iat": now,
        "exp": now + 3600,
    }
    document.update(overrides)
    return document


def good_token(server: MetadataServer, **overrides: Any) -> str:
    return server.mint_token(AUDIENCE, email=PUSHER, **overrides)


def tampered(token: str) -> str:
    """``token`` with its claims replaced by ours and its signature kept."""
    header, _, signature = token.split(".")
    return f"{header}.{b64url(json.dumps(claims()).encode())}.{signature}"


# Each forged token: (builder, expected status, reason counted in the metrics).
Forgery = Callable[[MetadataServer], str | None]
FORGERIES: dict[str, tuple[Forgery, int, str]] = {
    "no-token": (lambda s: None, 401, "missing_token"),
    "garbage": (lambda s: "garbage", 401, "malformed_token"),
    "garbage-segments": (lambda s: "not.a.jwt", 401, "malformed_token"),
    "alg-none": (
        lambda s: forge({"alg": "none", "typ": "JWT"}, claims(), lambda _: b""),
        401,
        "unsupported_algorithm",
    ),
    "hs256-keyed-with-the-public-certificate": (
        lambda s: forge(
            {"alg": "HS256", "typ": "JWT", "kid": s.key.kid},
            claims(),
            lambda signed: hmac.new(s.key.cert_pem.encode(), signed, hashlib.sha256).digest(),
        ),
        401,
        "unsupported_algorithm",
    ),
    "es256-header": (
        lambda s: forge({"alg": "ES256", "kid": s.key.kid}, claims(), lambda _: b"x" * 64),
        401,
        "unsupported_algorithm",
    ),
    "unknown-signing-key": (
        lambda s: good_token(s, unpublished_key=True),
        401,
        "invalid_signature",
    ),
    "unknown-key-id": (
        lambda s: forge({"alg": "RS256", "kid": "rotated-away"}, claims(), s.key.signer.sign),
        401,
        "unknown_key",
    ),
    "no-key-id": (
        lambda s: forge({"alg": "RS256", "typ": "JWT"}, claims(), s.key.signer.sign),
        401,
        "unknown_key",
    ),
    "tampered-claims": (
        lambda s: tampered(s.mint_token(AUDIENCE, email="someone@else.example")),
        401,
        "invalid_signature",
    ),
    "wrong-audience": (
        lambda s: s.mint_token("https://another-service.example", email=PUSHER),
        401,
        "wrong_audience",
    ),
    "expired": (
        lambda s: good_token(s, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600),
        401,
        "expired",
    ),
    "issued-in-the-future": (
        lambda s: good_token(s, iat=int(time.time()) + 3600, exp=int(time.time()) + 7200),
        401,
        "expired",
    ),
    "wrong-issuer": (
        lambda s: good_token(s, iss="https://issuer.example"),
        401,
        "wrong_issuer",
    ),
    "wrong-email": (
        lambda s: s.mint_token(AUDIENCE, email="attacker@evil.iam.gserviceaccount.com"),
        403,
        "wrong_email",
    ),
    "no-email": (
        lambda s: s.mint_token(AUDIENCE, email=PUSHER, include_email=False),
        403,
        "wrong_email",
    ),
    "email-not-verified": (
        lambda s: good_token(s, email_verified=False),
        403,
        "email_not_verified",
    ),
    "email-verified-as-a-string": (
        lambda s: good_token(s, email_verified="true"),
        403,
        "email_not_verified",
    ),
}


def test_a_push_signed_by_google_for_our_audience_and_account_is_processed(
    push: PushApp, clean_metadata: MetadataServer, stack: Stack, moto: Any
) -> None:
    response = push.post(envelope(request(request_id="signed")), token=good_token(clean_metadata))
    assert response.status_code == 204
    [result] = stack.results(1)
    assert result["status"] == "sent"
    assert len(moto.sent_messages()) == 1


def test_the_issuer_without_scheme_is_accepted_too(
    push: PushApp, clean_metadata: MetadataServer
) -> None:
    token = good_token(clean_metadata, iss="accounts.google.com")
    assert push.post(envelope(request()), token=token).status_code == 204


@pytest.mark.parametrize("case", sorted(FORGERIES))
def test_a_forged_push_is_refused_and_nothing_is_processed(
    push: PushApp, clean_metadata: MetadataServer, moto: Any, case: str
) -> None:
    build, status, reason = FORGERIES[case]
    response = push.post(envelope(request()), token=build(clean_metadata))
    assert response.status_code == status
    assert push.value("email_worker_push_auth_failures_total", reason=reason) == 1
    assert push.requests_processed() == 0
    assert moto.sent_messages() == []


def test_a_flood_of_refusals_logs_one_line_while_the_metric_counts_each(
    push: PushApp, clean_metadata: MetadataServer
) -> None:
    token = clean_metadata.mint_token(AUDIENCE, email="attacker@evil.iam.gserviceaccount.com")
    with capture_logs() as logs:
        for _ in range(20):
            assert push.post(envelope(request()), token=token).status_code == 403
    assert [e["event"] for e in logs] == ["push request refused"]
    assert push.value("email_worker_push_auth_failures_total", reason="wrong_email") == 20


def test_a_non_bearer_authorization_is_refused(push: PushApp, moto: Any) -> None:
    response = push.post(envelope(request()), headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert moto.sent_messages() == []


def test_authentication_comes_before_any_other_check(push: PushApp) -> None:
    response = push.client.post(
        "/pubsub/push", content=b"x", headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 401


def test_the_token_is_never_logged(push: PushApp, clean_metadata: MetadataServer) -> None:
    token = clean_metadata.mint_token(AUDIENCE, email="attacker@evil.iam.gserviceaccount.com")
    with capture_logs() as logs:
        response = push.post(envelope(request()), token=token)
    assert response.status_code == 403
    assert logs, "the refusal is logged"
    assert {"event": "push request refused", "status": 403, "reason": "wrong_email"}.items() <= (
        logs[0].items()
    )
    text = json.dumps(logs, default=str)
    assert token not in text
    assert token.split(".")[1] not in text
    assert "attacker" not in text


def test_certificates_are_fetched_once_for_many_requests(
    push: PushApp, clean_metadata: MetadataServer
) -> None:
    for n in range(3):
        token = good_token(clean_metadata)
        assert push.post(envelope(request(), message_id=str(n)), token=token).status_code == 204
    assert clean_metadata.count("/oauth2/v1/certs") == 1


def test_without_certificates_a_push_is_answered_503_and_not_processed(
    push: PushApp, clean_metadata: MetadataServer, moto: Any
) -> None:
    clean_metadata.fail("/oauth2/v1/certs", 500, times=None)
    response = push.post(envelope(request()), token=good_token(clean_metadata))
    assert response.status_code == 503
    assert push.requests_processed() == 0
    assert moto.sent_messages() == []


# -- the certificate cache and the authenticator, without HTTP ---------------------------


class FakeResponse:
    def __init__(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.data = data
        self.headers = headers or {}


class FakeCertsEndpoint:
    def __init__(self) -> None:
        self.answers: list[FakeResponse] = []
        self.calls = 0

    def __call__(self, url: str, method: str = "GET", **kwargs: Any) -> FakeResponse:
        self.calls += 1
        return self.answers[min(self.calls, len(self.answers)) - 1]


def certs(*kids: str, max_age: int | None = None) -> FakeResponse:
    headers = {} if max_age is None else {"Cache-Control": f"public, max-age={max_age}"}
    return FakeResponse(200, json.dumps({kid: f"PEM {kid}" for kid in kids}).encode(), headers)


def cache_with(endpoint: FakeCertsEndpoint, clock: ManualClock) -> CertsCache:
    return CertsCache("https://certs.example", endpoint, clock=clock)  # type: ignore[arg-type]


def test_certificates_are_kept_for_googles_max_age() -> None:
    endpoint, clock = FakeCertsEndpoint(), ManualClock(1000.0)
    endpoint.answers = [certs("a", max_age=600), certs("a", "b", max_age=600)]
    cache = cache_with(endpoint, clock)
    assert set(cache.get("a")) == {"a"}
    clock.now += 599
    cache.get("a")
    assert endpoint.calls == 1
    clock.now += 2
    assert set(cache.get("a")) == {"a", "b"}
    assert endpoint.calls == 2


def test_an_unknown_key_id_refetches_at_most_every_30_seconds() -> None:
    endpoint, clock = FakeCertsEndpoint(), ManualClock(1000.0)
    endpoint.answers = [certs("a", max_age=3600), certs("a", "new", max_age=3600)]
    cache = cache_with(endpoint, clock)
    cache.get("a")
    clock.now += 5
    assert "new" not in cache.get("new")  # too soon after the last fetch
    clock.now += 30
    assert "new" in cache.get("new")  # Google rotated its keys
    for _ in range(10):
        cache.get("forged")
    assert endpoint.calls == 2


def test_a_failed_refresh_keeps_the_cached_certificates() -> None:
    endpoint, clock = FakeCertsEndpoint(), ManualClock(1000.0)
    endpoint.answers = [certs("a", max_age=60), FakeResponse(503, b"unavailable")]
    cache = cache_with(endpoint, clock)
    cache.get("a")
    clock.now += 61
    assert set(cache.get("a")) == {"a"}
    assert endpoint.calls == 2


def test_no_certificates_at_all_is_reported_as_unavailable() -> None:
    endpoint, clock = FakeCertsEndpoint(), ManualClock(1000.0)
    endpoint.answers = [FakeResponse(500, b"")]
    with pytest.raises(CertsUnavailable):
        cache_with(endpoint, clock).get("a")


def test_a_jwks_document_is_not_accepted_as_certificates() -> None:
    endpoint, clock = FakeCertsEndpoint(), ManualClock(1000.0)
    endpoint.answers = [FakeResponse(200, b'{"keys": []}')]
    with pytest.raises(CertsUnavailable):
        cache_with(endpoint, clock).get("a")


def test_the_service_account_is_compared_without_regard_to_case(
    clean_metadata: MetadataServer,
) -> None:
    authenticator = PushAuthenticator(
        audience=AUDIENCE,
        service_account=PUSHER.upper(),
        certs=CertsCache(clean_metadata.certs_url),
    )
    verified = authenticator.verify(f"Bearer {good_token(clean_metadata)}")
    assert verified["email"] == PUSHER


def test_an_overlong_token_is_refused_unread(clean_metadata: MetadataServer) -> None:
    authenticator = PushAuthenticator(
        audience=AUDIENCE, service_account=PUSHER, certs=CertsCache(clean_metadata.certs_url)
    )
    with pytest.raises(AuthFailure) as caught:
        authenticator.verify("Bearer " + "a" * 5000 + "." + "b" * 5000 + ".c")
    assert caught.value.reason == "malformed_token"
    assert clean_metadata.count("/oauth2/v1/certs") == 0
