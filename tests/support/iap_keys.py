"""A stand-in for Identity-Aware Proxy's public keys: an ES256 key served at a local URL.

IAP signs ``x-goog-iap-jwt-assertion`` with ES256 and publishes its public keys, PEM by key
id, at https://www.gstatic.com/iap/verify/public_key. This server publishes one key of ours
the same way on loopback (the console's EMAIL_WORKER_CONSOLE_IAP_CERTS_URL in tests), and
:meth:`IapKeys.assertion` signs assertions with it, or with a key it does not publish.
"""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from google.auth import crypt, jwt

from tests.support.servers import ThreadedServer

ISSUER = "https://cloud.google.com/iap"
AUDIENCE = "/projects/123456/global/backendServices/7890"


class _Key:
    def __init__(self, kid: str) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self.kid = kid
        self.signer = crypt.ES256Signer.from_string(private, key_id=kid)
        self.public_pem = (
            key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        owner: IapKeys = self.server.owner  # type: ignore[attr-defined]
        owner.fetches += 1
        body = json.dumps({owner.key.kid: owner.key.public_pem}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


class IapKeys(ThreadedServer):
    """Serves ``{key id: PEM public key}`` at ``certs_url`` and signs assertions."""

    def __init__(self) -> None:
        super().__init__(_Handler, "iap-keys")
        self.key = _Key("iap-test-key")
        self._unpublished = _Key("iap-test-key")  # same key id, another key: a forgery
        self.fetches = 0

    @property
    def certs_url(self) -> str:
        return f"{self.endpoint}/iap/verify/public_key"

    def assertion(
        self, email: str, *, audience: str = AUDIENCE, forged: bool = False, **claims: Any
    ) -> str:
        """An assertion for ``email`` as IAP writes it (``claims`` override)."""
        now = int(time.time())
        payload = {
            "iss": ISSUER,
            "aud": audience,
            "sub": "accounts.google.com:1234",
            "email": f"accounts.google.com:{email}",
            "iat": now,
            "exp": now + 600,
            **claims,
        }
        signer = self._unpublished.signer if forged else self.key.signer
        token: bytes = jwt.encode(signer, payload)
        return token.decode()
