"""moto in server mode, as a subprocess on a free loopback port (STS and SES v2 for us).

Quirks worth knowing when writing tests against it:

* moto does not check web-identity tokens: ``AssumeRoleWithWebIdentity`` succeeds for any
  token and role ARN. It returns credentials whose account is the role ARN's account, and
  later calls signed with them act in that account. Identities verified by
  :meth:`MotoServer.verify_email_identity` live in ``account_id`` (default
  ``123456789012``, moto's default account, which the static ``testing`` keys map to),
  so a worker role must be in that account or the send is rejected as unverified.
* moto treats an identity as verified as soon as it exists (``create_email_identity``),
  although ``GetEmailIdentity`` reports ``VerifiedForSendingStatus: false``.
* Sent mail is read through a route our launcher adds (see ``_moto_main.py``).
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from tests.support.ports import LOOPBACK
from tests.support.process import ManagedProcess
from tests.support.servers import SubprocessServer

DEFAULT_ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "eu-west-2"
_LAUNCHER = Path(__file__).with_name("_moto_main.py")


@dataclass(frozen=True)
class SentMessage:
    """One message moto accepted. ``destinations`` are the envelope recipients."""

    source: str
    destinations: list[str]
    raw_data: str | None  # the MIME text for raw sends (what the worker uses)
    region: str
    account_id: str
    message_id: str | None
    subject: str | None = None  # only for "Simple" content sends
    body: str | None = None
    #: The SES message tags of a raw send, as SES applies them (the call's EmailTags, else the
    #: X-SES-MESSAGE-TAGS header); None for other sends.
    tags: dict[str, str] | None = None


class MotoServer(SubprocessServer):
    start_timeout_s = 60.0

    def __init__(self, port: int | None = None) -> None:
        super().__init__(port)
        env = dict(os.environ)
        # The server answers for every account; keep it from using ours.
        env.pop("MOTO_ACCOUNT_ID", None)
        self._process = ManagedProcess(
            "moto", [sys.executable, str(_LAUNCHER), LOOPBACK, str(self.port)], env=env
        )

    def _probe(self) -> bool:
        self._get("/moto-api/data.json")  # a cheap call once moto is fully up
        return True

    def _get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.endpoint}{path}", timeout=10) as response:
            return json.load(response)

    def reset(self) -> None:
        """Drop all moto state (identities, sent mail, assumed roles) in every account."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def admin_client(
        self, service: str, region: str = DEFAULT_REGION, account_id: str | None = None
    ) -> Any:
        """A boto3 client straight to moto, with dummy static keys (test arranging only).

        ``account_id`` acts in another moto account (moto's ``x-moto-account-id`` header).
        """
        client = boto3.client(
            service,  # type: ignore[call-overload]
            region_name=region,
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        if account_id is not None:

            def add_account_header(request: Any, **_: Any) -> None:
                request.headers["x-moto-account-id"] = account_id

            client.meta.events.register("before-sign", add_account_header)
        return client

    def verify_email_identity(
        self,
        identity: str,
        region: str = DEFAULT_REGION,
        account_id: str = DEFAULT_ACCOUNT_ID,
    ) -> None:
        """Create an SES v2 identity (address or domain); moto lets it send at once."""
        self.admin_client("sesv2", region, account_id).create_email_identity(EmailIdentity=identity)

    def sent_messages(
        self, region: str | None = None, account_id: str | None = None
    ) -> list[SentMessage]:
        """Messages moto accepted, oldest first per account/region, optionally filtered."""
        return [
            SentMessage(
                source=m["source"],
                destinations=m["destinations"],
                raw_data=m["raw_data"],
                region=m["region"],
                account_id=m["account_id"],
                message_id=m["id"],
                subject=m.get("subject"),
                body=m.get("body"),
                tags=m.get("tags"),
            )
            for m in self._get("/_support/ses/sent-messages")
            if region in (None, m["region"]) and account_id in (None, m["account_id"])
        ]
