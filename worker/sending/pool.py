"""One SES endpoint's connection pool, used without botocore's per-request HTTP wrapper.

botocore's ``URLLib3Session.send`` looks up the proxy and the pool for every request, wraps the
answer and reads it back in chunks; for the one request the worker makes per email that
wrapper cost about a fifth of the call (docs/scaling.md, issue 13). `PoolTransport` takes the
pool botocore's session holds for the endpoint once, with the TLS settings and timeouts
botocore gave it, and sends through it; a failure is raised as the botocore exception the
session raises for it, which the client's retry handlers and
`worker.sending.aws.refuse_blind_resends` decide on. Endpoints reached through a proxy keep
botocore's session (`PoolTransport.for_session` returns None).
"""

from __future__ import annotations

import socket
import urllib.parse
from collections.abc import Callable
from typing import Any

import botocore.exceptions
import urllib3.exceptions

__all__ = ["FAILURES", "Answer", "PoolTransport", "botocore_error"]

_Make = Callable[[Exception, Any], Exception]

#: urllib3's failures and the botocore exception each becomes, the first match winning
#: (``NewConnectionError`` is a kind of ``ConnectTimeoutError``: nothing was sent, say so).
#: Anything else becomes ``HTTPClientError``.
FAILURES: tuple[tuple[tuple[type[BaseException], ...], _Make], ...] = (
    (
        (urllib3.exceptions.SSLError,),
        lambda error, request: botocore.exceptions.SSLError(endpoint_url=request.url, error=error),
    ),
    (
        (urllib3.exceptions.NewConnectionError, socket.gaierror),
        lambda error, request: botocore.exceptions.EndpointConnectionError(
            endpoint_url=request.url, error=error
        ),
    ),
    (
        (urllib3.exceptions.ConnectTimeoutError,),
        lambda error, request: botocore.exceptions.ConnectTimeoutError(
            endpoint_url=request.url, error=error
        ),
    ),
    (
        (urllib3.exceptions.ReadTimeoutError,),
        lambda error, request: botocore.exceptions.ReadTimeoutError(
            endpoint_url=request.url, error=error
        ),
    ),
    (
        (urllib3.exceptions.ProtocolError,),
        lambda error, request: botocore.exceptions.ConnectionClosedError(
            error=error, request=request, endpoint_url=request.url
        ),
    ),
)


def botocore_error(error: Exception, request: Any) -> Exception:
    """The botocore exception for urllib3's ``error`` while sending ``request``."""
    for kinds, make in FAILURES:
        if isinstance(error, kinds):
            return make(error, request)
    return botocore.exceptions.HTTPClientError(error=error)


class Answer:
    """An HTTP answer, read whole: what botocore's response parsing reads of one."""

    __slots__ = ("content", "headers", "raw", "status_code")

    def __init__(self, status_code: int, headers: Any, content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content
        self.raw = None  # SendEmail's answer is not streamed


class PoolTransport:
    """Sends prepared requests for ``url`` through the urllib3 pool of botocore's ``http``
    session (``client._endpoint.http_session``)."""

    def __init__(self, http: Any, url: str) -> None:
        self._http = http
        self._url = url
        self._target = _target(url)
        self._pool = self._take_pool()

    @classmethod
    def for_session(cls, http: Any, url: str) -> PoolTransport | None:
        """A transport for ``url``, or None when botocore would send it through a proxy (or
        its session is not the urllib3 one this knows)."""
        try:
            if http._proxy_config.proxy_url_for(url):
                return None
            return cls(http, url)
        except AttributeError:
            return None

    def _take_pool(self) -> Any:
        pool = self._http._get_connection_manager(self._url).connection_from_url(self._url)
        self._http._setup_ssl_cert(pool, self._url, self._http._verify)
        return pool

    def send(self, request: Any) -> Answer:
        """Send a prepared request (``AWSPreparedRequest``) and read its answer."""
        if self._pool.pool is None:  # closed with botocore's session: take the current one
            self._pool = self._take_pool()
        try:
            response = self._pool.urlopen(
                method=request.method,
                url=self._target if request.url == self._url else _target(request.url),
                body=request.body,
                headers=request.headers,
                retries=False,  # botocore's retry handlers decide, as for the client
                assert_same_host=False,
                preload_content=True,
                decode_content=False,
                enforce_content_length=False,
            )
        except Exception as error:
            raise botocore_error(error, request) from error
        return Answer(response.status, response.headers, response.data)


def _target(url: str) -> str:
    """The request target for ``url`` (path and query), as sent to the endpoint itself."""
    parts = urllib.parse.urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
