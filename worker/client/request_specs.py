"""What a service asks to send: the request specs, and their check by the worker's own parser.

`prepare_request` turns a spec (or a plain mapping) into the bytes to publish, with a request
id, checked locally with :func:`worker.formats.request.parse_request`, so a malformed request
raises `RequestRejected` at once. `worker.client.email_client` publishes them.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worker.client.references import GcsAttachmentSpec, TemplateSpec, guessed_type
from worker.formats.error_codes import ErrorCode
from worker.formats.request import EmailRequest, RequestRejected, parse_request

__all__ = [
    "MAX_REQUEST_BYTES",
    "AttachmentSpec",
    "EmailRequestSpec",
    "prepare_checked",
    "prepare_request",
]

#: Pub/Sub's limit on one message's data.
MAX_REQUEST_BYTES = 10_000_000
# Placeholder service for local checks when neither the request nor the client names one:
# the worker may still have a default (EMAIL_WORKER_SERVICE_ID), so this is not an error here.
_PLACEHOLDER_SERVICE = "local-check"


@dataclass(frozen=True, repr=False)
class AttachmentSpec:
    """A file to attach: its name, bytes and MIME type (``type/subtype``, no parameters)."""

    filename: str
    content: bytes
    content_type: str = "application/octet-stream"

    @classmethod
    def from_path(cls, path: str | Path, content_type: str | None = None) -> AttachmentSpec:
        """Read ``path``; the type is guessed from its name unless given."""
        path = Path(path)
        if content_type is None:
            # A compressed file (.tar.gz) is sent as opaque bytes, not as its inner type.
            content_type = guessed_type(path.name)
        return cls(filename=path.name, content=path.read_bytes(), content_type=content_type)

    def to_dict(self) -> dict[str, str]:
        return {
            "filename": self.filename,
            "content_type": self.content_type,
            "content_base64": base64.b64encode(self.content).decode("ascii"),
        }

    def __repr__(self) -> str:
        return f"AttachmentSpec(content_type={self.content_type!r}, size={len(self.content)})"


@dataclass(frozen=True, repr=False)
class EmailRequestSpec:
    """A v1 request (see docs/formats.md). Empty and ``None`` fields are left out.

    ``sender`` is the request's ``from``. Give ``raw`` (a complete RFC 5322 message), or a
    ``template`` with its data, instead of ``subject``/``text``/``html``. ``attachments`` may
    mix files (`AttachmentSpec`) and objects the worker reads (`GcsAttachmentSpec`).
    """

    to: Sequence[str] = ()
    cc: Sequence[str] = ()
    bcc: Sequence[str] = ()
    subject: str | None = None
    text: str | None = None
    html: str | None = None
    sender: str | None = None
    reply_to: Sequence[str] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    attachments: Sequence[AttachmentSpec | GcsAttachmentSpec] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    template: TemplateSpec | None = None
    service_id: str | None = None
    request_id: str | None = None

    def to_document(self) -> dict[str, Any]:
        """The request as the JSON object the worker reads."""
        document: dict[str, Any] = {"version": 1}
        for name, value in (
            ("request_id", self.request_id),
            ("service_id", self.service_id),
            ("from", self.sender),
            ("to", list(self.to)),
            ("cc", list(self.cc)),
            ("bcc", list(self.bcc)),
            ("reply_to", list(self.reply_to)),
            ("subject", self.subject),
            ("text", self.text),
            ("html", self.html),
            ("headers", dict(self.headers)),
            ("attachments", [a.to_dict() for a in self.attachments]),
            ("tags", dict(self.tags)),
        ):
            if value is not None and value != [] and value != {}:
                document[name] = value
        if self.raw is not None:
            document["raw"] = base64.b64encode(self.raw).decode("ascii")
        if self.template is not None:
            document["template"] = self.template.to_dict()
        return document

    def __repr__(self) -> str:
        return f"EmailRequestSpec(request_id={self.request_id!r}, service_id={self.service_id!r})"


def prepare_request(
    request: Mapping[str, Any] | EmailRequestSpec, *, default_service_id: str | None = None
) -> tuple[str, bytes]:
    """``(request_id, data)`` for publishing ``request``, checked like the worker would.

    A ``request_id`` is generated (a UUID) when the request has none, and ``service_id`` is
    filled in from ``default_service_id`` when given. Raises `RequestRejected`.
    """
    parsed, data, _ = prepare_checked(request, default_service_id=default_service_id)
    return parsed.request_id, data


def prepare_checked(
    request: Mapping[str, Any] | EmailRequestSpec, *, default_service_id: str | None
) -> tuple[EmailRequest, bytes, str | None]:
    """What :func:`prepare_request` does, also returning the parsed request and the service
    it names (None when it names none)."""
    document = dict(request.to_document() if isinstance(request, EmailRequestSpec) else request)
    if document.get("request_id") is None:
        document["request_id"] = str(uuid.uuid4())
    if document.get("service_id") is None and default_service_id is not None:
        document["service_id"] = default_service_id
    try:
        data = json.dumps(document, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as error:
        raise RequestRejected(
            ErrorCode.INVALID_JSON, f"the request cannot be written as JSON: {error}"
        ) from None
    parsed = parse_request(
        data,
        pubsub_message_id="local-check",
        default_service_id=default_service_id or _PLACEHOLDER_SERVICE,
    )
    if len(data) > MAX_REQUEST_BYTES:
        raise RequestRejected(
            ErrorCode.MESSAGE_TOO_LARGE,
            f"the request is {len(data)} bytes; Pub/Sub messages are limited to "
            f"{MAX_REQUEST_BYTES} bytes",
        )
    service_id = document.get("service_id")
    return parsed, data, service_id if isinstance(service_id, str) else None
