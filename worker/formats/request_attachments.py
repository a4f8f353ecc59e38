"""The checks of a request's attachments: inline (base64 content) or by ``gs://`` reference."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from worker.config.gcs_uri import GCS_SCHEME, GcsLocation, GcsUriError, parse_object_uri
from worker.formats.error_codes import ErrorCode
from worker.formats.rejection import check_header_text, reject
from worker.formats.request_json import quote_name
from worker.formats.request_model import (
    MAX_ATTACHMENTS,
    MAX_FILENAME_LENGTH,
    Attachment,
    AttachmentRef,
)

_ATTACHMENT_FIELDS = frozenset({"filename", "content_type", "content_base64"})
_ATTACHMENT_REF_FIELDS = frozenset({"filename", "content_type", "gcs"})
# Room for "gs://", a 63-character bucket, "/" and a 1024-byte object name.
_MAX_GCS_URI_LENGTH = 1100
# RFC 2045 token characters; parameters (";charset=...") are not accepted.
_MIME_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"  # noqa: S105 - a regex, not a secret
_CONTENT_TYPE_RE = re.compile(f"{_MIME_TOKEN}/{_MIME_TOKEN}")
# Canonical padded base64 without whitespace; b64decode(validate=True) alone
# still tolerates misplaced padding, so the shape is checked first.
_BASE64_RE = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


def parse_attachments(value: Any) -> tuple[Attachment | AttachmentRef, ...]:
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
        names = ", ".join(quote_name(n) for n in unknown[:5])
        reject(ErrorCode.INVALID_REQUEST, f"{label} has unknown field(s): {names}")
    for key in sorted(fields):
        if not isinstance(item.get(key), str):
            reject(ErrorCode.INVALID_REQUEST, f"{label}.{key} is required and must be a string")
    filename = _attachment_filename(item["filename"], label)
    content_type = _attachment_content_type(item["content_type"], label)
    if by_reference:
        location = _attachment_location(item["gcs"], f"{label}.gcs")
        return AttachmentRef(filename=filename, content_type=content_type, location=location)
    content = decode_base64(item["content_base64"], f"{label}.content_base64")
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


def decode_base64(value: str, label: str) -> bytes:
    if not _BASE64_RE.fullmatch(value):
        reject(
            ErrorCode.INVALID_BASE64,
            f"{label} is not standard padded base64 (no whitespace or line breaks)",
        )
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        reject(ErrorCode.INVALID_BASE64, f"{label} is not valid base64")
