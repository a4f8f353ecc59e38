"""The metadata stand-in drives google-auth's real ambient code paths."""

from __future__ import annotations

import base64
import json
import os
import time
import urllib.error
import urllib.request

import google.auth
import google.auth.transport.requests
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import exceptions, impersonated_credentials, jwt
from google.oauth2 import id_token

from tests.support.metadata_server import MetadataServer, unique_id_for

AUDIENCE = "sts.amazonaws.com"


@pytest.fixture
def request_() -> google.auth.transport.requests.Request:
    return google.auth.transport.requests.Request()


def test_fetch_id_token_credentials_uses_the_stand_in(
    clean_metadata: MetadataServer, request_: google.auth.transport.requests.Request
) -> None:
    credentials = id_token.fetch_id_token_credentials(AUDIENCE, request=request_)
    credentials.refresh(request_)

    claims = jwt.decode(credentials.token, verify=False)
    assert claims["iss"] == "https://accounts.google.com"
    assert claims["aud"] == AUDIENCE
    assert claims["email"] == clean_metadata.email
    assert claims["email_verified"] is True
    assert claims["sub"] == claims["azp"] == unique_id_for(clean_metadata.email)
    assert claims["exp"] - claims["iat"] == clean_metadata.token_lifetime_s
    [identity] = clean_metadata.identity_requests()
    assert identity.query == {"audience": AUDIENCE, "format": "full"}

    verified = id_token.verify_token(
        credentials.token, request_, AUDIENCE, certs_url=clean_metadata.certs_url
    )
    assert verified["email"] == clean_metadata.email


def test_default_credentials_and_project(
    clean_metadata: MetadataServer, request_: google.auth.transport.requests.Request
) -> None:
    credentials, project = google.auth.default()
    credentials.refresh(request_)
    assert project == "test-project"
    assert credentials.token is not None
    assert credentials.token.startswith("ya29.")
    assert clean_metadata.count("/token") == 1


def test_minted_tokens_fail_verification_when_expired_or_foreign(
    clean_metadata: MetadataServer, request_: google.auth.transport.requests.Request
) -> None:
    now = int(time.time())
    expired = clean_metadata.mint_token(AUDIENCE, iat=now - 7200, exp=now - 3600)
    foreign = clean_metadata.mint_token(AUDIENCE, unpublished_key=True)
    for token, problem in ((expired, "expired"), (foreign, "signature")):
        with pytest.raises(ValueError, match=problem):
            id_token.verify_token(token, request_, AUDIENCE, certs_url=clean_metadata.certs_url)


def test_metadata_flavor_header_is_required(clean_metadata: MetadataServer) -> None:
    url = f"{clean_metadata.url}/computeMetadata/v1/project/project-id"
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(url, timeout=5)
    assert caught.value.code == 403
    assert caught.value.headers["Metadata-Flavor"] == "Google"


def test_injected_fault_surfaces_as_refresh_error(
    clean_metadata: MetadataServer, request_: google.auth.transport.requests.Request
) -> None:
    clean_metadata.fail("/identity", status=404, times=None)
    credentials = id_token.fetch_id_token_credentials(AUDIENCE, request=request_)
    with pytest.raises(exceptions.RefreshError):
        credentials.refresh(request_)


def test_impersonation_endpoints(
    clean_metadata: MetadataServer,
    request_: google.auth.transport.requests.Request,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clean_metadata.patch_iam_endpoints(monkeypatch)
    target = "sender@other-project.iam.gserviceaccount.com"
    source, _ = google.auth.default()
    impersonated = impersonated_credentials.Credentials(
        source_credentials=source,
        target_principal=target,
        target_scopes=["https://www.googleapis.com/auth/cloud-platform"],
    )
    impersonated.refresh(request_)
    assert impersonated.token is not None
    assert impersonated.token.startswith("ya29.")

    id_credentials = impersonated_credentials.IDTokenCredentials(
        impersonated, target_audience=AUDIENCE, include_email=True
    )
    id_credentials.refresh(request_)
    claims = jwt.decode(
        id_credentials.token,
        certs={clean_metadata.key.kid: clean_metadata.key.cert_pem},
        audience=AUDIENCE,
    )
    assert claims["email"] == target
    assert claims["sub"] == unique_id_for(target)
    assert clean_metadata.count(":generateAccessToken") == 1
    assert clean_metadata.count(":generateIdToken") == 1


def test_jwks_matches_the_signing_key(clean_metadata: MetadataServer) -> None:
    with urllib.request.urlopen(clean_metadata.jwks_url, timeout=5) as response:
        [jwk] = json.load(response)["keys"]
    numbers = rsa.RSAPublicNumbers(e=_b64_int(jwk["e"]), n=_b64_int(jwk["n"]))
    pem = numbers.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    token = clean_metadata.mint_token(AUDIENCE)
    assert jwt.decode_header(token)["kid"] == jwk["kid"]
    assert jwt.decode(token, certs={jwk["kid"]: pem.decode()}, audience=AUDIENCE)


def test_environment_is_isolated(metadata_server: MetadataServer) -> None:
    assert os.environ["GCE_METADATA_HOST"] == metadata_server.host
    assert os.environ["GCE_METADATA_IP"] == metadata_server.host
    assert os.environ["GOOGLE_CLOUD_PROJECT"] == "test-project"
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        assert name not in os.environ
    assert "GOOGLE_APPLICATION_CREDENTIALS" not in os.environ


def _b64_int(value: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), "big")
