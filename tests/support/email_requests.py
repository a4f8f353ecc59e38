"""Email requests parsed from test documents, the way the worker parses what it pulls.

Named `email_requests`, not `requests`: the stand-in servers run with this directory on their
path, where a `requests` module would hide the HTTP library moto imports.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from worker.formats.request import EmailRequest, parse_request

__all__ = ["MESSAGE_ID", "SERVICE_ID", "request_from"]

#: The Pub/Sub message id, and so the request id of a document that names none.
MESSAGE_ID = "p-1"
#: The service of a document that names none.
SERVICE_ID = "svc"


def request_from(
    document: Mapping[str, Any], *, default_service_id: str | None = SERVICE_ID
) -> EmailRequest:
    """Parse ``document`` as the JSON body of a Pub/Sub message with id ``MESSAGE_ID``."""
    return parse_request(
        json.dumps(document).encode(),
        pubsub_message_id=MESSAGE_ID,
        default_service_id=default_service_id,
    )
