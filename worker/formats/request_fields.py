"""The checks of a request's own fields, one function per field: ids, template, subject,
bodies, headers, priority and tags (attachments: `request_attachments`; raw mode: `request_raw`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from worker.config.settings import SERVICE_ID_RE
from worker.formats.error_codes import ErrorCode
from worker.formats.rejection import LINE_BREAK_RE, check_header_text, reject
from worker.formats.request_json import quote_name
from worker.formats.request_model import (
    MAX_HEADER_NAME_LENGTH,
    MAX_HEADER_VALUE_LENGTH,
    MAX_HEADERS,
    MAX_RECIPIENTS,
    MAX_REQUEST_ID_LENGTH,
    MAX_SUBJECT_LENGTH,
    MAX_TAG_LENGTH,
    MAX_TAGS,
    TemplateRef,
    is_reserved_header,
)
from worker.formats.tags import TAG_PREFIX, is_reserved_tag_name

STRUCTURED_FIELDS = frozenset(
    {"subject", "text", "html", "template", "headers", "attachments", "reply_to"}
)
_TEMPLATE_FIELDS = frozenset({"name", "version", "language", "data"})
_TEMPLATE_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_LANGUAGE_RE = re.compile(r"[a-z]{2,3}(?:-[A-Za-z0-9]{2,8}){0,2}")
# RFC 5322 field name: printable US-ASCII except colon (and so no space).
_HEADER_NAME_RE = re.compile(r"[!-9;-~]+")
_TAG_RE = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_TAG_LENGTH}}}")


def is_valid_request_id(value: str) -> bool:
    return 1 <= len(value) <= MAX_REQUEST_ID_LENGTH and value.isprintable()


def parse_request_id(value: Any, pubsub_message_id: str) -> str:
    if value is None:
        return pubsub_message_id
    if not isinstance(value, str):
        reject(ErrorCode.INVALID_REQUEST, "request_id must be a string")
    if not is_valid_request_id(value):
        reject(
            ErrorCode.INVALID_REQUEST,
            f"request_id must be 1 to {MAX_REQUEST_ID_LENGTH} printable characters",
        )
    return value


def parse_service_id(value: Any, default_service_id: str | None) -> str:
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


def check_recipient_count(count: int) -> None:
    if count == 0:
        reject(ErrorCode.INVALID_REQUEST, "at least one recipient (to, cc or bcc) is required")
    if count > MAX_RECIPIENTS:
        reject(
            ErrorCode.TOO_MANY_RECIPIENTS,
            f"{count} recipients; at most {MAX_RECIPIENTS} are allowed across to, cc and bcc",
        )


def parse_template(fields: Mapping[str, Any]) -> TemplateRef | None:
    value = fields.get("template")
    if value is None:
        return None
    if any(name in fields for name in ("subject", "text", "html")):
        reject(ErrorCode.INVALID_REQUEST, "template replaces subject, text and html: give one")
    if not isinstance(value, dict):
        reject(ErrorCode.INVALID_REQUEST, "template must be an object")
    unknown = sorted(set(value) - _TEMPLATE_FIELDS)
    if unknown:
        names = ", ".join(quote_name(n) for n in unknown[:5])
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


def parse_subject(value: Any) -> str:
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


def parse_body(fields: Mapping[str, Any], name: str) -> str | None:
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


def parse_headers(value: Any) -> tuple[tuple[str, str], ...]:
    seen: set[str] = set()
    result: list[tuple[str, str]] = []
    for name, header_value in _name_value_object(value, "headers", MAX_HEADERS).items():
        label = f"headers[{quote_name(name)}]"
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


def parse_priority(value: Any) -> bool:
    """Whether ``priority`` asks for "high" (None and "normal" do not)."""
    if value is None or value == "normal":
        return False
    if value == "high":
        return True
    reject(ErrorCode.INVALID_REQUEST, 'priority must be "high" or "normal"')


def parse_tags(value: Any) -> tuple[tuple[str, str], ...]:
    tags = _name_value_object(value, "tags", MAX_TAGS)
    rule = f"1 to {MAX_TAG_LENGTH} ASCII letters, digits, '_' or '-'"
    for name, tag_value in tags.items():
        if not _TAG_RE.fullmatch(name):
            reject(ErrorCode.INVALID_REQUEST, f"tag names must be {rule}")
        if is_reserved_tag_name(name):
            # The events reader trusts these names to be the worker's own.
            reject(
                ErrorCode.RESERVED_TAG,
                f"tag {quote_name(name)}: names starting with {TAG_PREFIX!r} are the worker's",
            )
        if not isinstance(tag_value, str) or not _TAG_RE.fullmatch(tag_value):
            reject(ErrorCode.INVALID_REQUEST, f"tags[{quote_name(name)}] must be {rule}")
    return tuple(tags.items())
