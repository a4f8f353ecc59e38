"""SendEmailCall against the botocore client it stands in for.

The same request (method, URL, body, signed headers: byte for byte at the same signing time),
the same parsed answer, the same exception for an error answer, and the client's own retry
handlers deciding about failed attempts. HTTP is replaced by recorded answers here; the
session's tests (tests/test_session.py) run every send through the call against moto and the
fault proxy.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import botocore.auth
import botocore.awsrequest
import botocore.exceptions
import botocore.session
import pytest

from worker.sending.aws import (
    SES_CLIENT_CONFIG,
    leave_throttling_to_the_worker,
    refuse_blind_resends,
)
from worker.sending.send_call import SendEmailCall
from worker.sending.ses_session import Session

SIGNING_TIME = dt.datetime(2026, 11, 27, 12, 0, 0)
PARAMS: dict[str, Any] = {
    "FromEmailAddress": "billing@example.com",
    "Destination": {"ToAddresses": ["alice@example.org", "bob@xn--bcher-kva.de"]},
    "Content": {"Raw": {"Data": b"From: billing@example.com\r\n\r\nHello \xe2\x9c\x93\r\n"}},
}
TAGS = [{"Name": "kind", "Value": "invoice"}, {"Name": "email_worker_batch", "Value": "1"}]


class Answer:
    """An HTTP answer to play back: status, headers and body."""

    def __init__(self, status: int, body: dict[str, Any], **headers: str) -> None:
        self.status = status
        self.body = json.dumps(body).encode()
        self.headers = {"content-type": "application/json", **headers}

    def response(self, url: str) -> botocore.awsrequest.AWSResponse:
        body = self.body

        class Raw:
            def stream(self, **_: Any) -> Iterator[bytes]:
                yield body

        headers: Any = self.headers
        return botocore.awsrequest.AWSResponse(url, self.status, headers, Raw())


SENT = Answer(200, {"MessageId": "0100-sent"}, **{"x-amzn-requestid": "req-1"})
REJECTED = Answer(
    400, {"message": "Email address is not verified."}, **{"x-amzn-ErrorType": "MessageRejected"}
)
THROTTLED = Answer(
    429, {"message": "Too many requests"}, **{"x-amzn-ErrorType": "TooManyRequestsException"}
)
UNAVAILABLE = Answer(503, {"message": "unavailable"}, **{"x-amzn-ErrorType": "InternalFailure"})


class PlayBack:
    """Plays answers (or raises exceptions) in turn; records every request sent."""

    def __init__(self, *answers: Answer | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[Any] = []

    def send(self, request: Any) -> botocore.awsrequest.AWSResponse:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer.response(request.url)


@pytest.fixture(autouse=True)
def fixed_signing_time_and_no_sleeping(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: SIGNING_TIME)
    sleeps: list[float] = []
    monkeypatch.setattr("worker.sending.send_call.time.sleep", sleeps.append)
    monkeypatch.setattr("botocore.endpoint.time.sleep", sleeps.append)
    return sleeps


def client(**config: Any) -> tuple[Any, Any]:
    """A SES v2 client as the session makes it, with static credentials; and the session."""
    session = botocore.session.Session()
    session.set_credentials("AKIDEXAMPLE", "secret-example", "session-token-example")
    ses = session.create_client(
        "sesv2",
        region_name="eu-west-2",
        config=SES_CLIENT_CONFIG.merge(botocore.config.Config(**config)),
    )
    refuse_blind_resends(ses)
    return ses, session


def fast_call(ses: Any, session: Any, http: PlayBack) -> SendEmailCall:
    call = SendEmailCall.for_client(
        ses, credentials=session.get_credentials(), user_agent=session.user_agent()
    )
    assert call is not None
    call._http = http
    return call


def client_call(ses: Any, http: PlayBack, **params: Any) -> Any:
    """``ses.send_email(**params)`` with its HTTP answered by `http`."""

    def answer(request: Any, **_: Any) -> botocore.awsrequest.AWSResponse:
        return http.send(request)

    ses.meta.events.register("before-send.sesv2.SendEmail", answer)
    try:
        return ses.send_email(**params)
    finally:
        ses.meta.events.unregister("before-send.sesv2.SendEmail", answer)


SIGNED = ("Content-Type", "X-Amz-Date", "X-Amz-Security-Token", "Authorization")


@pytest.mark.parametrize("tags", [None, TAGS], ids=["one call", "a batch with its tags"])
@pytest.mark.parametrize(
    "config",
    [{}, {"use_fips_endpoint": True}, {"use_dualstack_endpoint": True}],
    ids=["default endpoint", "FIPS endpoint", "dual-stack endpoint"],
)
def test_the_request_is_the_clients_byte_for_byte(
    tags: list[dict[str, str]] | None, config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SESV2"):  # the client's own endpoint
        monkeypatch.delenv(name, raising=False)
    params = {**PARAMS, **({"EmailTags": tags} if tags else {})}
    ses, session = client(**config)
    theirs, ours = PlayBack(SENT), PlayBack(SENT)
    client_call(ses, theirs, **params)
    fast_call(ses, session, ours)(**params)
    [expected], [actual] = theirs.requests, ours.requests
    assert expected.url.startswith("https://email")
    assert actual.method == expected.method
    assert actual.url == expected.url
    assert actual.body == expected.body
    for name in SIGNED:  # the same signature: the same canonical request, time and key
        assert str(actual.headers[name]) == expected.headers[name].decode(), name


def test_the_answer_is_the_clients() -> None:
    ses, session = client()
    theirs = client_call(ses, PlayBack(SENT), **PARAMS)
    ours = fast_call(ses, session, PlayBack(SENT))(**PARAMS)
    assert ours == theirs
    assert ours["MessageId"] == "0100-sent"


def test_an_error_answer_is_the_clients_exception_after_one_attempt() -> None:
    ses, session = client()
    with pytest.raises(ses.exceptions.MessageRejected) as theirs:
        client_call(ses, PlayBack(REJECTED), **PARAMS)
    http = PlayBack(REJECTED)
    with pytest.raises(ses.exceptions.MessageRejected) as ours:
        fast_call(ses, session, http)(**PARAMS)
    assert ours.value.response == theirs.value.response
    assert str(ours.value) == str(theirs.value)
    assert len(http.requests) == 1


@pytest.mark.parametrize("failure", [THROTTLED, UNAVAILABLE], ids=["throttled", "unavailable"])
def test_failed_attempts_are_retried_as_the_client_retries_them(
    failure: Answer, fixed_signing_time_and_no_sleeping: list[float]
) -> None:
    sleeps = fixed_signing_time_and_no_sleeping
    ses, session = client()
    theirs = PlayBack(failure, failure, SENT)
    assert client_call(ses, theirs, **PARAMS)["ResponseMetadata"]["RetryAttempts"] == 2
    client_sleeps = len(sleeps)
    ours = PlayBack(failure, failure, SENT)
    answer = fast_call(ses, session, ours)(**PARAMS)
    assert answer["MessageId"] == "0100-sent"
    assert answer["ResponseMetadata"]["RetryAttempts"] == 2
    assert len(ours.requests) == len(theirs.requests) == 3
    assert len(sleeps) - client_sleeps == client_sleeps == 2  # botocore's backoff before each


def test_a_failure_that_persists_gets_the_clients_attempts_then_its_exception() -> None:
    ses, session = client()
    theirs = PlayBack(THROTTLED)
    with pytest.raises(ses.exceptions.TooManyRequestsException):
        client_call(ses, theirs, **PARAMS)
    ours = PlayBack(THROTTLED)
    with pytest.raises(ses.exceptions.TooManyRequestsException):
        fast_call(ses, session, ours)(**PARAMS)
    assert len(ours.requests) == len(theirs.requests) == 4  # the call and 3 retries


QUOTA_USED_UP = Answer(
    400,
    {"message": "Daily message quota exceeded"},
    **{"x-amzn-ErrorType": "LimitExceededException"},
)
SLOW_DOWN = Answer(429, {"message": "slow down"}, **{"x-amzn-ErrorType": "SomethingNewException"})


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (THROTTLED, "TooManyRequestsException"),
        (QUOTA_USED_UP, "LimitExceededException"),
        (SLOW_DOWN, "SomethingNewException"),
    ],
    ids=["too many requests", "daily quota", "an unknown code with 429"],
)
def test_a_throttled_send_is_left_to_the_worker_after_one_attempt(
    answer: Answer, error: str
) -> None:
    ses, session = client()
    leave_throttling_to_the_worker(ses)
    theirs = PlayBack(answer, SENT)
    with pytest.raises(botocore.exceptions.ClientError) as raised_by_client:
        client_call(ses, theirs, **PARAMS)
    ours = PlayBack(answer, SENT)
    with pytest.raises(botocore.exceptions.ClientError) as raised_by_call:
        fast_call(ses, session, ours)(**PARAMS)
    assert raised_by_client.value.response["Error"]["Code"] == error
    assert raised_by_call.value.response == raised_by_client.value.response
    assert len(ours.requests) == len(theirs.requests) == 1


def test_provider_trouble_is_still_retried_by_botocore_when_throttling_is_left_to_the_worker() -> (
    None
):
    ses, session = client()
    leave_throttling_to_the_worker(ses)
    http = PlayBack(UNAVAILABLE, SENT)
    assert fast_call(ses, session, http)(**PARAMS)["MessageId"] == "0100-sent"
    assert len(http.requests) == 2


def test_a_connection_that_never_opened_is_retried() -> None:
    ses, session = client()
    refused = botocore.exceptions.EndpointConnectionError(endpoint_url="https://example")
    http = PlayBack(refused, SENT)
    assert fast_call(ses, session, http)(**PARAMS)["MessageId"] == "0100-sent"
    assert len(http.requests) == 2


@pytest.mark.parametrize(
    "lost",
    [
        botocore.exceptions.ReadTimeoutError(endpoint_url="https://example"),
        botocore.exceptions.ConnectionClosedError(endpoint_url="https://example"),
    ],
    ids=["read timeout", "connection closed"],
)
def test_an_answer_lost_after_sending_is_not_sent_again(lost: Exception) -> None:
    # refuse_blind_resends, a needs-retry hook on the client, ends the call at once.
    ses, session = client()
    http = PlayBack(lost, SENT)
    with pytest.raises(type(lost)):
        fast_call(ses, session, http)(**PARAMS)
    assert len(http.requests) == 1


def test_the_clients_after_call_handlers_see_each_outcome() -> None:
    # The standard retry quota is given back there after a success.
    ses, session = client()
    seen: list[Any] = []
    ses.meta.events.register(
        "after-call.sesv2.SendEmail",
        lambda http_response, context, **_: seen.append((http_response.status_code, context)),
    )
    ses.meta.events.register(
        "after-call-error.sesv2.SendEmail", lambda exception, **_: seen.append(exception)
    )
    fast_call(ses, session, PlayBack(SENT))(**PARAMS)
    with pytest.raises(ses.exceptions.MessageRejected):
        fast_call(ses, session, PlayBack(REJECTED))(**PARAMS)
    lost = botocore.exceptions.ReadTimeoutError(endpoint_url="https://example")
    with pytest.raises(botocore.exceptions.ReadTimeoutError):
        fast_call(ses, session, PlayBack(lost))(**PARAMS)
    assert [s[0] if isinstance(s, tuple) else s for s in seen] == [200, 400, lost]


def test_credentials_are_read_afresh_for_every_attempt() -> None:
    ses, session = client()
    http = PlayBack(THROTTLED, SENT)
    call = fast_call(ses, session, http)
    call(**PARAMS)
    session.set_credentials("AKIDROTATED", "secret-rotated", "token-rotated")
    call._credentials = session.get_credentials()
    call(**PARAMS)
    keys = [r.headers["Authorization"].split("Credential=")[1].split("/")[0] for r in http.requests]
    assert keys == ["AKIDEXAMPLE", "AKIDEXAMPLE", "AKIDROTATED"]


def test_only_a_botocore_ses_v2_client_is_stood_in_for() -> None:
    ses, session = client()
    options = {"credentials": session.get_credentials(), "user_agent": "x"}
    assert SendEmailCall.for_client(ses, **options) is not None
    assert SendEmailCall.for_client(object(), **options) is None
    sts = session.create_client("sts", region_name="eu-west-2")
    assert SendEmailCall.for_client(sts, **options) is None


def test_the_session_sends_through_it_unless_its_client_was_replaced() -> None:
    session = Session("arn:aws:iam::123456789012:role/email-sender")
    assert session._send_call is not None
    assert session._send_call.client is session._ses
