"""Cancel format v1: a service's message that cancels one of its scheduled requests.

Published on the service's own topic like its requests::

    {"version": 1, "cancel": "REQUEST_ID"}

with an optional ``service_id``, which must then be the service whose topic carried it (a
service cancels only its own requests). :func:`parse_cancel` tells a cancel from a request
cheaply: only a small message holding the key ``"cancel"`` is decoded here; anything else is
a request, for :func:`worker.formats.request.parse_request`. The JSON Schema is
``worker/formats/schemas/cancel-v1.schema.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from worker.config.settings import SERVICE_ID_RE
from worker.formats.error_codes import ErrorCode
from worker.formats.rejection import RequestRejected, reject

__all__ = ["MAX_CANCEL_BYTES", "CancelRequest", "parse_cancel"]

#: A cancel message is at most this large; a larger message is a request.
MAX_CANCEL_BYTES = 4096
_FIELDS = frozenset({"version", "cancel", "service_id"})
_MAX_REQUEST_ID_LENGTH = 128


@dataclass(frozen=True)
class CancelRequest:
    """Cancel the scheduled request ``request_id`` of ``service_id`` (None: the publisher)."""

    request_id: str
    service_id: str | None = None


def parse_cancel(data: bytes) -> CancelRequest | None:
    """The cancel ``data`` holds; None when it is not a cancel message. Raises
    RequestRejected for a cancel message that breaks the format."""
    if len(data) > MAX_CANCEL_BYTES or b'"cancel"' not in data:
        return None
    try:
        document = json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None  # not JSON: the request parser says why
    if not isinstance(document, dict) or "cancel" not in document:
        return None
    try:
        return _cancel(document)
    except RequestRejected as error:
        request_id = document.get("cancel")
        error.request_id = request_id if _valid_request_id(request_id) else None
        raise


def _cancel(document: dict[str, Any]) -> CancelRequest:
    unknown = sorted(set(document) - _FIELDS)
    if unknown:
        reject(ErrorCode.INVALID_REQUEST, "a cancel message has only version, cancel, service_id")
    if document.get("version") != 1 or isinstance(document.get("version"), bool):
        reject(ErrorCode.UNSUPPORTED_VERSION, "unsupported version; this worker accepts version 1")
    request_id = document["cancel"]
    if not _valid_request_id(request_id):
        reject(
            ErrorCode.INVALID_REQUEST, "cancel must be a request_id: 1 to 128 printable characters"
        )
    service_id = document.get("service_id")
    if service_id is not None and not (
        isinstance(service_id, str) and SERVICE_ID_RE.fullmatch(service_id)
    ):
        reject(ErrorCode.INVALID_REQUEST, "service_id is not a valid service id")
    return CancelRequest(request_id, service_id)


def _valid_request_id(value: Any) -> bool:
    return (
        isinstance(value, str) and 1 <= len(value) <= _MAX_REQUEST_ID_LENGTH and value.isprintable()
    )
