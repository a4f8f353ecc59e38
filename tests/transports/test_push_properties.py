"""Property tests: whatever arrives at the push endpoint, it never answers 500.

The app runs in process with the real handler and pipeline; only the edges are stubbed: SES
(a session that accepts everything) and Pub/Sub (publishes that succeed at once). The test
client re-raises any exception from the app, so a crash fails the test even before its 500.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from tests.support.metadata_server import MetadataServer
from tests.support.push import auth_env
from tests.support.worker_stack import request
from worker.config.settings import Settings
from worker.processing.handling import Handler
from worker.processing.metrics import Metrics
from worker.processing.outputs import Outputs
from worker.processing.pipeline import Deps
from worker.sending.session_cache import SessionCache
from worker.sending.testing import RecordingSession
from worker.transports.http_app import create_app
from worker.transports.push import PushEndpoint, authenticator_for

PROCESSED = {204, 429, 503}
REFUSED_ENVELOPE = {400}
PROPERTIES = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def publish(topic: str, data: bytes, attributes: Mapping[str, str]) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_result("pubsub-id")
    return future


@contextmanager
def client(**environ: str) -> Iterator[TestClient]:
    settings = Settings.from_env(
        {
            "EMAIL_WORKER_ALLOWED_SERVICES": "billing",
            "EMAIL_WORKER_PUSH_AUTH": "off",
            "EMAIL_WORKER_TENANCY": "shared",
            **environ,
        }
    )
    deps = Deps(
        settings=settings,
        sessions=SessionCache(lambda _: RecordingSession(lambda _: ["ses-message-id"]), ttl_s=60),
    )
    outputs = Outputs(publish, results_topic="results", dead_letter_topic="dead", timeout_s=5)
    handler = Handler(deps, outputs, max_delivery_attempts=5, metrics=Metrics())
    endpoint = PushEndpoint(handler, authenticator_for(settings), concurrency=4)
    app = create_app(metrics=handler.metrics, ready=lambda: True, routes=[endpoint.route()])
    with TestClient(app, raise_server_exceptions=True) as test_client:
        yield test_client


#: What an HTTP header value can hold (printable ASCII).
header_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


request_bodies = st.one_of(
    st.binary(max_size=200),
    st.builds(lambda r: json.dumps(r).encode(), st.just(request())),
    st.builds(
        lambda subject, to: json.dumps(request(subject=subject, to=to)).encode(),
        st.text(max_size=50),
        st.lists(st.text(max_size=30), max_size=3),
    ),
    st.builds(lambda v: json.dumps(v).encode(), json_values),
)

messages = st.fixed_dictionaries(
    {},
    optional={
        "data": st.one_of(st.builds(b64, request_bodies), st.text(max_size=30), json_values),
        "attributes": st.one_of(
            st.dictionaries(st.text(max_size=20), st.text(max_size=20), max_size=5), json_values
        ),
        "messageId": st.one_of(st.text(max_size=300), json_values),
        "message_id": st.one_of(st.text(max_size=30), json_values),
        "publishTime": st.text(max_size=30),
    },
)

envelopes = st.fixed_dictionaries(
    {},
    optional={
        "message": st.one_of(messages, json_values),
        "subscription": st.one_of(st.text(max_size=60), json_values),
        "deliveryAttempt": st.one_of(st.integers(min_value=-3, max_value=200), json_values),
    },
)


@PROPERTIES
@given(body=st.binary(max_size=2000))
def test_random_bytes_are_never_answered_500(body: bytes) -> None:
    with client() as test_client:
        response = test_client.post(
            "/pubsub/push", content=body, headers={"Content-Type": "application/json"}
        )
    assert response.status_code in PROCESSED | REFUSED_ENVELOPE


@PROPERTIES
@given(document=envelopes)
def test_random_envelopes_are_processed_or_answered_400_never_500(document: Any) -> None:
    with client() as test_client:
        response = test_client.post("/pubsub/push", json=document)
    assert response.status_code in PROCESSED | REFUSED_ENVELOPE


@PROPERTIES
@given(body=request_bodies, attempt=st.integers(min_value=1, max_value=10))
def test_well_formed_envelopes_are_always_answered_by_the_pipeline(
    body: bytes, attempt: int
) -> None:
    document = {"message": {"data": b64(body), "messageId": "42"}, "deliveryAttempt": attempt}
    with client() as test_client:
        response = test_client.post("/pubsub/push", json=document)
    assert response.status_code in PROCESSED


@PROPERTIES
@given(
    content_type=st.one_of(st.none(), header_text, st.just("application/json; charset=x")),
    body=st.binary(max_size=200),
)
def test_random_content_types_are_answered_415_or_handled(
    content_type: str | None, body: bytes
) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    with client() as test_client:
        response = test_client.post("/pubsub/push", content=body, headers=headers)
    assert response.status_code in PROCESSED | REFUSED_ENVELOPE | {415}


segments = st.one_of(
    st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", max_size=40
    ),
    st.builds(lambda v: base64.urlsafe_b64encode(json.dumps(v).encode()).decode(), json_values),
)
authorizations = st.one_of(
    header_text,
    st.builds(lambda t: f"Bearer {t}", header_text),
    st.builds(lambda a, b, c: f"Bearer {a}.{b}.{c}", segments, segments, segments),
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(authorization=authorizations)
def test_random_authorization_headers_are_refused_never_500(
    authorization: str, metadata_server: MetadataServer
) -> None:
    with client(**auth_env(metadata_server.certs_url)) as test_client:
        response = test_client.post(
            "/pubsub/push",
            json={"message": {"data": b64(json.dumps(request()).encode()), "messageId": "1"}},
            headers={"Authorization": authorization},
        )
    assert response.status_code in {401, 403}
