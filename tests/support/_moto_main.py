"""Run moto's server exactly as ``moto_server -H HOST -p PORT`` does, plus one read-only route.

Why not the stock CLI: in server mode moto exposes sent SES mail only through
``GET /moto-api/data.json``, which lists ``ses.RawMessage``/``ses.Message`` instances
without their account or region. ``GET /_support/ses/sent-messages`` reads the same
backend lists (``ses_backends[account][region].sent_messages``, which SES v2 sends also
land in) and labels each message with both.

Each described message also has ``tags``: the SES message tags SES would apply to it, by
SES's rule for raw sends (the call's ``EmailTags`` if it passed any, which moto itself drops,
else the message's ``X-SES-MESSAGE-TAGS`` header).

Started by ``tests/support/moto_server.py`` as ``python _moto_main.py HOST PORT``.
"""

from __future__ import annotations

import email
import json
import os
import sys
from collections.abc import Callable
from email.parser import HeaderParser
from typing import Any

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.ses.exceptions import MessageRejectedError
from moto.ses.models import RawMessage, SESBackend, ses_backends
from moto.sesv2.responses import SESV2Response
from werkzeug.serving import run_simple

SENT_MESSAGES_PATH = "/_support/ses/sent-messages"


_moto_send_raw_email = SESBackend.send_raw_email


def _send_raw_email(
    self: SESBackend, source: str, destinations: list[str], raw_data: str
) -> RawMessage:
    """SES's envelope rule: explicit destinations replace the header recipients.

    moto appends the To/Cc/Bcc header addresses to explicit destinations and applies the
    50-recipient limit to the sum, so a 50-address batch of a 120-recipient message is
    refused although SES accepts it. Hand moto a copy without those headers, then keep the
    real message text on what it records.
    """
    try:
        if not destinations:
            return _moto_send_raw_email(self, source, destinations, raw_data)
        message = email.message_from_string(raw_data)
        for header in ("To", "Cc", "Bcc"):
            del message[header]
        recorded = _moto_send_raw_email(self, source, destinations, message.as_string())
    except MessageRejectedError as error:
        # moto words an unverified sender its own way; SES says "not verified".
        if "Did not have authority to send from" not in str(error):
            raise
        raise MessageRejectedError(
            "Email address is not verified. The following identities failed the check in "
            f"region {self.region_name.upper()}: {source}"
        ) from None
    recorded.raw_data = raw_data
    return recorded


SESBackend.send_raw_email = _send_raw_email  # type: ignore[method-assign]


_moto_v2_send_email = SESV2Response.send_email


def _v2_send_email(self: SESV2Response) -> str:
    """moto's SES v2 SendEmail, keeping the call's EmailTags on the message it records."""
    answer = _moto_v2_send_email(self)
    email_tags = json.loads(self.body).get("EmailTags")
    if email_tags:
        message_id = json.loads(answer)["MessageId"]
        backend = ses_backends[self.current_account][self.region]
        for message in reversed(list(backend.sent_messages)):  # the newest is ours
            if getattr(message, "id", None) == message_id:
                message.email_tags = {t["Name"]: t["Value"] for t in email_tags}
                break
    return answer


SESV2Response.send_email = _v2_send_email  # type: ignore[method-assign]


def _header_tags(raw_data: str) -> dict[str, str]:
    values = HeaderParser().parsestr(raw_data).get_all("X-SES-MESSAGE-TAGS", [])
    pairs = (item.strip().partition("=") for value in values for item in str(value).split(","))
    return {name.strip(): value.strip() for name, _, value in pairs if name.strip()}


def _describe(account_id: str, region: str, message: Any) -> dict[str, Any]:
    described: dict[str, Any] = {
        "account_id": account_id,
        "region": region,
        "id": getattr(message, "id", None),
        "source": message.source,
        "moto_destinations": message.destinations,
    }
    if isinstance(message, RawMessage):
        # With the envelope rule above, moto's list is the envelope either way: the given
        # destinations, or the header recipients when none were given.
        described.update(destinations=message.destinations, raw_data=message.raw_data)
        # SES uses the call's EmailTags alone when there are any, else the header's.
        tags = getattr(message, "email_tags", None)
        described.update(tags=tags if tags is not None else _header_tags(message.raw_data))
    else:
        destinations = message.destinations
        if isinstance(destinations, dict):  # SendEmail's {"ToAddresses": [...], ...}
            destinations = [a for addresses in destinations.values() for a in addresses]
        described.update(
            destinations=destinations,
            raw_data=None,
            subject=getattr(message, "subject", None),
            body=getattr(message, "body", None),
        )
    return described


def sent_messages() -> list[dict[str, Any]]:
    return [
        _describe(account_id, region, message)
        for account_id, region, backend in list(ses_backends.iter_backends())
        for message in list(backend.sent_messages)  # type: ignore[attr-defined]
    ]


def with_support_routes(app: Callable[..., Any]) -> Callable[..., Any]:
    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") == SENT_MESSAGES_PATH:
            body = json.dumps(sent_messages()).encode()
            start_response(
                "200 OK",
                [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
            )
            return [body]
        return app(environ, start_response)

    return wsgi


def main(host: str, port: int) -> None:
    # Same setup as moto.server.main (moto's own URLs embed MOTO_PORT).
    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        host,
        port,
        with_support_routes(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
