"""A fast stand-in for Amazon SES v2 SendEmail and STS AssumeRoleWithWebIdentity.

moto is far too slow to measure a worker against (it parses every MIME message and keeps it),
so the benchmark answers the two calls the worker makes with a small threaded HTTP server:

* ``POST /v2/email/outbound-emails`` -> ``{"MessageId": "<unique>"}``
* ``POST /`` with ``Action=AssumeRoleWithWebIdentity`` -> STS XML credentials for an hour
* ``GET /v2/email/account`` -> the account's ``SendQuota``

It checks nothing (no signature, no token) and keeps only counters: it is a load sink. Given a
:class:`~bench.ses_quota.SesQuota`, it also enforces SES's sending quota as SES does: a send
over the maximum send rate or the 24-hour cap is answered with SES's throttling error. To
count duplicate sends it also records which request each SendEmail was for: the benchmark
puts ``[bench-request <request_id>]`` into every request's subject (and text body), and the
stand-in finds that marker in the message it is asked to send, raw MIME (base64 in the JSON,
then parsed with the email package, so folded or RFC 2047-encoded subjects and base64 or
quoted-printable bodies are handled) or simple content. A send without a marker is counted
as unattributed.
"""

from __future__ import annotations

import base64
import binascii
import collections
import datetime as dt
import email.parser
import email.policy
import itertools
import json
import re
import threading
import urllib.parse
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler
from typing import Any

from bench.ses_quota import SesQuota
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


MARKER_PREFIX = "[bench-request "
_MARKER = re.compile(r"\[bench-request\s+([A-Za-z0-9._:-]+)\]")


def marker(request_id: str) -> str:
    """The text the benchmark puts in a request's subject and body to find it in a send."""
    return f"{MARKER_PREFIX}{request_id}]"


def _find_marker(text: str | None) -> str | None:
    found = _MARKER.search(text) if text else None
    return found.group(1) if found else None


def request_id_of_send(body: bytes) -> str | None:
    """The request a SendEmail call was for, from its marker; None when there is none."""
    try:
        content = json.loads(body).get("Content") or {}
    except (ValueError, AttributeError):
        return None
    simple = content.get("Simple")
    if isinstance(simple, dict):
        subject = (simple.get("Subject") or {}).get("Data")
        if found := _find_marker(subject):
            return found
        parts = (simple.get("Body") or {}).values()
        return next((f for p in parts if (f := _find_marker(p.get("Data")))), None)
    raw = (content.get("Raw") or {}).get("Data")
    if not isinstance(raw, str):
        return None
    try:
        mime = base64.b64decode(raw, validate=True)  # a blob in rest-json is base64
    except (binascii.Error, ValueError):
        return None
    parser = email.parser.BytesParser(policy=email.policy.default)
    headers = parser.parsebytes(mime, headersonly=True)
    if found := _find_marker(str(headers.get("Subject", ""))):  # unfolded and decoded
        return found
    message = parser.parsebytes(mime)
    assert isinstance(message, EmailMessage)
    for part in message.walk():
        if part.get_content_maintype() == "text" and not part.is_multipart():
            try:
                text = part.get_content()  # base64 / quoted-printable and charset undone
            except (LookupError, ValueError):
                continue
            if found := _find_marker(text if isinstance(text, str) else None):
                return found
    return None


class SesStandIn(ThreadedServer):
    """SES v2 SendEmail and STS web-identity on one loopback port; counts what it answers."""

    def __init__(self, port: int = 0, *, quota: SesQuota | None = None) -> None:
        super().__init__(_Handler, "ses-standin", port)  # 0: the OS picks it at start()
        #: SES's limits; None: none (every send is accepted, GetAccount says 1,000,000/s).
        self.quota = quota
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.sends = 0
        self.sts_calls = 0
        self.unattributed = 0  # sends without a marker
        self.sends_by_request: collections.Counter[str] = collections.Counter()

    def record_send(self, request_id: str | None) -> str:
        """Count one accepted send for ``request_id``; return its new SES message id."""
        with self._lock:
            self.sends += 1
            if request_id is None:
                self.unattributed += 1
            else:
                self.sends_by_request[request_id] += 1
            return f"0100019a-bench-{next(self._ids):012d}-000000"

    def send_counts(self, request_ids: list[str]) -> list[int]:
        """How many sends the stand-in accepted for each of ``request_ids``."""
        with self._lock:
            return [self.sends_by_request[r] for r in request_ids]

    def sts_answer(self) -> bytes:
        with self._lock:
            self.sts_calls += 1
        expiration = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
        return _STS_RESPONSE.format(expiration=expiration.strftime("%Y-%m-%dT%H:%M:%SZ")).encode()


_NO_QUOTA = {"Max24HourSend": -1.0, "MaxSendRate": 1_000_000.0, "SentLast24Hours": 0.0}


def _recipient_count(body: bytes) -> int:
    """The recipients of a SendEmail call (each counts against SES's quota)."""
    try:
        destination = json.loads(body).get("Destination") or {}
        return max(1, sum(len(destination.get(k) or ()) for k in _DESTINATION_KEYS))
    except (ValueError, AttributeError, TypeError):
        return 1


_DESTINATION_KEYS = ("ToAddresses", "CcAddresses", "BccAddresses")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: botocore pools its connections
    # Buffer the reply so that its head and body leave in one segment: written separately,
    # Nagle's algorithm held the body back until the client's delayed ACK, about 40 ms later,
    # and every SendEmail took that long instead of well under a millisecond.
    wbufsize = -1

    def do_POST(self) -> None:
        owner: SesStandIn = self.server.owner  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/v2/email/outbound-emails":
            refusal = owner.quota.admit(_recipient_count(body)) if owner.quota else None
            if refusal is not None:
                error = json.dumps({"message": refusal.message})
                self._reply(refusal.status, "application/json", error, refusal.code)
                return
            try:
                request_id = request_id_of_send(body)
            except Exception:  # an odd body must not fail the send: it counts as unattributed
                request_id = None
            message_id = owner.record_send(request_id)
            self._reply(200, "application/json", json.dumps({"MessageId": message_id}))
            return
        form = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace")))
        if form.get("Action") == "AssumeRoleWithWebIdentity":
            self._reply(200, "text/xml", owner.sts_answer())
            return
        self._reply(404, "application/json", b'{"message": "not served by the stand-in"}')

    def do_GET(self) -> None:
        owner: SesStandIn = self.server.owner  # type: ignore[attr-defined]
        if self.path.split("?", 1)[0].rstrip("/") == "/v2/email/account":
            quota = owner.quota.send_quota() if owner.quota else _NO_QUOTA
            answer = {
                "SendQuota": quota,
                "SendingEnabled": True,
                "ProductionAccessEnabled": True,
                "EnforcementStatus": "HEALTHY",
            }
            self._reply(200, "application/json", json.dumps(answer))
            return
        self._reply(404, "application/json", b'{"message": "not served by the stand-in"}')

    def _reply(
        self, status: int, content_type: str, body: str | bytes, error_type: str | None = None
    ) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if error_type is not None:
            # How SES v2 (rest-json) names its error: botocore reads the code from here.
            self.send_header("x-amzn-ErrorType", error_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the benchmark counts instead."""
