"""A fast stand-in for Amazon SES v2 SendEmail and STS AssumeRoleWithWebIdentity.

moto is far too slow to measure a worker against (it parses every MIME message and keeps it),
so the benchmark answers the two calls the worker makes with a small threaded HTTP server:

* ``POST /v2/email/outbound-emails`` -> ``{"MessageId": "<unique>"}``
* ``POST /`` with ``Action=AssumeRoleWithWebIdentity`` -> STS XML credentials for an hour

It checks nothing (no signature, no token) and keeps only counters: it is a load sink.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.servers import ThreadedServer

_STS_RESPONSE = """<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>100000000000000000001</SubjectFromWebIdentityToken>
    <Audience>sts.amazonaws.com</Audience>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/email-sender/email-worker</Arn>
      <AssumedRoleId>AROABENCHBENCHBENCH:email-worker</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>bench-session-token</SessionToken>
      <SecretAccessKey>bench-secret-access-key</SecretAccessKey>
      <Expiration>{expiration}</Expiration>
      <AccessKeyId>ASIABENCHBENCHBENCH0</AccessKeyId>
    </Credentials>
    <Provider>accounts.google.com</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>00000000-0000-0000-0000-000000000000</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>"""


class SesStandIn(ThreadedServer):
    """SES v2 SendEmail and STS web-identity on one loopback port; counts what it answers."""

    def __init__(self, port: int = 0) -> None:
        super().__init__(_Handler, "ses-standin", port)  # 0: the OS picks it at start()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.sends = 0
        self.sts_calls = 0

    def next_message_id(self) -> str:
        with self._lock:
            self.sends += 1
            return f"0100019a-bench-{next(self._ids):012d}-000000"

    def sts_answer(self) -> bytes:
        with self._lock:
            self.sts_calls += 1
        expiration = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
        return _STS_RESPONSE.format(expiration=expiration.strftime("%Y-%m-%dT%H:%M:%SZ")).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: botocore pools its connections

    def do_POST(self) -> None:
        owner: SesStandIn = self.server.owner  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/v2/email/outbound-emails":
            self._reply(200, "application/json", json.dumps({"MessageId": owner.next_message_id()}))
            return
        form = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace")))
        if form.get("Action") == "AssumeRoleWithWebIdentity":
            self._reply(200, "text/xml", owner.sts_answer())
            return
        self._reply(404, "application/json", b'{"message": "not served by the stand-in"}')

    def _reply(self, status: int, content_type: str, body: str | bytes) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the benchmark counts instead."""
