"""PoolTransport: SendEmail through the pool botocore keeps, failing as botocore's session does."""

from __future__ import annotations

import socket
from typing import Any

import botocore.awsrequest
import botocore.config
import botocore.exceptions
import botocore.httpsession
import botocore.session
import pytest
import urllib3.connection
import urllib3.connectionpool
import urllib3.exceptions
import urllib3.response

from worker.sending.aws import SES_CLIENT_CONFIG
from worker.sending.pool import FAILURES, PoolTransport, botocore_error
from worker.sending.send_call import SendEmailCall

URL = "https://email.eu-west-2.amazonaws.com/v2/email/outbound-emails"
_POOL = urllib3.connectionpool.HTTPConnectionPool(host="email.eu-west-2.amazonaws.com")

# One of each failure urllib3 raises from a pool's urlopen, and one it does not know.
URLLIB3_FAILURES: dict[str, Exception] = {
    "ssl": urllib3.exceptions.SSLError("certificate verify failed"),
    "new connection": urllib3.exceptions.NewConnectionError(
        urllib3.connection.HTTPConnection("email.eu-west-2.amazonaws.com"), "refused"
    ),
    "name lookup": socket.gaierror(-2, "Name or service not known"),
    "connect timeout": urllib3.exceptions.ConnectTimeoutError(_POOL, "timed out"),
    "read timeout": urllib3.exceptions.ReadTimeoutError(_POOL, URL, "timed out"),
    "protocol": urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError()),
    "other": ValueError("something else"),
}


def prepared(url: str = URL) -> Any:
    return botocore.awsrequest.AWSRequest(method="POST", url=url, data=b"{}").prepare()


def client(**config: Any) -> Any:
    session = botocore.session.Session()
    session.set_credentials("AKIDEXAMPLE", "secret-example")
    return session.create_client(
        "sesv2",
        region_name="eu-west-2",
        endpoint_url="https://email.eu-west-2.amazonaws.com",
        config=SES_CLIENT_CONFIG.merge(botocore.config.Config(**config)),
    )


def raised_by(send: Any, failure: Exception, monkeypatch: pytest.MonkeyPatch) -> BaseException:
    """What ``send(prepared())`` raises when the pool's urlopen fails with ``failure``."""

    def fail(*_: Any, **__: Any) -> Any:
        raise failure

    with monkeypatch.context() as patch:
        patch.setattr(urllib3.connectionpool.HTTPConnectionPool, "urlopen", fail)
        with pytest.raises(Exception) as caught:  # noqa: PT011 - compared just below
            send(prepared())
    return caught.value


@pytest.mark.parametrize("failure", URLLIB3_FAILURES.values(), ids=URLLIB3_FAILURES.keys())
def test_each_failure_is_raised_as_the_exception_botocores_session_raises(
    failure: Exception, monkeypatch: pytest.MonkeyPatch
) -> None:
    botocores = raised_by(botocore.httpsession.URLLib3Session().send, failure, monkeypatch)
    transport = PoolTransport(botocore.httpsession.URLLib3Session(), URL)

    ours = raised_by(transport.send, failure, monkeypatch)

    assert type(ours) is type(botocores)
    assert str(ours) == str(botocores)
    assert ours.__cause__ is failure


def test_every_row_of_the_failure_table_is_exercised() -> None:
    covered = {
        row
        for row, (kinds, _) in enumerate(FAILURES)
        for failure in URLLIB3_FAILURES.values()
        if isinstance(failure, kinds)
    }
    assert covered == set(range(len(FAILURES)))


def test_a_new_connection_that_failed_is_not_reported_as_a_timeout() -> None:
    # NewConnectionError is a ConnectTimeoutError in urllib3: the table must test it first.
    error = botocore_error(URLLIB3_FAILURES["new connection"], prepared())
    assert type(error) is botocore.exceptions.EndpointConnectionError


def test_a_client_without_a_proxy_sends_through_its_own_pool() -> None:
    ses = client()
    call = SendEmailCall.for_client(ses, credentials=None, user_agent="test")
    assert call is not None
    assert isinstance(call._http, PoolTransport)
    http = ses._endpoint.http_session
    assert call._http._pool is http._manager.connection_from_url(URL)
    assert call._http._pool.cert_reqs == "CERT_REQUIRED"


def test_a_client_behind_a_proxy_keeps_botocores_http_session() -> None:
    ses = client(proxies={"https": "http://proxy.internal:3128"})
    call = SendEmailCall.for_client(ses, credentials=None, user_agent="test")
    assert call is not None
    assert call._http is ses._endpoint.http_session


def test_a_pool_botocore_let_go_is_taken_anew(monkeypatch: pytest.MonkeyPatch) -> None:
    http = botocore.httpsession.URLLib3Session()
    transport = PoolTransport(http, URL)
    closed = transport._pool
    # Closing the session drops its pools (urllib3 1.26 also closes them, 2.x leaves them open).
    http._manager.clear()  # type: ignore[attr-defined]
    closed.close()
    opened: list[Any] = []

    def answer(pool: Any, *_: Any, **__: Any) -> Any:
        opened.append(pool)
        return urllib3.response.HTTPResponse(body=b"{}", status=200, preload_content=True)

    monkeypatch.setattr(urllib3.connectionpool.HTTPConnectionPool, "urlopen", answer)
    assert transport.send(prepared()).status_code == 200
    assert opened == [transport._pool]
    assert transport._pool is not closed
