"""An HTTP proxy in front of moto that injects AWS failures on chosen requests.

Clients talk to it as if it were the AWS endpoint (``AWS_ENDPOINT_URL_STS`` /
``AWS_ENDPOINT_URL_SESV2`` point at :attr:`FaultProxy.endpoint`). For each request it
asks its *rules* in order; the first that returns a :class:`FakeResponse` answers instead
of the upstream. Otherwise the request is forwarded unchanged (the Host header too, so
SigV4 signatures stay valid) and the upstream answer passes through the *rewriters*.

    proxy.add_rule(fail_first(2, ses_error("TooManyRequestsException", 429)))
    proxy.add_rule(fail_every(10, ses_error("ThrottlingException", 400)))
    proxy.add_rule(fail_always(sts_error("InvalidIdentityToken", 400)))
    proxy.add_rule(fail_first(1, on_ses_send(connection_reset())))
    proxy.add_rule(for_tenant("billing", ses_error("SendingPausedException", 400)))
    proxy.add_rewriter(sts_expiration_in(30))
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import re
import socket
import struct
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.servers import ThreadedServer

# Not forwarded in either direction: they describe one connection, not the message.
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
}


@dataclass(frozen=True)
class ProxiedRequest:
    method: str
    target: str  # path and query exactly as the client sent them
    path: str  # without the query string
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: bytes

    @property
    def form(self) -> dict[str, str]:
        """The urlencoded body (AWS query protocol: STS)."""
        if "x-www-form-urlencoded" not in self.headers.get("content-type", ""):
            return {}
        return dict(urllib.parse.parse_qsl(self.body.decode("utf-8", "replace")))

    @property
    def is_ses_send(self) -> bool:
        return self.method == "POST" and self.path.rstrip("/") == "/v2/email/outbound-emails"

    @property
    def ses_tenant(self) -> str | None:
        """The ``TenantName`` of an SES v2 send (JSON body), if it names one."""
        if not self.is_ses_send:
            return None
        try:
            tenant = json.loads(self.body).get("TenantName")
        except (ValueError, AttributeError):
            return None
        return tenant if isinstance(tenant, str) else None

    @property
    def is_sts_web_identity(self) -> bool:
        return self.form.get("Action") == "AssumeRoleWithWebIdentity"

    @property
    def kind(self) -> str:
        """``ses_send``, ``sts_web_identity``, ``sts``, ``ses`` or ``other``."""
        if self.is_ses_send:
            return "ses_send"
        if self.is_sts_web_identity:
            return "sts_web_identity"
        if "Action" in self.form:
            return "sts"
        if self.path.startswith("/v2/email/"):
            return "ses"
        return "other"


@dataclass(frozen=True)
class FakeResponse:
    """An answer a rule gives instead of the upstream's.

    ``drop="hangup"`` closes the connection without answering (client sees the remote end
    disconnect), ``drop="reset"`` aborts it with a TCP RST (connection reset by peer).
    """

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    drop: str | None = None


@dataclass(frozen=True)
class UpstreamResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    #: Set by a rewriter: the upstream got the request, but its answer is dropped this way
    #: (as ``FakeResponse.drop``), as when a response is lost on the way back.
    drop: str | None = None


Rule = Callable[[ProxiedRequest], FakeResponse | None]
Rewriter = Callable[[ProxiedRequest, UpstreamResponse], UpstreamResponse]


@dataclass(frozen=True)
class LoggedRequest:
    request: ProxiedRequest
    outcome: str  # "forwarded", "injected", "hangup", "reset" or "upstream-error"

    @property
    def kind(self) -> str:
        return self.request.kind


# -- ready-made rules ----------------------------------------------------------------


def ses_error(
    code: str = "TooManyRequestsException",
    status: int = 429,
    message: str = "Maximum sending rate exceeded.",
) -> Rule:
    """Answer SES v2 sends with a rest-json error, as SES does.

    botocore takes the code from ``x-amzn-ErrorType`` (text before ``:``), so boto3 raises
    ``ClientError`` with ``Error.Code == code``; the body carries only ``message``.
    """
    response = FakeResponse(
        status=status,
        headers={
            "Content-Type": "application/json",
            "x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/com.amazon.coral/",
            "x-amzn-RequestId": "00000000-0000-0000-0000-fault0proxy0",
        },
        body=json.dumps({"message": message}).encode(),
    )
    return lambda request: response if request.is_ses_send else None


def sts_error(
    code: str = "InvalidIdentityToken",
    status: int = 400,
    message: str = "Injected STS failure.",
    error_type: str = "Sender",
) -> Rule:
    """Answer ``AssumeRoleWithWebIdentity`` with an STS XML ``ErrorResponse``."""
    body = (
        '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
        f"<Error><Type>{error_type}</Type><Code>{code}</Code><Message>{message}</Message>"
        "</Error><RequestId>00000000-0000-0000-0000-fault0proxy0</RequestId></ErrorResponse>"
    )
    response = FakeResponse(status=status, headers={"Content-Type": "text/xml"}, body=body.encode())
    return lambda request: response if request.is_sts_web_identity else None


def connection_reset() -> FakeResponse:
    return FakeResponse(drop="reset")


def hang_up() -> FakeResponse:
    return FakeResponse(drop="hangup")


def on_ses_send(response: FakeResponse) -> Rule:
    return lambda request: response if request.is_ses_send else None


def for_tenant(tenant: str, rule: Rule) -> Rule:
    """Let ``rule`` answer only SES sends made through the SES tenant ``tenant``."""
    return lambda request: rule(request) if request.ses_tenant == tenant else None


def on_sts_web_identity(response: FakeResponse) -> Rule:
    return lambda request: response if request.is_sts_web_identity else None


def delay(seconds: float, when: Callable[[ProxiedRequest], bool] = lambda _: True) -> Rule:
    """Stall requests ``when`` says so, then let them through (for client timeouts)."""

    def stall(request: ProxiedRequest) -> None:
        if when(request):
            time.sleep(seconds)
        return None

    return stall


def fail_first(n: int, rule: Rule) -> Rule:
    """Let ``rule`` answer the first ``n`` requests it matches, then forward the rest."""
    return _counted(rule, lambda seen: seen <= n)


def fail_after(passed: int, n: int, rule: Rule) -> Rule:
    """Forward the first ``passed`` requests ``rule`` matches, let it answer the next ``n``."""
    return _counted(rule, lambda seen: passed < seen <= passed + n)


def fail_every(k: int, rule: Rule) -> Rule:
    """Let ``rule`` answer its k-th, 2k-th, ... matches (deterministic, e.g. every 10th)."""
    return _counted(rule, lambda seen: seen % k == 0)


def fail_always(rule: Rule) -> Rule:
    return rule


def _counted(rule: Rule, answer_when: Callable[[int], bool]) -> Rule:
    lock = threading.Lock()
    seen = 0

    def counted(request: ProxiedRequest) -> FakeResponse | None:
        nonlocal seen
        response = rule(request)
        if response is None:
            return None
        with lock:
            seen += 1
            return response if answer_when(seen) else None

    return counted


# -- ready-made rewriters ------------------------------------------------------------

_EXPIRATION = re.compile(rb"<Expiration>[^<]*</Expiration>")


def lose_ses_answers(count: int, how: str = "hangup") -> Rewriter:
    """Forward the next ``count`` SES sends, then drop their answers (``how``: hangup or
    reset): SES got each one, the client never hears so."""
    lost = {"n": 0}
    lock = threading.Lock()

    def rewrite(request: ProxiedRequest, response: UpstreamResponse) -> UpstreamResponse:
        if not request.is_ses_send:
            return response
        with lock:
            if lost["n"] >= count:
                return response
            lost["n"] += 1
        return replace(response, drop=how)

    return rewrite


def sts_expiration_in(seconds: float) -> Rewriter:
    """Make web-identity credentials expire ``seconds`` from now (negative: already)."""

    def rewrite(request: ProxiedRequest, response: UpstreamResponse) -> UpstreamResponse:
        if not request.is_sts_web_identity or response.status != 200:
            return response
        when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)
        stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
        body = _EXPIRATION.sub(b"<Expiration>" + stamp + b"</Expiration>", response.body)
        return replace(response, body=body)

    return rewrite


# -- the proxy -----------------------------------------------------------------------


class FaultProxy(ThreadedServer):
    def __init__(self, upstream: str, port: int | None = None) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        if parsed.hostname is None or parsed.port is None:
            raise ValueError(f"upstream must be http://host:port, got {upstream!r}")
        self.upstream_host, self.upstream_port = parsed.hostname, parsed.port
        super().__init__(_ProxyHandler, "fault-proxy", port)
        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self._rewriters: list[Rewriter] = []
        self._log: list[LoggedRequest] = []

    def add_rule(self, rule: Rule) -> None:
        with self._lock:
            self._rules.append(rule)

    def add_rewriter(self, rewriter: Rewriter) -> None:
        with self._lock:
            self._rewriters.append(rewriter)

    def clear(self) -> None:
        """Remove rules and rewriters and forget the request log."""
        with self._lock:
            self._rules.clear()
            self._rewriters.clear()
            self._log.clear()

    @property
    def requests(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._log)

    def count(self, kind: str | None = None, outcome: str | None = None) -> int:
        """Requests seen, optionally of a :attr:`ProxiedRequest.kind` and/or outcome."""
        return sum(
            kind in (None, logged.kind) and outcome in (None, logged.outcome)
            for logged in self.requests
        )

    def _record(self, request: ProxiedRequest, outcome: str) -> None:
        with self._lock:
            self._log.append(LoggedRequest(request, outcome))

    def decide(self, request: ProxiedRequest) -> FakeResponse | None:
        with self._lock:
            rules = list(self._rules)
        for rule in rules:
            response = rule(request)
            if response is not None:
                return response
        return None

    def forward(self, request: ProxiedRequest) -> UpstreamResponse:
        headers = {k: v for k, v in request.headers.items() if k not in _HOP_BY_HOP}
        connection = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=60)
        try:
            connection.request(request.method, request.target, body=request.body, headers=headers)
            raw = connection.getresponse()
            response = UpstreamResponse(raw.status, dict(raw.getheaders()), raw.read())
        finally:
            connection.close()
        with self._lock:
            rewriters = list(self._rewriters)
        for rewrite in rewriters:
            response = rewrite(request, response)
        return response


class _ProxyHandler(BaseHTTPRequestHandler):
    def _proxy(self) -> None:
        owner: FaultProxy = self.server.owner  # type: ignore[attr-defined]
        parsed = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        request = ProxiedRequest(
            method=self.command,
            target=self.path,
            path=parsed.path,
            query=dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True)),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self.rfile.read(length) if length else b"",
        )
        fake = owner.decide(request)
        if fake is not None and fake.drop is not None:
            owner._record(request, fake.drop)
            self._drop(fake.drop)
            return
        if fake is not None:
            owner._record(request, "injected")
            self._reply(fake.status, fake.headers, fake.body)
            return
        try:
            upstream = owner.forward(request)
        except OSError as error:
            owner._record(request, "upstream-error")
            self._reply(502, {"Content-Type": "text/plain"}, f"upstream: {error}".encode())
            return
        owner._record(request, "forwarded")
        if upstream.drop is not None:
            self._drop(upstream.drop)
            return
        self._reply(upstream.status, upstream.headers, upstream.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _proxy

    def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() not in _HOP_BY_HOP and name.lower() not in ("server", "date"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _drop(self, how: str) -> None:
        if how == "reset":
            # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request stderr lines; ``FaultProxy.requests`` has them."""
