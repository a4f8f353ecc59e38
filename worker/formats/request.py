"""Request format v1: turn Pub/Sub message data into a validated `EmailRequest`.

`parse_request` is the only entry point for untrusted bytes. It either
returns an `EmailRequest` whose every field already satisfies the rules in
``docs/formats.md`` or raises `RequestRejected`; no other exception escapes,
whatever the input. Rejection messages may name a field but never repeat
addresses, bodies, header values or attachment content. Address syntax is
checked in `worker.formats.addresses`.

The work is split by role: `request_json` decodes the bytes, `request_fields`,
`request_attachments` and `request_raw` check each part, and `request_model` holds the limits
and the dataclasses. Every public name stays importable from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from worker.config.settings import SERVICE_ID_RE
from worker.formats.addresses import Mailbox, parse_mailbox, parse_mailbox_list
from worker.formats.error_codes import ErrorCode
from worker.formats.json_depth import MAX_JSON_DEPTH
from worker.formats.rejection import RequestRejected, reject
from worker.formats.request_attachments import parse_attachments
from worker.formats.request_fields import (
    STRUCTURED_FIELDS,
    check_recipient_count,
    is_valid_request_id,
    parse_body,
    parse_headers,
    parse_priority,
    parse_request_id,
    parse_service_id,
    parse_subject,
    parse_tags,
    parse_template,
)
from worker.formats.request_json import decode_json, quote_name
from worker.formats.request_model import (
    MAX_ATTACHMENTS,
    MAX_FILENAME_LENGTH,
    MAX_HEADER_NAME_LENGTH,
    MAX_HEADER_VALUE_LENGTH,
    MAX_HEADERS,
    MAX_RECIPIENTS,
    MAX_REPLY_TO,
    MAX_REQUEST_ID_LENGTH,
    MAX_SUBJECT_LENGTH,
    MAX_TAG_LENGTH,
    MAX_TAGS,
    REQUEST_VERSION,
    RESERVED_HEADER_NAMES,
    RESERVED_HEADER_PREFIXES,
    Attachment,
    AttachmentRef,
    EmailRequest,
    TemplateRef,
    is_reserved_header,
    request_summary_for_logs,
)
from worker.formats.request_raw import (
    MAX_RAW_ADDRESS_FIELD_LENGTH,
    MAX_RAW_CHECKED_FIELDS_LENGTH,
    MAX_RAW_MIME_FIELD_LENGTH,
    parse_raw_content,
)
from worker.formats.send_at import parse_send_at

__all__ = [
    "MAX_ATTACHMENTS",
    "MAX_FILENAME_LENGTH",
    "MAX_HEADERS",
    "MAX_HEADER_NAME_LENGTH",
    "MAX_HEADER_VALUE_LENGTH",
    "MAX_JSON_DEPTH",
    "MAX_RAW_ADDRESS_FIELD_LENGTH",
    "MAX_RAW_CHECKED_FIELDS_LENGTH",
    "MAX_RAW_MIME_FIELD_LENGTH",
    "MAX_RECIPIENTS",
    "MAX_REPLY_TO",
    "MAX_REQUEST_ID_LENGTH",
    "MAX_SUBJECT_LENGTH",
    "MAX_TAGS",
    "MAX_TAG_LENGTH",
    "REQUEST_VERSION",
    "RESERVED_HEADER_NAMES",
    "RESERVED_HEADER_PREFIXES",
    "Attachment",
    "AttachmentRef",
    "EmailRequest",
    "RequestRejected",
    "TemplateRef",
    "is_reserved_header",
    "parse_request",
    "request_summary_for_logs",
]
_TOP_LEVEL_FIELDS = frozenset(
    {"version", "request_id", "service_id", "from", "to", "cc", "bcc", "raw", "tags"}
    | {"send_at", "priority"}
    | STRUCTURED_FIELDS
)


# --------------------------------------------------------------------------
# Entry point


def parse_request(
    data: bytes, *, pubsub_message_id: str, default_service_id: str | None
) -> EmailRequest:
    """Validate Pub/Sub message `data` as a v1 request.

    `pubsub_message_id` becomes the request_id when the request has none;
    `default_service_id` (the worker's configured service) applies when the
    request names no service. Raises `RequestRejected` and nothing else.
    """
    document = decode_json(data)
    if not isinstance(document, dict):
        reject(ErrorCode.INVALID_REQUEST, "the request must be a JSON object")
    request_id, service_id = _peek_ids(document, default_service_id)
    try:
        return _parse_document(
            document,
            pubsub_message_id=pubsub_message_id,
            default_service_id=default_service_id,
        )
    except RequestRejected as exc:
        # Let the worker still address its result to the right request.
        exc.request_id = request_id
        exc.service_id = service_id
        raise


# --------------------------------------------------------------------------
# Document level


def _parse_document(
    document: dict[str, Any], *, pubsub_message_id: str, default_service_id: str | None
) -> EmailRequest:
    _check_version(document)
    unknown = sorted(set(document) - _TOP_LEVEL_FIELDS)
    if unknown:
        names = ", ".join(quote_name(n) for n in unknown[:5])
        reject(ErrorCode.INVALID_REQUEST, f"unknown field(s): {names}")
    # JSON null means "not given" for every optional field.
    fields = {k: v for k, v in document.items() if v is not None}

    request_id = parse_request_id(fields.get("request_id"), pubsub_message_id)
    service_id = parse_service_id(fields.get("service_id"), default_service_id)
    tags = parse_tags(fields.get("tags"))
    send_at = parse_send_at(fields.get("send_at"))
    high_priority = parse_priority(fields.get("priority"))
    sender = parse_mailbox(fields["from"], field_name="from") if "from" in fields else None
    recipients: Mapping[str, tuple[Mailbox, ...]] = {
        name: parse_mailbox_list(
            fields.get(name), name, limit=MAX_RECIPIENTS, too_many=ErrorCode.TOO_MANY_RECIPIENTS
        )
        for name in ("to", "cc", "bcc")
    }

    if "raw" in fields:
        sender, recipients, content = parse_raw_content(fields, sender, recipients)
    else:
        content = _parse_structured_content(fields, recipients)
    return EmailRequest(
        request_id=request_id,
        service_id=service_id,
        sender=sender,
        to=recipients["to"],
        cc=recipients["cc"],
        bcc=recipients["bcc"],
        tags=tags,
        send_at=send_at,
        high_priority=high_priority,
        **content,
    )


def _parse_structured_content(
    fields: Mapping[str, Any], recipients: Mapping[str, tuple[Mailbox, ...]]
) -> dict[str, Any]:
    """A structured request's own fields of :class:`EmailRequest`."""
    check_recipient_count(sum(len(r) for r in recipients.values()))
    reply_to = parse_mailbox_list(
        fields.get("reply_to"), "reply_to", limit=MAX_REPLY_TO, too_many=ErrorCode.INVALID_REQUEST
    )
    template = parse_template(fields)
    subject = None if template else parse_subject(fields.get("subject"))
    text = parse_body(fields, "text")
    html = parse_body(fields, "html")
    if text is None and html is None and template is None:
        reject(ErrorCode.INVALID_REQUEST, "at least one of text and html is required")
    return {
        "reply_to": reply_to,
        "subject": subject,
        "text": text,
        "html": html,
        "headers": parse_headers(fields.get("headers")),
        "attachments": parse_attachments(fields.get("attachments")),
        "template": template,
    }


def _check_version(document: Mapping[str, Any]) -> None:
    version = document.get("version")
    if version is None:
        reject(ErrorCode.INVALID_REQUEST, "version is required")
    # bool is an int subclass, but JSON true is not the number 1.
    if isinstance(version, bool) or not isinstance(version, int | float) or version != 1:
        reject(ErrorCode.UNSUPPORTED_VERSION, "unsupported version; this worker accepts version 1")


def _peek_ids(
    document: Mapping[str, Any], default_service_id: str | None
) -> tuple[str | None, str | None]:
    """Best-effort request_id/service_id for correlating a rejection; never raises."""
    request_id = document.get("request_id")
    if not (isinstance(request_id, str) and is_valid_request_id(request_id)):
        request_id = None
    service_id = document.get("service_id")
    if service_id is None:
        service_id = default_service_id
    if not (isinstance(service_id, str) and SERVICE_ID_RE.fullmatch(service_id)):
        service_id = None
    return request_id, service_id
