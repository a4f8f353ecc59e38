"""A stand-in for the GCE metadata server and Google's token/certs endpoints.

It answers what google-auth 2.63's ambient code paths request, so production code runs
unmodified against it:

* ``GET /`` with ``Metadata-Flavor: Google``: ``_metadata.ping`` (via ``GCE_METADATA_IP``).
* ``/computeMetadata/v1/...`` (via ``GCE_METADATA_HOST``, read when
  ``google.auth.compute_engine._metadata`` is *imported*): service-account info
  (``?recursive=true``), ``email``, ``scopes``, ``aliases``, ``token`` (access token),
  ``identity?audience=A&format=full`` (the RS256 ID token that ``fetch_id_token`` /
  ``fetch_id_token_credentials`` return), ``project/project-id``,
  ``project/numeric-project-id``, ``universe/universe-domain``. ``default`` and the
  configured email are both accepted as the service-account alias.
* IAM Credentials impersonation: ``POST /v1/projects/-/serviceAccounts/{email}:
  generateAccessToken`` and ``...:generateIdToken`` (need ``Authorization: Bearer``).
  google-auth builds these URLs from module templates in ``google.auth.iam``
  (``_IAM_ENDPOINT`` and ``_IAM_IDTOKEN_ENDPOINT``, ``{}`` = target email), read at call
  time, so a test redirects them with :meth:`MetadataServer.patch_iam_endpoints`
  (``monkeypatch.setattr`` on those two strings). ``impersonated_credentials.Credentials``
  also takes ``iam_endpoint_override=server.iam_url(email, "generateAccessToken")``.
* Public keys: ``GET /oauth2/v1/certs`` (``{kid: PEM x509}``, what
  ``id_token.verify_token(..., certs_url=server.certs_url)`` uses without extra deps) and
  ``GET /oauth2/v3/certs`` (JWKS; google-auth needs PyJWT, not installed, to verify with it).

Tokens are signed with an RSA key generated at ``__init__``; :meth:`mint_token` signs
arbitrary (also expired, foreign-key) tokens for push-endpoint tests.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import itertools
import json
import threading
import time
import urllib.parse
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler
from typing import Any, NamedTuple

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt

from tests.support.ports import LOOPBACK
from tests.support.servers import ThreadedServer

DEFAULT_EMAIL = "email-worker@test-project.iam.gserviceaccount.com"
DEFAULT_PROJECT_ID = "test-project"
DEFAULT_NUMERIC_PROJECT_ID = "424242424242"
ISSUER = "https://accounts.google.com"
_FLAVOR = ("Metadata-Flavor", "Google")
_MDS_PREFIX = "/computeMetadata/v1/"
_IAM_PREFIX = "/v1/projects/-/serviceAccounts/"


class RecordedRequest(NamedTuple):
    method: str
    path: str
    query: dict[str, str]


class _Reply(NamedTuple):
    status: int
    content_type: str
    body: bytes


def unique_id_for(email: str) -> str:
    """A stable 21-digit numeric id per account, shaped like Google's ``sub``/``azp``."""
    digest = int(hashlib.sha256(email.encode()).hexdigest(), 16)
    return "1" + str(digest)[:20]


class _SigningKey:
    """An RSA key with its kid, a self-signed certificate and JWK, as Google publishes."""

    def __init__(self, kid: str | None = None) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        public_der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.kid = kid or hashlib.sha1(public_der).hexdigest()  # an id, not for security
        self.signer = crypt.RSASigner.from_string(pem, key_id=self.kid)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "metadata-stand-in")])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .sign(key, hashes.SHA256())
        )
        self.cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
        numbers = key.public_key().public_numbers()
        self.jwk = {
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "kid": self.kid,
            "n": _b64url_uint(numbers.n),
            "e": _b64url_uint(numbers.e),
        }


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class MetadataServer(ThreadedServer):
    """GCE metadata + IAM Credentials + certs stand-in on 127.0.0.1 (see module doc)."""

    def __init__(
        self,
        email: str = DEFAULT_EMAIL,
        project_id: str = DEFAULT_PROJECT_ID,
        numeric_project_id: str = DEFAULT_NUMERIC_PROJECT_ID,
        token_lifetime_s: int = 3600,
        port: int | None = None,
    ) -> None:
        self.email = email
        self.project_id = project_id
        self.numeric_project_id = numeric_project_id
        self.token_lifetime_s = token_lifetime_s
        super().__init__(_Handler, "metadata-server", port)
        self.key = _SigningKey()
        # Never published but claiming the published kid: a forged token.
        self.unpublished_key = _SigningKey(kid=self.key.kid)
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._faults: list[list[Any]] = []  # [path_substring, status, remaining or None]
        self._token_counter = itertools.count(1)

    # -- lifecycle -------------------------------------------------------------------

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``, the value for ``GCE_METADATA_HOST``/``GCE_METADATA_IP``."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def certs_url(self) -> str:
        """PEM certificates by kid, for ``id_token.verify_token(certs_url=...)``."""
        return f"{self.url}/oauth2/v1/certs"

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/oauth2/v3/certs"

    # -- request log and faults ------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def identity_requests(self) -> list[RecordedRequest]:
        """Requests to the ID-token (``.../identity``) endpoint, in order."""
        return [r for r in self.requests if r.path.endswith("/identity")]

    def count(self, path_substring: str) -> int:
        return sum(path_substring in r.path for r in self.requests)

    def fail(self, path_substring: str, status: int = 503, times: int | None = 1) -> None:
        """Answer the next ``times`` matching requests (None: all) with ``status``.

        google-auth retries metadata 5xx/429 answers a few times, so ``times=1`` exercises
        its retry and ``times=None`` an outage of that endpoint.
        """
        with self._lock:
            self._faults.append([path_substring, status, times])

    def reset(self) -> None:
        """Forget logged requests and pending faults."""
        with self._lock:
            self._requests.clear()
            self._faults.clear()

    def _record(self, request: RecordedRequest) -> int | None:
        """Log the request; return a fault status if one applies to it."""
        with self._lock:
            self._requests.append(request)
            for fault in self._faults:
                substring, status, remaining = fault
                if substring in request.path and remaining != 0:
                    if remaining is not None:
                        fault[2] = remaining - 1
                    return int(status)
        return None

    # -- tokens ----------------------------------------------------------------------

    def mint_token(
        self,
        audience: str,
        email: str | None = None,
        *,
        include_email: bool = True,
        unpublished_key: bool = False,
        **overrides: Any,
    ) -> str:
        """Sign a Google-style ID token for ``email`` (default: the configured account).

        ``overrides`` replace claims and a ``None`` override drops one, e.g.
        ``mint_token(aud, iat=now - 7200, exp=now - 3600)`` is expired and
        ``mint_token(aud, email_verified=None)`` lacks that claim. ``include_email=False``
        omits ``email``/``email_verified`` (as IAM does without ``includeEmail``);
        ``unpublished_key=True`` signs with a key absent from the certs endpoints (same kid),
        so signature verification fails.
        """
        email = email or self.email
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": audience,
            "azp": unique_id_for(email),
            "sub": unique_id_for(email),
            "email": email,
            "email_verified": True,
            "iat": now,
            "exp": now + self.token_lifetime_s,
        }
        if not include_email:
            del claims["email"], claims["email_verified"]
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        key = self.unpublished_key if unpublished_key else self.key
        token: bytes = jwt.encode(key.signer, claims)
        return token.decode()

    def patch_iam_endpoints(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Point google-auth's IAM Credentials URL templates at this server."""
        import google.auth.iam as iam

        monkeypatch.setattr(iam, "_IAM_ENDPOINT", self.iam_url("{}", "generateAccessToken"))
        monkeypatch.setattr(iam, "_IAM_IDTOKEN_ENDPOINT", self.iam_url("{}", "generateIdToken"))

    def iam_url(self, email: str, method: str) -> str:
        return f"{self.url}{_IAM_PREFIX}{email}:{method}"

    def _access_token(self) -> str:
        return f"ya29.stand-in-{next(self._token_counter)}"

    # -- routing ---------------------------------------------------------------------

    def _metadata(self, path: str, query: Mapping[str, str]) -> _Reply:
        """Answer ``/computeMetadata/v1/<path>``."""
        fixed = {
            "project/project-id": self.project_id,
            "project/numeric-project-id": self.numeric_project_id,
            "universe/universe-domain": "googleapis.com",
            "instance/id": "1234567890123456789",
            "instance/zone": f"projects/{self.numeric_project_id}/zones/europe-west2-a",
            "instance/service-accounts/": f"default/\n{self.email}/\n",
        }
        if path in fixed:
            return _text(fixed[path])
        prefix = "instance/service-accounts/"
        if not path.startswith(prefix):
            return _not_found()
        account, _, leaf = path[len(prefix) :].partition("/")
        if account not in ("default", self.email):
            return _not_found()
        info = {"aliases": ["default"], "email": self.email, "scopes": _SCOPES}
        if leaf == "":
            if query.get("recursive") == "true":
                return _json(info)
            return _text("aliases\nemail\nidentity\nscopes\ntoken\n")
        if leaf == "email":
            return _text(self.email)
        if leaf == "aliases":
            return _text("default\n")
        if leaf == "scopes":
            return _text("\n".join(_SCOPES) + "\n")
        if leaf == "token":
            return _json(
                {
                    "access_token": self._access_token(),
                    "expires_in": self.token_lifetime_s,
                    "token_type": "Bearer",
                }
            )
        if leaf == "identity":
            audience = query.get("audience", "")
            if not audience:
                return _Reply(400, "text/plain", b"non-empty audience parameter required")
            extra: dict[str, Any] = {}
            if query.get("format") == "full":
                # What GCE adds for format=full; google-auth always asks for it.
                extra["google"] = {
                    "compute_engine": {
                        "project_id": self.project_id,
                        "project_number": int(self.numeric_project_id),
                        "zone": "europe-west2-a",
                        "instance_id": "1234567890123456789",
                        "instance_name": "email-worker-test",
                    }
                }
            # text/html like GCE: google-auth JSON-decodes application/json answers only.
            return _Reply(200, "text/html", self.mint_token(audience, **extra).encode())
        return _not_found()

    def _iam(self, target: str, body: Mapping[str, Any]) -> _Reply:
        """Answer IAM Credentials ``generateAccessToken``/``generateIdToken``."""
        email, _, method = urllib.parse.unquote(target).rpartition(":")
        if method == "generateAccessToken":
            lifetime = int(str(body.get("lifetime", "3600s")).rstrip("s"))
            expiry = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=lifetime)
            # google-auth parses exactly "%Y-%m-%dT%H:%M:%SZ": no fractional seconds.
            return _json(
                {
                    "accessToken": self._access_token(),
                    "expireTime": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
            )
        if method == "generateIdToken":
            audience = body.get("audience")
            if not audience:
                return _json({"error": {"code": 400, "message": "audience required"}}, 400)
            include_email = bool(body.get("includeEmail"))
            token = self.mint_token(audience, email=email, include_email=include_email)
            return _json({"token": token})
        return _not_found()

    def _certs(self, version: str) -> _Reply:
        if version == "v1":
            return _json({self.key.kid: self.key.cert_pem})
        return _json({"keys": [self.key.jwk]})

    def handle(self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes) -> _Reply:
        parsed = urllib.parse.urlsplit(raw_path)
        query = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
        fault = self._record(RecordedRequest(method, parsed.path, query))
        if fault is not None:
            return _Reply(fault, "text/plain", b"injected fault")
        path = parsed.path
        if path == "/":
            return _text("ok")
        if path.startswith(_MDS_PREFIX):
            if headers.get("metadata-flavor") != "Google":
                return _Reply(403, "text/plain", b"Missing Metadata-Flavor: Google header")
            return self._metadata(path[len(_MDS_PREFIX) :], query)
        if path in ("/oauth2/v1/certs", "/oauth2/v3/certs") and method == "GET":
            return self._certs(path.split("/")[2])
        if path.startswith(_IAM_PREFIX) and method == "POST":
            if not headers.get("authorization", "").startswith("Bearer "):
                return _json({"error": {"code": 401, "message": "missing bearer token"}}, 401)
            try:
                payload = json.loads(body or b"{}")
            except ValueError:
                return _json({"error": {"code": 400, "message": "invalid JSON"}}, 400)
            return self._iam(path[len(_IAM_PREFIX) :], payload)
        return _not_found()


_SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]


def _text(value: str) -> _Reply:
    return _Reply(200, "application/text", value.encode())


def _json(value: object, status: int = 200) -> _Reply:
    return _Reply(status, "application/json", json.dumps(value).encode())


def _not_found() -> _Reply:
    return _Reply(404, "text/html", b"Not Found")


class _Handler(BaseHTTPRequestHandler):
    server_version = "Metadata-Server-For-Tests"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        owner: MetadataServer = self.server.owner  # type: ignore[attr-defined]
        reply = owner.handle(self.command, self.path, headers, body)
        self.send_response(reply.status)
        self.send_header(*_FLAVOR)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    do_GET = do_POST = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request stderr lines; ``MetadataServer.requests`` has them."""
