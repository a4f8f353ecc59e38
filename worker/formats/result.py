"""Result format v1: what the worker publishes for every request it finishes.

One `EmailResult` per request, serialised with `EmailResult.to_json_bytes`
and published with `EmailResult.pubsub_attributes` so subscribers can filter
on status without decoding the body. The JSON Schema is
``worker/formats/schemas/result-v1.schema.json``; tests check both agree.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from worker.formats.error_codes import ErrorCode, ResultStatus

__all__ = [
    "MAX_ERROR_MESSAGE_LENGTH",
    "RESULT_VERSION",
    "EmailResult",
    "ErrorCode",
    "ResultError",
    "ResultStatus",
    "format_timestamp",
]

RESULT_VERSION: Literal[1] = 1
# Error text can come from SES and is not under our control; cap it so one
# result stays small.
MAX_ERROR_MESSAGE_LENGTH = 1000

_TIMESTAMP_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
_RESULT_FIELDS = frozenset(
    {
        "version",
        "request_id",
        "service_id",
        "status",
        "message_ids",
        "error",
        "attempt",
        "pubsub_message_id",
        "completed_at",
    }
)

_OPTIONAL_FIELDS = frozenset({"template", "send_at"})
_WITHOUT_ERROR = frozenset({ResultStatus.SENT, ResultStatus.SCHEDULED})


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 UTC with milliseconds, e.g. ``2026-11-26T05:00:00.123Z``."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a timestamp needs a timezone-aware datetime")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, init=False)
class ResultError:
    """Why a request was not sent: a stable `code` and a human-readable `message`."""

    code: ErrorCode
    message: str

    def __init__(self, code: ErrorCode | str, message: str) -> None:
        # Accepts the plain strings that EmailError.code and RequestRejected.code carry;
        # an unknown code is a programming error and raises ValueError.
        object.__setattr__(self, "code", ErrorCode(code))
        if len(message) > MAX_ERROR_MESSAGE_LENGTH:
            message = message[: MAX_ERROR_MESSAGE_LENGTH - 3] + "..."
        object.__setattr__(self, "message", message)

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code.value, "message": self.message}


@dataclass(frozen=True, init=False)
class EmailResult:
    """The outcome of one request, as published to the results topic.

    Invariants (checked on construction, ValueError otherwise): ``sent`` and
    ``scheduled`` have no `error`; every other status has one. Only
    ``scheduled`` (not final: the request waits for its time) has `send_at`. `message_ids` are the
    SES ids accepted so far: all of them for ``sent``, the batches that went
    out for ``failed``/``partially_sent``, otherwise none.
    """

    request_id: str
    service_id: str | None
    status: ResultStatus
    message_ids: tuple[str, ...]
    error: ResultError | None
    attempt: int | None
    pubsub_message_id: str
    completed_at: str
    version: Literal[1]
    #: The template rendered: (name, version, language); None for a request without one.
    template: tuple[str, int, str] | None
    #: When a ``scheduled`` request will be sent (RFC 3339 UTC); None for any other status.
    send_at: str | None

    def __init__(
        self,
        *,
        request_id: str,
        service_id: str | None,
        status: ResultStatus | str,
        message_ids: Iterable[str] = (),
        error: ResultError | None = None,
        attempt: int | None = None,
        pubsub_message_id: str,
        completed_at: str | datetime,
        template: tuple[str, int, str] | None = None,
        send_at: str | None = None,
    ) -> None:
        status = ResultStatus(status)
        if isinstance(completed_at, datetime):
            completed_at = format_timestamp(completed_at)
        if not _TIMESTAMP_RE.fullmatch(completed_at):
            raise ValueError("completed_at must look like 2026-11-26T05:00:00.123Z")
        if (status in _WITHOUT_ERROR) != (error is None):
            raise ValueError(
                "a sent or scheduled result has no error; any other result must have one"
            )
        if (status is ResultStatus.SCHEDULED) != (send_at is not None):
            raise ValueError("a scheduled result, and only one, says when it will be sent")
        if attempt is not None and (isinstance(attempt, bool) or attempt < 1):
            raise ValueError("attempt must be a positive integer")
        values = {
            "request_id": request_id,
            "service_id": service_id,
            "status": status,
            "message_ids": tuple(message_ids),
            "error": error,
            "attempt": attempt,
            "pubsub_message_id": pubsub_message_id,
            "completed_at": completed_at,
            "version": RESULT_VERSION,
            "template": template,
            "send_at": send_at,
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)

    @classmethod
    def sent(
        cls,
        *,
        request_id: str,
        service_id: str | None,
        message_ids: Iterable[str],
        pubsub_message_id: str,
        attempt: int | None = None,
        completed_at: datetime | None = None,
    ) -> EmailResult:
        """A ``sent`` result; `completed_at` defaults to now."""
        return cls(
            request_id=request_id,
            service_id=service_id,
            status=ResultStatus.SENT,
            message_ids=message_ids,
            attempt=attempt,
            pubsub_message_id=pubsub_message_id,
            completed_at=completed_at or datetime.now(UTC),
        )

    @classmethod
    def for_error(
        cls,
        code: ErrorCode | str,
        message: str,
        *,
        request_id: str,
        service_id: str | None,
        pubsub_message_id: str,
        attempt: int | None = None,
        message_ids: Iterable[str] = (),
        completed_at: datetime | None = None,
    ) -> EmailResult:
        """A result with the documented status of `code` (see `ErrorCode.status`)."""
        error = ResultError(code, message)
        return cls(
            request_id=request_id,
            service_id=service_id,
            status=error.code.status,
            message_ids=message_ids,
            error=error,
            attempt=attempt,
            pubsub_message_id=pubsub_message_id,
            completed_at=completed_at or datetime.now(UTC),
        )

    def to_dict(self) -> dict[str, Any]:
        """The v1 JSON object, with every field present (null when unknown); ``template`` only
        for a request that named one."""
        document = {
            "version": self.version,
            "request_id": self.request_id,
            "service_id": self.service_id,
            "status": self.status.value,
            "message_ids": list(self.message_ids),
            "error": self.error.to_dict() if self.error is not None else None,
            "attempt": self.attempt,
            "pubsub_message_id": self.pubsub_message_id,
            "completed_at": self.completed_at,
        }
        if self.template is not None:
            name, version, language = self.template
            document["template"] = {"name": name, "version": version, "language": language}
        if self.send_at is not None:
            document["send_at"] = self.send_at
        return document

    def to_json_bytes(self) -> bytes:
        """Compact UTF-8 JSON, the data of the result's Pub/Sub message."""
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False).encode()

    def pubsub_attributes(self) -> dict[str, str]:
        """String attributes for filtering subscriptions (service_id omitted when unknown)."""
        attributes = {
            "version": str(self.version),
            "request_id": self.request_id,
            "status": self.status.value,
        }
        if self.service_id is not None:
            attributes["service_id"] = self.service_id
        if self.error is not None:
            attributes["error_code"] = self.error.code.value
        return attributes

    @classmethod
    def from_json_bytes(cls, data: bytes) -> EmailResult:
        """Parse a v1 result (for consumers and tests). Raises ValueError if malformed."""
        document = json.loads(data)
        if not isinstance(document, dict) or set(document) - _OPTIONAL_FIELDS != _RESULT_FIELDS:
            raise ValueError("not a v1 result object")
        if document["version"] != RESULT_VERSION:
            raise ValueError("unsupported result version")
        error = document["error"]
        if error is not None:
            if not isinstance(error, Mapping) or set(error) != {"code", "message"}:
                raise ValueError("error must be an object with code and message")
            error = ResultError(error["code"], error["message"])
        return cls(
            request_id=document["request_id"],
            service_id=document["service_id"],
            status=document["status"],
            message_ids=document["message_ids"],
            error=error,
            attempt=document["attempt"],
            pubsub_message_id=document["pubsub_message_id"],
            completed_at=document["completed_at"],
            template=_template_of(document.get("template")),
            send_at=document.get("send_at"),
        )


def _template_of(value: Any) -> tuple[str, int, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) != {"name", "version", "language"}:
        raise ValueError("template must be an object with name, version and language")
    return str(value["name"]), int(value["version"]), str(value["language"])
