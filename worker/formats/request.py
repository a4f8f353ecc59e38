"""Request format v1: turn Pub/Sub message data into a validated `EmailRequest`.

`parse_request` is the only entry point for untrusted bytes. It either
returns an `EmailRequest` whose every field already satisfies the rules in
``docs/formats.md`` or raises `RequestRejected`; no other exception escapes,
whatever the input. Rejection messages may name a field but never repeat
addresses, bodies, header values or attachment content. Address syntax is
checked in `worker.formats.addresses`.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.errors
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Any, NoReturn

from worker.config.gcs_uri import GCS_SCHEME, GcsLocation, GcsUriError, parse_object_uri
from worker.config.settings import SERVICE_ID_RE
from worker.formats.addresses import (
    Mailbox,
    parse_address_header,
    parse_mailbox,
    parse_mailbox_list,
)
from worker.formats.error_codes import ErrorCode
from worker.formats.json_depth import MAX_JSON_DEPTH, nested_too_deep
from worker.formats.mime import MalformedHeaderLineDefect, load_raw_message
from worker.formats.rejection import LINE_BREAK_RE, RequestRejected, check_header_text, reject
from worker.formats.send_at import parse_send_at
from worker.formats.tags import TAG_PREFIX, is_reserved_tag_name

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

REQUEST_VERSION = 1

MAX_REQUEST_ID_LENGTH = 128
# The session sends to SES in batches of 50 recipients; this cap bounds how
# many SES calls (and how much quota) one request can use.
MAX_RECIPIENTS = 1000
MAX_REPLY_TO = 10
MAX_SUBJECT_LENGTH = 998
MAX_HEADERS = 50
MAX_HEADER_NAME_LENGTH = 76
# Short enough that "Name: " plus one unbreakable value stays under the
# 998-character line limit of RFC 5322, so ASCII values can be written as is.
MAX_HEADER_VALUE_LENGTH = 900
MAX_ATTACHMENTS = 100
MAX_FILENAME_LENGTH = 255
MAX_TAGS = 50
MAX_TAG_LENGTH = 256

RESERVED_HEADER_NAMES: frozenset[str] = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "subject",
        "sender",
        "reply-to",
        "message-id",
        "return-path",
        "mime-version",
        "date",
        # The email package parses these two as structured date headers,
        # which would turn a harmless custom value into a build failure.
        "orig-date",
    }
)
RESERVED_HEADER_PREFIXES: tuple[str, ...] = (
    "content-",
    "dkim-",
    # SES acts on X-SES-* headers (configuration set, source ARN, tags), so a
    # requester must not be able to set them.
    "x-ses-",
    # Resent-* are address and date headers with special meaning to SES and MTAs.
    "resent-",
)

# Raw-message header fields whose values get parsed (addresses for the
# envelope and sender checks, MIME parameters for the structure). The stdlib
# parsers are quadratic in the worst case, so these are size-checked on the
# raw bytes before any parsing.
MAX_RAW_ADDRESS_FIELD_LENGTH = 32_768
MAX_RAW_MIME_FIELD_LENGTH = 4_096
MAX_RAW_CHECKED_FIELDS_LENGTH = 262_144
_RAW_ADDRESS_FIELDS = ("from", "to", "cc", "bcc", "sender", "reply-to")
_RAW_MIME_FIELDS = ("content-type", "content-disposition")
_RAW_CHECKED_FIELD_RE = re.compile(
    rb"^(" + b"|".join(n.encode() for n in _RAW_ADDRESS_FIELDS + _RAW_MIME_FIELDS) + rb")"
    # The field's first line and its continuation lines (starting with WSP).
    rb"[ \t]*:[^\r\n]*(?:(?:\r\n|\r|\n)[ \t][^\r\n]*)*",
    re.IGNORECASE | re.MULTILINE,
)

_STRUCTURED_FIELDS = frozenset(
    {"subject", "text", "html", "template", "headers", "attachments", "reply_to"}
)
_TEMPLATE_FIELDS = frozenset({"name", "version", "language", "data"})
_TEMPLATE_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_LANGUAGE_RE = re.compile(r"[a-z]{2,3}(?:-[A-Za-z0-9]{2,8}){0,2}")
_TOP_LEVEL_FIELDS = frozenset(
    {"version", "request_id", "service_id", "from", "to", "cc", "bcc", "raw", "tags"}
    | {"send_at", "priority"}
    | _STRUCTURED_FIELDS
)
_ATTACHMENT_FIELDS = frozenset({"filename", "content_type", "content_base64"})
_ATTACHMENT_REF_FIELDS = frozenset({"filename", "content_type", "gcs"})
# Room for "gs://", a 63-character bucket, "/" and a 1024-byte object name.
_MAX_GCS_URI_LENGTH = 1100

# RFC 5322 field name: printable US-ASCII except colon (and so no space).
_HEADER_NAME_RE = re.compile(r"[!-9;-~]+")
_TAG_RE = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_TAG_LENGTH}}}")
# RFC 2045 token characters; parameters (";charset=...") are not accepted.
_MIME_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"  # noqa: S105 - a regex, not a secret
_CONTENT_TYPE_RE = re.compile(f"{_MIME_TOKEN}/{_MIME_TOKEN}")
# Canonical padded base64 without whitespace; b64decode(validate=True) alone
# still tolerates misplaced padding, so the shape is checked first.
_BASE64_RE = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")

# Parser defects after which the raw message's structure cannot be trusted.
_FATAL_RAW_DEFECTS: tuple[type[email.errors.MessageDefect], ...] = (
    email.errors.NoBoundaryInMultipartDefect,
    email.errors.StartBoundaryNotFoundDefect,
    email.errors.MultipartInvariantViolationDefect,
    email.errors.FirstHeaderLineIsContinuationDefect,
    email.errors.MisplacedEnvelopeHeaderDefect,
    email.errors.MissingHeaderBodySeparatorDefect,
    email.errors.InvalidMultipartContentTransferEncodingDefect,
    MalformedHeaderLineDefect,
)


@dataclass(frozen=True, repr=False)
class Attachment:
    """A decoded attachment. Its content and filename stay out of `repr`."""

    filename: str
    content_type: str
    content: bytes

    @property
    def maintype(self) -> str:
        return self.content_type.partition("/")[0]

    @property
    def subtype(self) -> str:
        return self.content_type.partition("/")[2]

    def __repr__(self) -> str:
        return f"Attachment(content_type={self.content_type!r}, size={len(self.content)})"


@dataclass(frozen=True, repr=False)
class AttachmentRef:
    """An attachment named by a ``gs://`` object, read at send time; names stay out of `repr`."""

    filename: str
    content_type: str
    location: GcsLocation

    def __repr__(self) -> str:
        return f"AttachmentRef(content_type={self.content_type!r})"


@dataclass(frozen=True, repr=False)
class TemplateRef:
    """A request's template: its name, version and language (None: latest, default), data."""

    name: str
    version: int | None
    language: str | None
    data: Mapping[str, Any]

    def __repr__(self) -> str:
        return f"TemplateRef({self.name!r}, version={self.version}, language={self.language!r})"


@dataclass(frozen=True, repr=False)
class EmailRequest:
    """A validated v1 request, structured or raw.

    In structured mode `subject` is set and `raw` is None; in raw mode `raw`
    holds the decoded RFC 5322 bytes and the structured fields are empty.
    In raw mode `to`/`cc`/`bcc` are the effective recipients: the request's
    own lists when `replace_raw_recipients` is true, otherwise the ones read
    from the raw message's headers. Likewise `sender` is the request's
    ``from`` if given, else the raw message's From.
    """

    request_id: str
    service_id: str
    sender: Mailbox | None
    to: tuple[Mailbox, ...]
    cc: tuple[Mailbox, ...]
    bcc: tuple[Mailbox, ...]
    reply_to: tuple[Mailbox, ...] = ()
    subject: str | None = None
    text: str | None = None
    html: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    attachments: tuple[Attachment | AttachmentRef, ...] = ()
    tags: tuple[tuple[str, str], ...] = ()
    raw: bytes | None = None
    replace_raw_recipients: bool = False
    replace_raw_sender: bool = False
    template: TemplateRef | None = None
    #: When to send it (docs/formats.md, "Scheduled sending"); None: now.
    send_at: datetime | None = None
    #: ``priority: "high"``: goes before its own service's other waiting sends.
    high_priority: bool = False

    @property
    def is_raw(self) -> bool:
        return self.raw is not None

    @property
    def attachment_refs(self) -> tuple[AttachmentRef, ...]:
        """The attachments to read from Cloud Storage before the message can be built."""
        return tuple(a for a in self.attachments if isinstance(a, AttachmentRef))

    @property
    def from_address(self) -> str | None:
        """Bare ASCII From address (``user@xn--domain``), or None to use the service default."""
        return self.sender.address if self.sender is not None else None

    @property
    def from_domain(self) -> str | None:
        """ASCII lower-case domain of `from_address`, for the allowed-domain check."""
        return self.sender.domain if self.sender is not None else None

    @property
    def recipient_count(self) -> int:
        return len(self.to) + len(self.cc) + len(self.bcc)

    @property
    def envelope_recipients(self) -> tuple[str, ...]:
        """ASCII addresses SES will deliver to (To, then Cc, then Bcc)."""
        return tuple(m.address for m in (*self.to, *self.cc, *self.bcc))

    def __repr__(self) -> str:
        # Deliberately a summary: addresses, bodies and attachments are personal data.
        parts = ", ".join(f"{k}={v!r}" for k, v in request_summary_for_logs(self).items())
        return f"EmailRequest({parts})"


def request_summary_for_logs(request: EmailRequest) -> dict[str, object]:
    """Counts and flags describing `request`, safe to log.

    Contains no addresses, subject, bodies, header values or attachment
    names; the From domain is included because it is what sender checks act on.
    """
    return {
        "request_id": request.request_id,
        "service_id": request.service_id,
        "mode": "raw" if request.is_raw else "structured",
        "from_domain": request.from_domain,
        "recipient_count": request.recipient_count,
        "to_count": len(request.to),
        "cc_count": len(request.cc),
        "bcc_count": len(request.bcc),
        "has_text": request.text is not None,
        "has_html": request.html is not None,
        "header_count": len(request.headers),
        "attachment_count": len(request.attachments),
        "attachment_ref_count": len(request.attachment_refs),
        "attachment_bytes": sum(
            len(a.content) for a in request.attachments if isinstance(a, Attachment)
        ),
        "raw_bytes": len(request.raw) if request.raw is not None else 0,
        "tag_count": len(request.tags),
        "template": request.template.name if request.template is not None else None,
    }


def is_reserved_header(name: str) -> bool:
    """True if a request may not set header `name` (case-insensitive)."""
    lowered = name.lower()
    return lowered in RESERVED_HEADER_NAMES or lowered.startswith(RESERVED_HEADER_PREFIXES)


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
    document = _decode_json(data)
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
        names = ", ".join(_quote_name(n) for n in unknown[:5])
        reject(ErrorCode.INVALID_REQUEST, f"unknown field(s): {names}")
    # JSON null means "not given" for every optional field.
    fields = {k: v for k, v in document.items() if v is not None}

    request_id = _parse_request_id(fields.get("request_id"), pubsub_message_id)
    service_id = _parse_service_id(fields.get("service_id"), default_service_id)
    tags = _parse_tags(fields.get("tags"))
    send_at = parse_send_at(fields.get("send_at"))
    high_priority = _parse_priority(fields.get("priority"))
    sender = parse_mailbox(fields["from"], field_name="from") if "from" in fields else None
    recipients: Mapping[str, tuple[Mailbox, ...]] = {
        name: parse_mailbox_list(
            fields.get(name), name, limit=MAX_RECIPIENTS, too_many=ErrorCode.TOO_MANY_RECIPIENTS
        )
        for name in ("to", "cc", "bcc")
    }

    if "raw" in fields:
        sender, recipients, content = _parse_raw_content(fields, sender, recipients)
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
    _check_recipient_count(sum(len(r) for r in recipients.values()))
    reply_to = parse_mailbox_list(
        fields.get("reply_to"), "reply_to", limit=MAX_REPLY_TO, too_many=ErrorCode.INVALID_REQUEST
    )
    template = _parse_template(fields)
    subject = None if template else _parse_subject(fields.get("subject"))
    text = _parse_body(fields, "text")
    html = _parse_body(fields, "html")
    if text is None and html is None and template is None:
        reject(ErrorCode.INVALID_REQUEST, "at least one of text and html is required")
    return {
        "reply_to": reply_to,
        "subject": subject,
        "text": text,
        "html": html,
        "headers": _parse_headers(fields.get("headers")),
        "attachments": _parse_attachments(fields.get("attachments")),
        "template": template,
    }


def _decode_json(data: bytes) -> Any:
    try:
        # Decoded explicitly: json.loads(bytes) would also accept UTF-16/32.
        text = bytes(data).decode("utf-8")
    except (UnicodeDecodeError, TypeError, ValueError):
        reject(ErrorCode.INVALID_JSON, "the message data is not valid UTF-8")
    if nested_too_deep(text):
        reject(
            ErrorCode.INVALID_JSON,
            f"the JSON is nested more than {MAX_JSON_DEPTH} levels deep",
        )
    try:
        document = json.loads(
            text,
            object_pairs_hook=_object_without_duplicate_keys,
            parse_constant=_refuse_json_constant,
        )
    except _DuplicateKeyError as exc:
        reject(ErrorCode.INVALID_JSON, f"duplicate key {_quote_name(exc.key)} in a JSON object")
    except json.JSONDecodeError as exc:
        reject(
            ErrorCode.INVALID_JSON,
            f"the message data is not valid JSON ({exc.msg} at line {exc.lineno}, "
            f"column {exc.colno})",
        )
    except (ValueError, RecursionError):
        # NaN/Infinity, integers beyond the digit limit; RecursionError only as a backstop
        # to the depth check above.
        reject(ErrorCode.INVALID_JSON, "the message data is not acceptable JSON")
    if _contains_lone_surrogate(document):
        reject(ErrorCode.INVALID_JSON, "the JSON contains an unpaired UTF-16 surrogate escape")
    return document


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__("duplicate key")
        self.key = key


def _object_without_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Parsers disagree on which duplicate wins; refusing them avoids smuggling.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(key)
        result[key] = value
    return result


def _refuse_json_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def _contains_lone_surrogate(document: Any) -> bool:
    # Iterative so that deeply nested (but parseable) JSON cannot exhaust the stack.
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE_RE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


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
    if not (isinstance(request_id, str) and _is_valid_request_id(request_id)):
        request_id = None
    service_id = document.get("service_id")
    if service_id is None:
        service_id = default_service_id
    if not (isinstance(service_id, str) and SERVICE_ID_RE.fullmatch(service_id)):
        service_id = None
    return request_id, service_id


def _is_valid_request_id(value: str) -> bool:
    return 1 <= len(value) <= MAX_REQUEST_ID_LENGTH and value.isprintable()


def _parse_request_id(value: Any, pubsub_message_id: str) -> str:
    if value is None:
        return pubsub_message_id
    if not isinstance(value, str):
        reject(ErrorCode.INVALID_REQUEST, "request_id must be a string")
    if not _is_valid_request_id(value):
        reject(
            ErrorCode.INVALID_REQUEST,
            f"request_id must be 1 to {MAX_REQUEST_ID_LENGTH} printable characters",
        )
    return value


def _parse_service_id(value: Any, default_service_id: str | None) -> str:
    rule = "lower-case letters, digits, '_' and '-', starting with a letter or digit, at most 63"
    if value is None:
        if default_service_id is None:
            reject(
                ErrorCode.INVALID_REQUEST,
                "service_id is required (this worker has no default service)",
            )
        if not SERVICE_ID_RE.fullmatch(default_service_id):
            reject(ErrorCode.CONFIGURATION_ERROR, f"the default service_id is invalid ({rule})")
        return default_service_id
    if not isinstance(value, str):
        reject(ErrorCode.INVALID_REQUEST, "service_id must be a string")
    if not SERVICE_ID_RE.fullmatch(value):
        reject(ErrorCode.INVALID_REQUEST, f"service_id must be {rule}")
    return value


def _check_recipient_count(count: int) -> None:
    if count == 0:
        reject(ErrorCode.INVALID_REQUEST, "at least one recipient (to, cc or bcc) is required")
    if count > MAX_RECIPIENTS:
        reject(
            ErrorCode.TOO_MANY_RECIPIENTS,
            f"{count} recipients; at most {MAX_RECIPIENTS} are allowed across to, cc and bcc",
        )


# --------------------------------------------------------------------------
# Structured content


def _parse_template(fields: Mapping[str, Any]) -> TemplateRef | None:
    value = fields.get("template")
    if value is None:
        return None
    if any(name in fields for name in ("subject", "text", "html")):
        reject(ErrorCode.INVALID_REQUEST, "template replaces subject, text and html: give one")
    if not isinstance(value, dict):
        reject(ErrorCode.INVALID_REQUEST, "template must be an object")
    unknown = sorted(set(value) - _TEMPLATE_FIELDS)
    if unknown:
        names = ", ".join(_quote_name(n) for n in unknown[:5])
        reject(ErrorCode.INVALID_REQUEST, f"unknown template field(s): {names}")
    name, version = value.get("name"), value.get("version")
    language, data = value.get("language"), value.get("data")
    if not isinstance(name, str) or not _TEMPLATE_NAME_RE.fullmatch(name):
        reject(ErrorCode.INVALID_REQUEST, "template.name must be a template name like 'invoice'")
    if version is not None and (type(version) is not int or version < 1):
        reject(ErrorCode.INVALID_REQUEST, "template.version must be a whole number from 1")
    if language is not None and (
        not isinstance(language, str) or not _LANGUAGE_RE.fullmatch(language)
    ):
        reject(ErrorCode.INVALID_REQUEST, "template.language must be a language tag like 'de'")
    if not isinstance(data, dict):
        reject(ErrorCode.INVALID_REQUEST, "template.data must be an object")
    return TemplateRef(name, version, language, data)


def _parse_subject(value: Any) -> str:
    if value is None:
        reject(ErrorCode.INVALID_REQUEST, "subject is required")
    if not isinstance(value, str):
        reject(ErrorCode.INVALID_REQUEST, "subject must be a string")
    check_header_text(value, "subject")
    if len(value) > MAX_SUBJECT_LENGTH:
        reject(
            ErrorCode.INVALID_REQUEST,
            f"subject is longer than {MAX_SUBJECT_LENGTH} characters",
        )
    return value


def _parse_body(fields: Mapping[str, Any], name: str) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        reject(ErrorCode.INVALID_REQUEST, f"{name} must be a string")
    if "\x00" in value:
        reject(ErrorCode.INVALID_REQUEST, f"{name} must not contain NUL characters")
    return value


def _name_value_object(value: Any, name: str, limit: int) -> dict[str, Any]:
    """Field `name` (headers or tags) as a JSON object of at most `limit` entries; {} if absent."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        reject(ErrorCode.INVALID_REQUEST, f"{name} must be an object of name to string value")
    if len(value) > limit:
        reject(ErrorCode.INVALID_REQUEST, f"{name} has more than {limit} entries")
    return value


def _parse_headers(value: Any) -> tuple[tuple[str, str], ...]:
    seen: set[str] = set()
    result: list[tuple[str, str]] = []
    for name, header_value in _name_value_object(value, "headers", MAX_HEADERS).items():
        label = f"headers[{_quote_name(name)}]"
        if LINE_BREAK_RE.search(name):
            reject(ErrorCode.HEADER_INJECTION, "a header name contains a line break or NUL")
        if not _HEADER_NAME_RE.fullmatch(name) or len(name) > MAX_HEADER_NAME_LENGTH:
            reject(
                ErrorCode.INVALID_REQUEST,
                f"{label}: header names are 1 to {MAX_HEADER_NAME_LENGTH} printable ASCII "
                "characters without ':' or spaces",
            )
        if is_reserved_header(name):
            reject(ErrorCode.RESERVED_HEADER, f"{label}: this header is set by the worker or SES")
        if name.lower() in seen:
            reject(ErrorCode.INVALID_REQUEST, f"{label}: the same header is given twice")
        seen.add(name.lower())
        if not isinstance(header_value, str):
            reject(ErrorCode.INVALID_REQUEST, f"{label} must be a string")
        check_header_text(header_value, label)
        if len(header_value) > MAX_HEADER_VALUE_LENGTH:
            reject(
                ErrorCode.INVALID_REQUEST,
                f"{label} is longer than {MAX_HEADER_VALUE_LENGTH} characters",
            )
        result.append((name, header_value))
    return tuple(result)


def _parse_attachments(value: Any) -> tuple[Attachment | AttachmentRef, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        reject(ErrorCode.INVALID_REQUEST, "attachments must be a list")
    if len(value) > MAX_ATTACHMENTS:
        reject(ErrorCode.INVALID_REQUEST, f"more than {MAX_ATTACHMENTS} attachments")
    return tuple(_parse_attachment(item, f"attachments[{i}]") for i, item in enumerate(value))


def _parse_attachment(item: Any, label: str) -> Attachment | AttachmentRef:
    if not isinstance(item, dict):
        reject(ErrorCode.INVALID_REQUEST, f"{label} must be an object")
    by_reference = "gcs" in item
    fields = _ATTACHMENT_REF_FIELDS if by_reference else _ATTACHMENT_FIELDS
    unknown = sorted(set(item) - fields)
    if unknown:
        names = ", ".join(_quote_name(n) for n in unknown[:5])
        reject(ErrorCode.INVALID_REQUEST, f"{label} has unknown field(s): {names}")
    for key in sorted(fields):
        if not isinstance(item.get(key), str):
            reject(ErrorCode.INVALID_REQUEST, f"{label}.{key} is required and must be a string")
    filename = _attachment_filename(item["filename"], label)
    content_type = _attachment_content_type(item["content_type"], label)
    if by_reference:
        location = _attachment_location(item["gcs"], f"{label}.gcs")
        return AttachmentRef(filename=filename, content_type=content_type, location=location)
    content = _decode_base64(item["content_base64"], f"{label}.content_base64")
    return Attachment(filename=filename, content_type=content_type, content=content)


def _attachment_filename(filename: str, label: str) -> str:
    check_header_text(filename, f"{label}.filename")
    if not 1 <= len(filename) <= MAX_FILENAME_LENGTH or not filename.strip():
        reject(
            ErrorCode.INVALID_REQUEST,
            f"{label}.filename must be 1 to {MAX_FILENAME_LENGTH} characters",
        )
    return filename


def _attachment_content_type(content_type: str, label: str) -> str:
    check_header_text(content_type, f"{label}.content_type")
    if not _CONTENT_TYPE_RE.fullmatch(content_type):
        reject(ErrorCode.INVALID_REQUEST, f"{label}.content_type must be type/subtype")
    content_type = content_type.lower()
    if content_type.startswith(("multipart/", "message/")):
        # The email package would base64-encode these, which RFC 2046 forbids
        # for composite types; send such files as application/octet-stream.
        reject(
            ErrorCode.INVALID_REQUEST,
            f"{label}.content_type must not be multipart/* or message/*",
        )
    return content_type


def _attachment_location(uri: str, label: str) -> GcsLocation:
    if len(uri) > _MAX_GCS_URI_LENGTH or not uri.startswith(GCS_SCHEME):
        reject(
            ErrorCode.INVALID_REQUEST,
            f"{label} must be a {GCS_SCHEME}bucket/object name of at most "
            f"{_MAX_GCS_URI_LENGTH} characters",
        )
    try:
        return parse_object_uri(uri)
    except GcsUriError as error:
        # An ambiguous name is never readable, whatever the service's prefixes.
        reject(ErrorCode.ATTACHMENT_FORBIDDEN, f"{label} is refused: {error}")


def _parse_priority(value: Any) -> bool:
    """Whether ``priority`` asks for "high" (None and "normal" do not)."""
    if value is None or value == "normal":
        return False
    if value == "high":
        return True
    reject(ErrorCode.INVALID_REQUEST, 'priority must be "high" or "normal"')


def _parse_tags(value: Any) -> tuple[tuple[str, str], ...]:
    tags = _name_value_object(value, "tags", MAX_TAGS)
    rule = f"1 to {MAX_TAG_LENGTH} ASCII letters, digits, '_' or '-'"
    for name, tag_value in tags.items():
        if not _TAG_RE.fullmatch(name):
            reject(ErrorCode.INVALID_REQUEST, f"tag names must be {rule}")
        if is_reserved_tag_name(name):
            # The events reader trusts these names to be the worker's own.
            reject(
                ErrorCode.RESERVED_TAG,
                f"tag {_quote_name(name)}: names starting with {TAG_PREFIX!r} are the worker's",
            )
        if not isinstance(tag_value, str) or not _TAG_RE.fullmatch(tag_value):
            reject(ErrorCode.INVALID_REQUEST, f"tags[{_quote_name(name)}] must be {rule}")
    return tuple(tags.items())


def _decode_base64(value: str, label: str) -> bytes:
    if not _BASE64_RE.fullmatch(value):
        reject(
            ErrorCode.INVALID_BASE64,
            f"{label} is not standard padded base64 (no whitespace or line breaks)",
        )
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        reject(ErrorCode.INVALID_BASE64, f"{label} is not valid base64")


# --------------------------------------------------------------------------
# Raw mode


def _parse_raw_content(
    fields: Mapping[str, Any],
    sender: Mailbox | None,
    recipients: Mapping[str, tuple[Mailbox, ...]],
) -> tuple[Mailbox | None, Mapping[str, tuple[Mailbox, ...]], dict[str, Any]]:
    """A raw request's effective sender and recipients, and its own fields of
    :class:`EmailRequest`."""
    conflicting = sorted(_STRUCTURED_FIELDS & set(fields))
    if conflicting:
        reject(
            ErrorCode.INVALID_REQUEST,
            f"raw cannot be combined with {', '.join(conflicting)}",
        )
    if not isinstance(fields["raw"], str):
        reject(ErrorCode.INVALID_REQUEST, "raw must be a base64 string")
    raw = _decode_base64(fields["raw"], "raw")
    message = _load_raw(raw)

    replace_recipients = any(name in fields for name in ("to", "cc", "bcc"))
    if not replace_recipients:
        recipients = {
            name: parse_address_header(
                message, name.capitalize(), f"raw {name.capitalize()} header"
            )
            for name in ("to", "cc", "bcc")
        }
    _check_recipient_count(sum(len(r) for r in recipients.values()))

    if sender is None:
        # Without an override the raw From is what SES sends as, so it must be
        # a single valid mailbox for the worker's sender checks to mean anything.
        raw_senders = parse_address_header(message, "From", "raw From header")
        if not raw_senders:
            reject(
                ErrorCode.INVALID_REQUEST,
                "the raw message has no From header and no from is given",
            )
        if len(raw_senders) > 1:
            reject(ErrorCode.INVALID_REQUEST, "the raw message must have exactly one From address")
        sender = raw_senders[0]
        replace_sender = False
    else:
        replace_sender = True

    content = {
        "raw": raw,
        "replace_raw_recipients": replace_recipients,
        "replace_raw_sender": replace_sender,
    }
    return sender, recipients, content


def _check_raw_field_sizes(raw: bytes) -> None:
    # Runs on the bytes, before the email package sees them. Lines that merely
    # look like such fields (in a body) are counted too; that errs on the safe side.
    total = 0
    for match in _RAW_CHECKED_FIELD_RE.finditer(raw):
        name = match.group(1).decode("ascii").lower()
        size = match.end() - match.start()
        limit = (
            MAX_RAW_ADDRESS_FIELD_LENGTH
            if name in _RAW_ADDRESS_FIELDS
            else MAX_RAW_MIME_FIELD_LENGTH
        )
        if size > limit:
            reject(
                ErrorCode.INVALID_REQUEST,
                f"a {name} header in the raw message is longer than {limit} bytes",
            )
        total += size
    if total > MAX_RAW_CHECKED_FIELDS_LENGTH:
        reject(
            ErrorCode.INVALID_REQUEST,
            "the raw message's address and Content-Type/-Disposition headers together "
            f"are longer than {MAX_RAW_CHECKED_FIELDS_LENGTH} bytes",
        )


def _load_raw(raw: bytes) -> EmailMessage:
    _check_raw_field_sizes(raw)
    try:
        message = load_raw_message(raw)
        defects = [
            type(defect).__name__
            for part in message.walk()
            for defect in part.defects
            if isinstance(defect, _FATAL_RAW_DEFECTS)
        ]
        names = [name.lower() for name in message]
    except Exception:
        # The stdlib parser is meant to record defects rather than raise, but
        # hostile input has triggered parser bugs before (and deep nesting
        # exhausts the stack); treat any of that as a malformed message.
        reject(ErrorCode.INVALID_REQUEST, "the raw message could not be parsed")
    if defects:
        reject(
            ErrorCode.INVALID_REQUEST,
            f"the raw message is malformed ({', '.join(sorted(set(defects)))})",
        )
    if any(name.startswith("x-ses-") for name in names):
        reject(
            ErrorCode.RESERVED_HEADER,
            "the raw message must not contain X-SES-* headers; use tags instead",
        )
    for field_name in _RAW_ADDRESS_FIELDS:
        # RFC 5322 allows each of these once; more would also multiply parsing work.
        if names.count(field_name) > 1:
            reject(
                ErrorCode.INVALID_REQUEST,
                f"the raw message has more than one {field_name} header",
            )
    return message


# --------------------------------------------------------------------------
# Small helpers


def _quote_name(name: str) -> str:
    """A field or key name for an error message: escaped and truncated."""
    shown = name if len(name) <= 40 else name[:40] + "..."
    return json.dumps(shown)
