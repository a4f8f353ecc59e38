"""Run moto's server exactly as ``moto_server -H HOST -p PORT`` does, plus one read-only route.

Why not the stock CLI: in server mode moto exposes sent SES mail only through
``GET /moto-api/data.json``, which lists ``ses.RawMessage``/``ses.Message`` instances
without their account or region. ``GET /_support/ses/sent-messages`` reads the same
backend lists (``ses_backends[account][region].sent_messages``, which SES v2 sends also
land in) and labels each message with both.

Started by ``tests/support/moto_server.py`` as ``python _moto_main.py HOST PORT``.
"""

from __future__ import annotations

import email
import json
import os
import sys
from collections.abc import Callable
from email.utils import getaddresses
from typing import Any

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.ses.models import RawMessage, ses_backends
from werkzeug.serving import run_simple

SENT_MESSAGES_PATH = "/_support/ses/sent-messages"


def _header_recipients(raw_data: str) -> list[str]:
    """The To/Cc/Bcc addresses moto appends to a raw message's ``destinations``."""
    message = email.message_from_string(raw_data)
    values = [message[h] for h in ("TO", "CC", "BCC") if h in message]
    return [address for _, address in getaddresses(values) if address]


def _describe(account_id: str, region: str, message: Any) -> dict[str, Any]:
    described: dict[str, Any] = {
        "account_id": account_id,
        "region": region,
        "id": getattr(message, "id", None),
        "source": message.source,
        "moto_destinations": message.destinations,
    }
    if isinstance(message, RawMessage):
        # moto extends the request's Destination list in place with the parsed header
        # recipients; strip those to get the envelope (SES uses the headers if none given).
        from_headers = _header_recipients(message.raw_data)
        given = message.destinations[: len(message.destinations) - len(from_headers)]
        described.update(destinations=given or from_headers, raw_data=message.raw_data)
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
